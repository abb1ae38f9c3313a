#!/usr/bin/env bash
# Installs everything cleval needs to build and test on Debian 12 (run as root or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  build-essential cmake pkg-config
  clang libclang-rt-14-dev
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  libhdf5-dev hdf5-tools
  zlib1g-dev
  libcmocka-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
  libcjson-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
  chromium
  # The Python package's tests (python/tests, run by ctest as python_package) under /usr/bin/python3.
  python3-numpy python3-pytest python3-sklearn python3-h5py
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
