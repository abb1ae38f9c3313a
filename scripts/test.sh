#!/usr/bin/env bash
# Fresh machine to a tested build: installs the dependencies, builds, runs the main job, then
# the whole test suite and a short pass of every fuzzer. Set CLEVAL_SANITIZE=1 to run the
# suite under ASan + UBSan as well.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/main.sh
ctest --test-dir build --output-on-failure -j 2
./scripts/fuzz.sh --smoke
if [ "${CLEVAL_SANITIZE:-0}" = "1" ]; then
  cmake -S . -B build-asan -DCLEVAL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j "$(nproc)"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure
fi
