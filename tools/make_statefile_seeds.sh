#!/usr/bin/env bash
# Writes the seeds of the statefile fuzz target (fuzz/seeds/statefile/): real checkpoints and
# part files of small `cleval metrics` and `cleval knn` runs (with the other slice of each part's
# job in fuzz/statefile_siblings/), each also unsealed (the statefile target reseals sealed
# inputs; unsealed ones take the loaders' other path).
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
# Two-slice jobs: slice 1 is a seed, slice 0 the pristine part the target merges it with.
sib=fuzz/statefile_siblings
mkdir -p "$sib"
shard() { # NAME COMMAND ARGS...: slices 0 and 1 of 2
  local name=$1; shift
  "$cleval" "$@" --shard 0/2 --save "$sib/${name}_slice0.h5" >/dev/null
  "$cleval" "$@" --shard 1/2 --save "$out/part_${name}_slice1.h5" >/dev/null
}
shard metrics metrics --data "$work/pairs.h5"
shard knn knn --train "$work/train.h5" --data "$work/test.h5" -k 3
shard knn_unlabeled knn --train "$work/train.h5" --data "$work/test_unlabeled.h5" -k 3
# The same files unsealed: the seal's text (the last 32 bytes: "\ncleval-fnv1a64:" and 16 hex
# digits) changed in one letter, so that it is no seal. Not cut off: HDF5's end of file may lie
# past the seal's start, and a shorter file would be a truncated one.
for f in "$out"/checkpoint_*.h5 "$out"/part_*.h5; do
  cp "$f" "${f%.h5}_unsealed.h5"
  printf X | dd of="${f%.h5}_unsealed.h5" bs=1 seek=$(($(stat -c %s "$f") - 31)) conv=notrunc \
    status=none
done
ls -l "$out"
