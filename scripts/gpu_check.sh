#!/usr/bin/env bash
# The device check on a machine with an NVIDIA GPU (see GPU_NOTES): run from the repository root
# after scripts/gpu_stage.sh staged .gpu/ here. Writes everything to $OUT.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
FINAL=${OUT:-/tmp/cleval-gpu}
OUT=$(mktemp -d) # the details; FINAL gets the log and one archive of them
mkdir -p "$FINAL"
exec > >(tee "$FINAL/gpu_check.log") 2>&1
[ -d .gpu ] || tar -xJf .gpu.tar.xz
export LD_LIBRARY_PATH="$ROOT/.gpu/lib"

echo "== driver"
nvidia-smi -L
ls /etc/OpenCL/vendors 2>/dev/null; ldconfig -p | grep -i opencl
if [ ! -e /etc/OpenCL/vendors/nvidia.icd ] && ldconfig -p | grep -q libnvidia-opencl.so.1; then
  mkdir -p /etc/OpenCL/vendors && echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
fi
# The test binaries carry this checkout's absolute paths.
if [ "$ROOT" != /work/main ]; then mkdir -p /work && ln -sfn "$ROOT" /work/main; fi
mkdir -p build/data && cp -a .gpu/build/. build/
C=build/src/cleval
build/bench/idx2h5 .gpu/data/train-images-idx3-ubyte.gz .gpu/data/train-labels-idx1-ubyte.gz \
  build/data/fmnist_train.h5 "T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag \
  "Ankle boot"
$C devices

echo "== tests on the GPU (the default device: the first GPU)"
for t in device histogram metrics knn nn nn_precision onnx_conformance cli_eval cli_knn \
  cli_metrics cli_precision drift knn_topk_gpu nn_conv_gpu; do
  timeout 120 build/tests/test_$t > "$OUT/test_$t.log" 2>&1
  echo "test_$t: exit $? ($(grep -c '\[       OK \]' "$OUT/test_$t.log") passed," \
       "$(grep -c '\[  FAILED  \] test' "$OUT/test_$t.log") failed)"
done

echo "== cleval on the GPU"
for batch in 256 1024; do
  for run in 1 2 3; do
    $C eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5 --batch $batch \
      --json "$OUT/eval_b${batch}_$run.json" --quiet > /dev/null
  done
done
$C eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5 --batch 1024 --profile \
  --quiet > "$OUT/eval_profile.txt"
for run in 1 2 3; do
  $C knn --train build/data/fmnist_train.h5 --data datasets/fmnist_test.h5 -k 5 \
    --json "$OUT/knn_$run.json" --quiet > /dev/null
done
build/bench/bench_histogram --random 50000000 10 --repeat 5 > "$OUT/histogram.json"

echo "== fp16: half arithmetic (cl_khr_fp16) against float arithmetic and fp32"
for a in float half; do
  $C eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5 --precision fp16 \
    --fp16-arithmetic $a --batch 1024 --save "$OUT/fp16_$a.h5" --json "$OUT/fp16_$a.json" \
    --quiet > /dev/null
done
$C eval --model datasets/fmnist_cnn.onnx --data datasets/fmnist_test.h5 --batch 1024 \
  --save "$OUT/fp32.h5" --quiet > /dev/null
$C compare "$OUT/fp32.h5" "$OUT/fp16_half.h5" --max-accuracy-drop 0.005 > "$OUT/fp16_compare.txt"
echo "compare fp32 vs fp16 half arithmetic: exit $?"; sed -n 4,9p "$OUT/fp16_compare.txt"
build/bench/bench_nn datasets/fmnist_cnn.onnx datasets/fmnist_test.h5 --batch 1024 --repeat 5 \
  --precision fp32,fp16-float,fp16-half > "$OUT/bench_nn_fp16.txt" 2>&1
grep -E "^batch|device:" "$OUT/bench_nn_fp16.txt"

echo "== PyTorch on the same GPU"
python3 bench/gpu_anchors.py .gpu/data .gpu/fmnist_cnn.pt > "$OUT/torch.json"

echo "== summary"
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def med(pattern, key):
    values = []
    for path in glob.glob(f"{out}/{pattern}"):
        d = json.load(open(path))
        for k in key.split("."):
            d = d[k]
        values.append(d)
    return statistics.median(values) if values else float("nan")
torch = json.load(open(f"{out}/torch.json"))
hist = json.load(open(f"{out}/histogram.json"))
for batch in (256, 1024):
    c = med(f"eval_b{batch}_*.json", "timing.samples_per_s")
    t = torch[f"cnn_images_per_s_batch{batch}"]
    print(f"CNN batch {batch}: cleval {c:.0f} img/s (whole process), PyTorch {t:.0f} img/s, "
          f"ratio {c / t:.2f}")
print("cleval accuracy", med("eval_b256_*.json", "accuracy"), "PyTorch", torch["cnn_accuracy"])
k = med("knn_*.json", "timing.total_s")
print(f"KNN full Fashion-MNIST k=5: cleval {k:.2f} s (whole process), PyTorch cdist+topk "
      f"{torch['knn_seconds']:.2f} s; accuracy {med('knn_*.json', 'accuracy')} vs "
      f"{torch['knn_accuracy']}")
print(f"confusion of 5e7 pairs: cleval device {hist['device_s'] * 1e3:.1f} ms ({hist['path']}), "
      f"torch.bincount {torch['bincount_seconds'] * 1e3:.1f} ms")
PY
tar -czf "$FINAL/details.tar.gz" -C "$OUT" .
