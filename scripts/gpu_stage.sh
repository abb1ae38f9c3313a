#!/usr/bin/env bash
# Stages what a GPU machine without a package registry needs to run scripts/gpu_check.sh: the
# built binaries, the shared libraries they load (except glibc's and the GPU driver's), Debian's
# Fashion-MNIST files and the shipped network as TorchScript for PyTorch's side, into .gpu/
# (ignored by git), packed as .gpu.tar.xz to carry to the device machine (64 MiB at most).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu/build/src .gpu/build/tests .gpu/build/bench .gpu/lib .gpu/data
cp -a build/src/cleval build/src/libcleval.so* .gpu/build/src/
cp -a build/tests/test_* .gpu/build/tests/
cp -a build/bench/bench_* build/bench/idx2h5 .gpu/build/bench/
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/data/
python3 tools/onnx_to_torchscript.py datasets/fmnist_cnn.onnx .gpu/fmnist_cnn.pt 2>/dev/null
for binary in .gpu/build/src/cleval .gpu/build/src/libcleval.so.* .gpu/build/tests/test_* \
              .gpu/build/bench/*; do
  ldd "$binary" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libgcc_s|libstdc\+\+)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/lib/; done
# Libraries compress well; the archive keeps the carried total under 64 MiB.
tar -cJf .gpu.tar.xz .gpu
du -sh .gpu .gpu.tar.xz
