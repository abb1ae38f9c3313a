#!/usr/bin/env bash
# One-shot performance measurement of cleval on a GPU machine (no network, a few minutes of
# device time): the device's own limits, cleval's start-up cold and warm, the CNN at 10^4 and
# 10^6 images, zoo models, KNN with its breakdown, a tuner sweep when `cleval tune` exists, and
# PyTorch on the same card and files, ending in one summary of ratios.
#
#   scripts/gpu_perf.sh --stage          here, after a build: stages bench/out/gpu-perf/ (the
#                                        binaries, their shared libraries, Fashion-MNIST, the
#                                        CNN's weights for PyTorch, an h5py wheel) and packs it
#                                        as bench/out/gpu-perf.tar.xz
#   scripts/gpu_perf.sh [RESULTS_DIR]    there (or here, as a dry run on any OpenCL device):
#                                        writes RESULTS_DIR (default $OUT, else
#                                        bench/out/gpu-perf-results)/summary.md and details
#
# Carry bench/out/gpu-perf.tar.xz to the GPU machine (unpacked there on first use). Every step
# has its own timeout and a failing step does not stop the others; steps that need CUDA or
# PyTorch skip with a note when they are missing. GPU_PERF_BIG (default 1000000) sets the size of the large run, and
# GPU_PERF_TIMEOUT_SCALE multiplies every step's timeout: a dry run on a CPU device uses a
# smaller run and longer timeouts (GPU_PERF_BIG=20000 GPU_PERF_TIMEOUT_SCALE=5
# GPU_PERF_BUDGET=3600).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=bench/out/gpu-perf

if [ "${1:-}" = "--stage" ]; then
  set -e
  rm -rf "$STAGE" && mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/data" "$STAGE/wheels"
  for target in cleval bench_nn bench_histogram idx2h5 gpu_probe; do
    found=$(find build -name "$target" -type f -perm -u+x | head -1)
    [ -n "$found" ] || { echo "gpu_perf: build/…/$target missing: cmake --build build --target cleval_cli bench_nn bench_histogram idx2h5 gpu_probe" >&2; exit 2; }
    cp "$found" "$STAGE/bin/"
  done
  cp -a build/src/libcleval.so* "$STAGE/lib/"
  # The shared libraries the binaries load, except glibc's and the driver's (the GPU image has
  # its own; the ICD loader and HDF5 it lacks).
  for binary in "$STAGE"/bin/* "$STAGE"/lib/libcleval.so.*; do
    ldd "$binary" 2>/dev/null | awk '/=> \// {print $3}'
  done | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*|libgcc_s|libstdc\+\+|libnvidia[^/]*|libcuda)\.so' |
    while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
  cp /usr/share/datasets/fashion-mnist/*.gz "$STAGE/data/"
  python3 - "$STAGE/data/fmnist_cnn_weights.npz" <<'PY'
import sys, numpy as np, onnx
from onnx import numpy_helper
model = onnx.load("datasets/fmnist_cnn.onnx")
np.savez(sys.argv[1], **{t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
PY
  # The GPU image's Python (3.12) has torch and numpy but no h5py.
  pip download -q h5py --only-binary=:all: --no-deps --python-version 3.12 \
    --platform manylinux2014_x86_64 -d "$STAGE/wheels" || echo "gpu_perf: no h5py wheel staged"
  # Libraries compress well: the archive keeps what travels under the 64 MiB a call carries.
  tar -cJf "$STAGE.tar.xz" -C "$(dirname "$STAGE")" "$(basename "$STAGE")"
  du -sh "$STAGE" "$STAGE.tar.xz"
  exit 0
fi

RESULTS=${1:-${OUT:-bench/out/gpu-perf-results}}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
D="$RESULTS/details"
mkdir -p "$D"
[ -d "$STAGE/bin" ] || [ ! -f "$STAGE.tar.xz" ] || tar -xJf "$STAGE.tar.xz" -C "$(dirname "$STAGE")"
[ -d "$STAGE/bin" ] || { echo "gpu_perf: $STAGE missing: run scripts/gpu_perf.sh --stage first" >&2; exit 2; }
export LD_LIBRARY_PATH="$ROOT/$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B="$ROOT/$STAGE/bin"
C="$B/cleval"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$RESULTS/gpu_perf.log") 2>&1
printf 'step\trc\tseconds\n' > "$D/steps.tsv"

START=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }'; }

# step NAME TIMEOUT_S FUNCTION: runs one step (a function of this script, in a child bash so
# that timeout can end it and everything it started) under its own timeout, logs its exit
# status and wall time, and never stops the script. No step runs past the whole run's budget
# (GPU_PERF_BUDGET seconds, default 540: a device call is cut at 600), so the summary is
# always written; a step with no time left is skipped (exit 125 in the table).
step() {
  local name=$1 limit=$(($2 * ${GPU_PERF_TIMEOUT_SCALE:-1})) fn=$3 t0 rc left
  left=$(awk -v used="$(elapsed "$START")" -v budget="${GPU_PERF_BUDGET:-540}" \
    'BEGIN { printf "%d", budget - used - 15 }')
  [ "$left" -lt "$limit" ] && limit=$left
  t0=$(date +%s.%N)
  if [ "$limit" -lt 5 ]; then
    echo "== $name: skipped, the run's budget is spent"
    printf '%s\t125\t0\n' "$name" >> "$D/steps.tsv"
    return 0
  fi
  echo "== $name (at most ${limit}s)"
  timeout --kill-after=5 "$limit" bash -c "$fn"
  rc=$?
  [ $rc -eq 124 ] && echo "   $name: timed out after ${limit}s"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "   $name: exit $rc"
  printf '%s\t%d\t%s\n' "$name" "$rc" "$(elapsed "$t0")" >> "$D/steps.tsv"
  return 0
}

# wall FILE COMMAND...: runs a command, its stdout to /dev/null, appends its wall seconds
# (whole process) to FILE.
wall() {
  local file=$1 t0 rc
  shift
  t0=$(date +%s.%N)
  "$@" > /dev/null
  rc=$?
  elapsed "$t0" >> "$file"
  return $rc
}

driver() {
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi: not an NVIDIA machine"
  ls /etc/OpenCL/vendors 2>/dev/null
  # NVIDIA's OpenCL library without an ICD file: the loader would not see the GPU.
  if [ ! -e /etc/OpenCL/vendors/nvidia.icd ] && ldconfig -p | grep -q libnvidia-opencl.so.1 &&
     [ -w /etc ]; then
    mkdir -p /etc/OpenCL/vendors && echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
    echo "wrote /etc/OpenCL/vendors/nvidia.icd"
  fi
  if ! python3 -c 'import h5py' 2>/dev/null && ls "$STAGE"/wheels/h5py-*.whl > /dev/null 2>&1; then
    pip install -q --no-index --find-links "$STAGE/wheels" h5py 2>&1 | tail -2
  fi
  "$C" devices | tee "$D/devices.txt"
}

# Writes the IDX pair DIR/NAME-images, DIR/NAME-labels of N images: the 60,000 training images
# tiled (Python's standard library only; a variable, since exported functions hold no heredoc).
MAKE_IDX='
import gzip, struct, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
images = gzip.open(src + "/train-images-idx3-ubyte.gz").read()[16:]
labels = gzip.open(src + "/train-labels-idx1-ubyte.gz").read()[8:]
with open(out + "-images", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28))
    for start in range(0, n, 60000):
        f.write(images[: (min(n, start + 60000) - start) * 784])
with open(out + "-labels", "wb") as f:
    f.write(struct.pack(">II", 0x801, n))
    for start in range(0, n, 60000):
        f.write(labels[: min(n, start + 60000) - start])
'

# The data: the training set as HDF5, a 512-image file for the start-up runs and the large
# file of GPU_PERF_BIG images, all written by idx2h5 (chunked, gzip) as cleval's users would.
data() {
  local names=("T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot")
  "$B/idx2h5" "$STAGE/data/train-images-idx3-ubyte.gz" "$STAGE/data/train-labels-idx1-ubyte.gz" \
    "$WORK/train.h5" "${names[@]}" || return
  for set in small:512 big:${GPU_PERF_BIG:-1000000}; do
    python3 -c "$MAKE_IDX" "$STAGE/data" "$WORK/${set%%:*}" "${set#*:}" &&
      "$B/idx2h5" "$WORK/${set%%:*}-images" "$WORK/${set%%:*}-labels" "$WORK/${set%%:*}.h5" \
        "${names[@]}" || return
    rm -f "$WORK/${set%%:*}-images" "$WORK/${set%%:*}-labels"
  done
  ls -la "$WORK"
}

# Start-up: `cleval devices` with every ICD and with NVIDIA's alone (PoCL's LLVM is loaded
# otherwise), then a 512-image eval cold (empty cleval, PoCL and CUDA caches) and warm, with
# the phases of its JSON report and the program builds of its --verbose log.
startup() {
  local caches="$WORK/caches"
  for i in 1 2 3; do wall "$D/startup_devices_all.txt" "$C" devices; done
  if [ -e /etc/OpenCL/vendors/nvidia.icd ]; then
    mkdir -p "$WORK/icd" && cp /etc/OpenCL/vendors/nvidia.icd "$WORK/icd/"
    for i in 1 2 3; do OCL_ICD_VENDORS="$WORK/icd" wall "$D/startup_devices_nvidia.txt" "$C" devices; done
  fi
  for run in cold warm1 warm2 warm3; do
    [ "$run" = cold ] && rm -rf "$caches" && mkdir -p "$caches/cleval" "$caches/pocl" "$caches/cuda"
    CLEVAL_CACHE_DIR="$caches/cleval" POCL_CACHE_DIR="$caches/pocl" CUDA_CACHE_PATH="$caches/cuda" \
      wall "$D/startup_eval_$run.wall" "$C" eval --model datasets/fmnist_cnn.onnx \
      --data "$WORK/small.h5" --batch 512 --json "$D/startup_eval_$run.json" --quiet --verbose \
      2> "$D/startup_eval_$run.log"
  done
}

cnn_10k() {
  for i in 1 2 3; do
    wall "$D/eval10k.wall" "$C" eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5 \
      --batch 1024 --json "$D/eval10k_$i.json" --quiet
  done
  # Device-only: the batches in memory, per-layer device times of a profiled pass.
  "$B/bench_nn" datasets/fmnist_cnn.onnx datasets/fmnist_test.h5 --batch 256,1024 --repeat 5 \
    > "$D/bench_nn_10k.txt" 2>&1
  grep -E "^RESULT|^LAYER" "$D/bench_nn_10k.txt" | head -20
}

cnn_big() {
  wall "$D/evalbig.wall" "$C" eval --model datasets/fmnist_cnn.onnx --data "$WORK/big.h5" \
    --batch 1024 --json "$D/evalbig.json" --quiet
}

zoo() {
  local found=0
  for name in resnet_bottleneck_17 mobilenet_v2_17 vit_17; do
    local model=tests/fixtures/zoo/$name.onnx io=tests/fixtures/zoo/${name}_io.h5
    [ -f "$model" ] && [ -f "$io" ] || { echo "   zoo: $name not present"; continue; }
    found=1
    wall "$D/zoo_$name.wall" "$C" eval --model "$model" --data "$io" --json "$D/zoo_$name.json" --quiet
    "$B/bench_nn" "$model" "$io" --batch 5 --repeat 5 > "$D/zoo_${name}_bench.txt" 2>&1
    grep -E "^RESULT" "$D/zoo_${name}_bench.txt"
  done
  [ $found = 1 ] || echo "   zoo: no model present (tests/fixtures/zoo)"
}

knn() {
  for i in 1 2 3; do
    wall "$D/knn.wall" "$C" knn --train "$WORK/train.h5" --data datasets/fmnist_test.h5 -k 5 \
      --json "$D/knn_$i.json" --quiet
  done
}

# The exact integer mode's direct kernel on the same uint8 files (by default the GPU family
# keeps the float path, which is what `knn` timed): whether it should become the default there.
knn_integer() {
  for i in 1 2 3; do
    CLEVAL_KNN_INTEGER=always wall "$D/knn_integer.wall" "$C" knn --train "$WORK/train.h5" \
      --data datasets/fmnist_test.h5 -k 5 --json "$D/knn_integer_$i.json" --quiet
  done
}

# The tuner sweep (`cleval tune`, where the build has it) into a fresh tuning cache, then the
# 10^4-image eval again with the winners, against the untuned runs of cnn_10k.
tune() {
  if ! "$C" tune --help > /dev/null 2>&1; then
    echo "   no \`cleval tune\` in this build: skipped" | tee "$D/tune.txt"
    return 0
  fi
  export CLEVAL_CACHE_DIR="$WORK/tune-cache"
  "$C" tune --model datasets/fmnist_cnn.onnx --batch 1024 --budget "${GPU_PERF_TUNE_BUDGET:-45}" \
    > "$D/tune.txt" 2>&1
  cat "$D/tune.txt"
  for i in 1 2 3; do
    wall "$D/eval10k_tuned.wall" "$C" eval --model datasets/fmnist_cnn.onnx \
      --data datasets/fmnist_test.h5 --batch 1024 --json "$D/tuned10k_$i.json" --quiet
  done
}

histogram() {
  "$B/bench_histogram" --random 50000000 10 --repeat 5 > "$D/histogram.json"
}

torch_side() {
  if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo '{"skipped": "PyTorch with CUDA is not importable here"}' | tee "$D/torch.json"
    return 0
  fi
  python3 bench/gpu_perf_torch.py "$STAGE/data/fmnist_cnn_weights.npz" "$WORK/train.h5" \
    datasets/fmnist_test.h5 "$WORK/big.h5" > "$D/torch.json"
}

probe() {
  "$B/gpu_probe" ${GPU_PERF_QUICK:+--quick} > "$D/probe.json" && cat "$D/probe.json"
}

export ROOT STAGE B C D WORK MAKE_IDX
export -f elapsed wall driver probe data startup cnn_10k cnn_big zoo knn knn_integer tune histogram \
  torch_side
# The comparisons first; the long and optional steps last, where the budget may cut them.
step driver 60 driver
step probe 90 probe
step data 150 data
step startup 120 startup
step cnn_10k 90 cnn_10k
step knn 120 knn
step knn_integer 120 knn_integer
step histogram 60 histogram
step torch 240 torch_side
step zoo 60 zoo
step cnn_big 240 cnn_big
step tune 90 tune
python3 bench/gpu_perf_summary.py "$D" > "$RESULTS/summary.md" || echo "summary failed"
cat "$RESULTS/summary.md"
