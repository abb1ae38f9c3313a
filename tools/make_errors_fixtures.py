#!/usr/bin/env python3
"""Generate the reference fixtures of the error analysis (--errors N) under tests/fixtures/errors/.

For every case this writes <case>.h5 (the input cleval reads) and <case>.json, the "errors"
object numpy computes from the labels, the predictions and the scores:

  n                  N, the rows kept per list
  confused_pairs     the off-diagonal (true, pred) cells with the largest counts, ties by
                     (true, pred), at most 10; each with its count and its first N row numbers
  confident_wrong    rows with pred != true, confidence descending, ties by the lower row, N
  unconfident_right  rows with pred == true, confidence ascending, ties by the lower row, N
  probabilities      which view gave the confidence (the maximum probability of the row):
                     "as_given" when every score row is non-negative and sums to 1 within 1e-4,
                     else "softmax" (computed in float64 here)

The cases: `metrics` files (y, pred, scores) of probabilities in steps of 1/8 (exact ties of
confidence between different rows; pred from the file, not always the argmax) and of logits
drawn from a few prototype rows (softmax; equal rows are the only ties); two ONNX models of
tests/fixtures/onnx whose scores onnxruntime computes (softmax outputs, as given; log-softmax
outputs, softmax); and a KNN case whose scores are scikit-learn's vote fractions (k = 3: ties
everywhere). The inputs are drawn again until every pair of distinct confidences (and every
row's best and second-best score, for the models) differs by 1e-4 or more, so float32 on a
device ranks them as float64 does here. Seeded; run from the repository root:

    python3 tools/make_errors_fixtures.py
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.neighbors import KNeighborsClassifier

from fixture_io import write_case

OUT = Path("tests/fixtures/errors")
ONNX = Path("tests/fixtures/onnx")
TOP_PAIRS = 10
GAP = 1e-4


def confidences(scores):
    """The maximum probability per row, and the view it comes from."""
    s = scores.astype(np.float64)
    if (s >= 0).all() and np.all(np.abs(s.sum(axis=1) - 1) <= 1e-4):
        return s.max(axis=1), "as_given"
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return 1.0 / e.sum(axis=1), "softmax"


def well_separated(values):
    """Distinct values at least GAP apart (equal ones are ties the test expects)."""
    v = np.unique(values)
    return len(v) < 2 or np.diff(v).min() >= GAP


def sample_list(rows, conf, y, pred, descending, n):
    key = -conf[rows] if descending else conf[rows]
    order = rows[np.lexsort((rows, key))][:n]  # by confidence, then by row
    return [{"index": int(i), "true": int(y[i]), "pred": int(pred[i]),
             "confidence": float(conf[i])} for i in order]


def reference(y, pred, scores, n):
    wrong = np.flatnonzero(y != pred)
    cells = {}
    for i in wrong:
        cells.setdefault((int(y[i]), int(pred[i])), []).append(int(i))
    top = sorted(cells.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:TOP_PAIRS]
    out = {"n": n, "confused_pairs": [{"true": t, "pred": p, "count": len(rows),
                                       "indices": rows[:n]} for (t, p), rows in top]}
    if scores is not None:
        conf, view = confidences(scores)
        right = np.flatnonzero(y == pred)
        out["confident_wrong"] = sample_list(wrong, conf, y, pred, True, n)
        out["unconfident_right"] = sample_list(right, conf, y, pred, False, n)
        out["probabilities"] = view
    return out


def write(case, arrays, expected):
    write_case(OUT, case, arrays, expected)


def noisy_predictions(rng, best, c, wrong_rate):
    """The argmax, replaced by a random class in about wrong_rate of the rows."""
    pred = best.copy()
    flip = rng.random(len(pred)) < wrong_rate
    pred[flip] = rng.integers(0, c, flip.sum())
    return pred.astype(np.int32)


def metrics_probs(rng, n_rows=211, c=6, n=4):
    units = np.zeros((n_rows, c), dtype=np.int64)
    for i in range(n_rows):
        for _ in range(8):
            units[i, rng.integers(0, c)] += 1
    scores = (units / 8.0).astype(np.float32)
    y = rng.integers(0, c, n_rows).astype(np.int32)
    pred = noisy_predictions(rng, scores.argmax(axis=1), c, 0.3)
    write("metrics_probs", {"y": y, "pred": pred, "scores": scores},
          reference(y, pred, scores, n))


def metrics_logits(rng, n_rows=97, c=4, n=5, prototypes=12):
    while True:
        protos = rng.normal(0, 1.5, (prototypes, c)).astype(np.float32)
        if well_separated(confidences(protos)[0]):
            break
    pick = rng.integers(0, prototypes, n_rows)
    scores = protos[pick]
    y = rng.integers(0, c, n_rows).astype(np.int32)
    pred = noisy_predictions(rng, scores.argmax(axis=1), c, 0.4)
    write("metrics_logits", {"y": y, "pred": pred, "scores": scores},
          reference(y, pred, scores, n))


def eval_case(rng, case, model, n_rows, n):
    session = ort.InferenceSession(str(ONNX / f"{model}.onnx"))
    inp = session.get_inputs()[0]
    while True:
        x = rng.standard_normal([n_rows] + [int(d) for d in inp.shape[1:]]).astype(np.float32)
        scores = session.run(None, {inp.name: x})[0].astype(np.float32)
        top2 = np.sort(scores, axis=1)[:, -2:]
        if well_separated(confidences(scores)[0]) and (top2[:, 1] - top2[:, 0]).min() >= GAP:
            break
    y = rng.integers(0, scores.shape[1], n_rows).astype(np.int32)
    pred = scores.argmax(axis=1)
    write(case, {"X": x, "y": y}, reference(y, pred, scores, n))


def knn_case(rng, n=6, c=4):
    x_train = rng.standard_normal((41, 3)).astype(np.float32)
    y_train = rng.integers(0, c, 41).astype(np.int32)
    y_train[:c] = np.arange(c)  # every class in the training set
    x_test = rng.standard_normal((53, 3)).astype(np.float32)
    y_test = rng.integers(0, c, 53).astype(np.int32)
    knn = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x_train, y_train)
    scores = knn.predict_proba(x_test).astype(np.float32)
    pred = knn.predict(x_test)
    write("knn_train", {"X": x_train, "y": y_train}, None)
    write("knn", {"X": x_test, "y": y_test}, reference(y_test, pred, scores, n))


def main():
    rng = np.random.default_rng(20261207)
    metrics_probs(rng)
    metrics_logits(rng)
    eval_case(rng, "eval_mlp_softmax", "mlp_softmax", 60, 5)
    eval_case(rng, "eval_gemm_matmul", "gemm_matmul", 47, 3)
    knn_case(rng)


if __name__ == "__main__":
    main()
