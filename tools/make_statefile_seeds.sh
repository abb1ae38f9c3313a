#!/usr/bin/env bash
# Writes the seeds of the statefile fuzz target (fuzz/seeds/statefile/): real checkpoints and
# part files of small `cleval metrics` runs, each also without its trailing seal (so that the
# fuzzer's changes reach HDF5 instead of stopping at the seal's byte checksum).
#   tools/make_statefile_seeds.sh PATH_TO_CLEVAL
set -euo pipefail
cleval=${1:?usage: tools/make_statefile_seeds.sh PATH_TO_CLEVAL}
cd "$(dirname "$0")/.."
out=fuzz/seeds/statefile
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 60 rows of 4 classes; with_scores adds probabilities; bad puts label -1 at row 45,
# which stops the run there, keeping the checkpoint written at row 40.
python3 - "$work" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(7)
y = rng.integers(0, 4, 60).astype(np.int32)
pred = np.where(rng.random(60) < 0.7, y, rng.integers(0, 4, 60)).astype(np.int32)
scores = rng.random((60, 4)).astype(np.float32)
scores /= scores.sum(axis=1, keepdims=True)
for name, with_scores, bad in [("pairs", False, False), ("pairs_bad", False, True),
                               ("scored", True, False), ("scored_bad", True, True)]:
    with h5py.File(f"{sys.argv[1]}/{name}.h5", "w") as f:
        f["y"] = y
        p = pred.copy()
        if bad: p[45] = -1
        f["pred"] = p
        if with_scores: f["scores"] = scores
# A KNN training set and a test set (8 features) for part files that keep scores.
for name, n, labels in [("train", 40, True), ("test", 30, True), ("test_unlabeled", 30, False)]:
    with h5py.File(f"{sys.argv[1]}/{name}.h5", "w") as f:
        f["X"] = rng.random((n, 8)).astype(np.float32)
        if labels: f["y"] = rng.integers(0, 3, n).astype(np.int32)
PY
for data in pairs scored; do
  "$cleval" metrics --data "$work/${data}_bad.h5" --batch 10 --checkpoint "$work/ck_$data.h5" \
    --checkpoint-every 20 >/dev/null 2>&1 && { echo "the bad run did not stop"; exit 1; }
  cp "$work/ck_$data.h5" "$out/checkpoint_$data.h5"
done
"$cleval" metrics --data "$work/pairs.h5" --shard 0/1 --save "$out/part_whole_metrics.h5" >/dev/null
"$cleval" metrics --data "$work/pairs.h5" --shard 1/2 --save "$out/part_half_metrics.h5" >/dev/null
for test in test test_unlabeled; do
  "$cleval" knn --train "$work/train.h5" --data "$work/$test.h5" -k 3 --shard 0/1 \
    --save "$out/part_whole_knn_$test.h5" >/dev/null
done
# The same files without the seal (its last 32 bytes: "\ncleval-fnv1a64:" and 16 hex digits).
for f in "$out"/checkpoint_*.h5 "$out"/part_*.h5; do
  head -c -32 "$f" >"${f%.h5}_unsealed.h5"
done
ls -l "$out"
