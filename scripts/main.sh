#!/usr/bin/env bash
# Fresh machine to results: installs the dependencies, builds, and runs cleval's main job on
# the data shipped in datasets/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
./build/src/cleval devices
./build/src/cleval metrics --data datasets/iris_knn3_pred.h5
