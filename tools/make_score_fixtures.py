#!/usr/bin/env python3
"""Generate the reference fixtures of the score-based metrics under tests/fixtures/scores/.

For every case this writes two files:

  <case>.h5    `y` (int32 [N]), `pred` (int32 [N], the first maximum of each score row) and
               `scores` (float32 [N, C]); eval cases hold `X` for a model instead of pred and
               scores (the scores are what onnxruntime computes for that model).
  <case>.json  the reference numbers: "probabilities" ("as_given" when every row is
               non-negative and sums to 1 within 1e-4, else "softmax"), "top_k" {k: accuracy}
               from scikit-learn's top_k_accuracy_score(labels=0..C-1), "log_loss" from
               scikit-learn's log_loss(labels=0..C-1) on the probabilities in float64,
               "brier" (the mean over samples of the sum over classes of (P - onehot)^2), and
               "ece" and "bins" from torchmetrics' MulticlassCalibrationError(n_bins=15,
               norm='l1') on the float32 probabilities (bins [i/15, (i+1)/15), the last also
               holding a confidence of 1).

The cases: probabilities with ties and confidences on the bin boundaries, raw logits with
ties (softmax), a single sample, two classes, a prime number of samples above the reducer's
1024 rows per work-group, two small ONNX models (softmax outputs and raw outputs) and a KNN
case (knn_train.h5, knn.h5: vote fractions of KNeighborsClassifier(5, algorithm='brute')). The
C tests compare cleval's reports with these numbers, so they are committed and the tests never
run Python. Seeded; run from the repository root:

    python3 tools/make_score_fixtures.py
"""

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.metrics import log_loss, top_k_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from torchmetrics.classification import MulticlassCalibrationError

from fixture_io import write_case

OUT = Path("tests/fixtures/scores")
ONNX = Path("tests/fixtures/onnx")
BINS = 15


def probabilities(scores):
    """The scores as given when they are probabilities, else their softmax (float64)."""
    s = scores.astype(np.float64)
    if (s >= 0).all() and np.all(np.abs(s.sum(axis=1) - 1) <= 1e-4):
        return "as_given", s, scores
    p32 = torch.softmax(torch.from_numpy(scores), dim=1).numpy()
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return "softmax", e / e.sum(axis=1, keepdims=True), p32


def calibration(p32, y):
    """torchmetrics' ECE and its bins, the confidence-1 bin folded into the last one."""
    c = p32.shape[1]
    pt = torch.from_numpy(p32.astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    ece = float(MulticlassCalibrationError(num_classes=c, n_bins=BINS, norm="l1")(pt, yt))
    conf, pred = pt.max(dim=1)
    correct = (pred == yt).double()
    bounds = torch.linspace(0, 1, BINS + 1, dtype=torch.float32)
    index = (torch.bucketize(conf, bounds, right=True) - 1).clamp(max=BINS - 1)
    bins = []
    for b in range(BINS):
        m = index == b
        n = int(m.sum())
        bins.append({"lower": b / BINS, "upper": (b + 1) / BINS, "count": n,
                     "confidence": float(conf[m].double().mean()) if n else 0.0,
                     "accuracy": float(correct[m].mean()) if n else 0.0})
    return ece, bins


def reference(scores, y, ks):
    c = scores.shape[1]
    kind, p64, p32 = probabilities(scores)
    labels = list(range(c))
    top_k = {}
    for k in ks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k >= C: scikit-learn warns and returns 1
            if c > 2:
                top_k[str(k)] = float(top_k_accuracy_score(y, scores, k=k, labels=labels))
            else:  # scikit-learn wants 1-D scores for two classes: k >= 2 is all hits
                top_k[str(k)] = 1.0 if k >= c else float(np.mean(scores.argmax(1) == y))
    onehot = np.eye(c)[y]
    ece, bins = calibration(p32, y)
    return {"probabilities": kind, "top_k": top_k,
            "log_loss": float(log_loss(y, p64, labels=labels)),
            "brier": float(np.mean(np.sum((p64 - onehot) ** 2, axis=1))),
            "ece": ece, "bins": bins}


def write(case, arrays, expected):
    write_case(OUT, case, arrays, expected)


def prediction_case(case, scores, y, ks):
    scores = scores.astype(np.float32)
    y = y.astype(np.int32)
    pred = scores.argmax(axis=1).astype(np.int32)
    write(case, {"y": y, "pred": pred, "scores": scores}, reference(scores, y, ks))


def eval_case(case, model, n, rng):
    session = ort.InferenceSession(str(ONNX / f"{model}.onnx"))
    inp = session.get_inputs()[0]
    shape = [n] + [int(d) for d in inp.shape[1:]]
    x = rng.standard_normal(shape).astype(np.float32)
    scores = session.run(None, {inp.name: x})[0].astype(np.float32)
    y = rng.integers(0, scores.shape[1], n).astype(np.int32)
    write(case, {"X": x, "y": y}, reference(scores, y, [1, 2]))


def knn_case(case, rng):
    """KNN (k = 5, brute force): the scores are scikit-learn's vote fractions."""
    c = 4
    x_train = rng.standard_normal((41, 3)).astype(np.float32)
    y_train = rng.integers(0, c, 41).astype(np.int32)
    y_train[:c] = np.arange(c)  # every class in the training set
    x_test = rng.standard_normal((23, 3)).astype(np.float32)
    y_test = rng.integers(0, c, 23).astype(np.int32)
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(x_train, y_train)
    scores = knn.predict_proba(x_test).astype(np.float32)
    write(f"{case}_train", {"X": x_train, "y": y_train}, None)
    write(case, {"X": x_test, "y": y_test}, reference(scores, y_test, [1, 2]))


def main():
    rng = np.random.default_rng(20261206)
    ks = [1, 2, 5, 7]

    # Probabilities in steps of 1/10 (ties everywhere, confidences 0.2, 0.4, 0.6, 0.8 and 1 on
    # the bin boundaries), N = 37.
    n, c = 37, 7
    units = np.zeros((n, c), dtype=np.int64)
    for i in range(n):
        for _ in range(10):
            units[i, rng.integers(0, c)] += 1
    prediction_case("probs_ties", units / 10.0, rng.integers(0, c, n), ks)

    # Raw logits rounded to halves (ties), N = 101.
    n, c = 101, 10
    logits = np.round(rng.normal(0, 2, (n, c)) * 2) / 2
    prediction_case("logits_ties", logits, rng.integers(0, c, n), [1, 2, 5, 10])

    # One sample; two classes.
    prediction_case("single", np.array([[0.5, -1.0, 2.0]]), np.array([1]), [1, 2, 3])
    prediction_case("binary", rng.normal(0, 1, (13, 2)), rng.integers(0, 2, 13), [1, 2])

    # A prime N above 1024 rows per work-group, probabilities from a Dirichlet.
    n, c = 2053, 5
    prediction_case("dirichlet_2053", rng.dirichlet(np.ones(c) * 0.7, n), rng.integers(0, c, n),
                    [1, 2, 5])

    # Models: softmax outputs (as given) and raw outputs (softmax).
    eval_case("eval_mlp_softmax", "mlp_softmax", 31, rng)
    eval_case("eval_gemm_matmul", "gemm_matmul", 29, rng)
    knn_case("knn", rng)


if __name__ == "__main__":
    main()
