#!/usr/bin/env python3
"""Generate the reference fixtures of ROC AUC and average precision under tests/fixtures/auc/.

Each case is <case>.h5 (the input cleval reads) and <case>.json (the reference numbers):
"roc_auc" and "average_precision", each {"macro": x, "weighted": x} or null, from
scikit-learn's roc_auc_score and average_precision_score one-vs-rest over the classes that
have both a positive and a negative sample, weighted by their positives; "probabilities"
("as_given" or "softmax") says which probabilities P they are computed on, as cleval decides:
the scores when every row is non-negative and sums to 1 within 1e-4, else their softmax.
Where every class qualifies, the averages are also checked against scikit-learn's own
multi-class calls (roc_auc_score(multi_class='ovr'), average_precision_score on the binarized
labels).

Cases:
  probs_ties     metrics: probabilities in steps of 1/8 (ties everywhere), one class absent
  logits         metrics: raw logits (softmax), every class present
  one_class      metrics: every label the same class: no class qualifies, null
  wide_101       metrics: 101 classes (above --auc auto's 100)
  knn            knn (k = 7, brute force): vote fractions, many ties (knn_train.h5 beside it)
  eval_fmnist    eval: the first 300 images of the shipped Fashion-MNIST test set; P is the
                 softmax of onnxruntime's outputs for the shipped model, not of cleval's

Where P is a softmax, float32 rounding could merge or split equal probabilities; the script
checks that P in float64 and in float32 give the same numbers, so the expected values do not
depend on how exp rounds. Seeded; run from the repository root:

    python3 tools/make_auc_fixtures.py
"""

from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import label_binarize

from fixture_io import write_case

OUT = Path("tests/fixtures/auc")
DATASETS = Path("datasets")


def probabilities(scores):
    """The scores as given when they are probability rows, else their softmax: float64 and
    float32 versions."""
    s = scores.astype(np.float64)
    if (s >= 0).all() and np.all(np.abs(s.sum(axis=1) - 1) <= 1e-4):
        return "as_given", s, scores.astype(np.float32)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    s32 = scores.astype(np.float32)
    e32 = np.exp(s32 - s32.max(axis=1, keepdims=True))
    return "softmax", e / e.sum(axis=1, keepdims=True), e32 / e32.sum(axis=1, keepdims=True)


def averages(y, p):
    """Macro and weighted averages over the qualifying classes, or None."""
    roc, ap, support = [], [], []
    for c in range(p.shape[1]):
        positive = y == c
        if positive.all() or not positive.any():
            continue
        roc.append(roc_auc_score(positive, p[:, c]))
        ap.append(average_precision_score(positive, p[:, c]))
        support.append(int(positive.sum()))
    if not roc:
        return None, None
    pair = lambda v: {"macro": float(np.mean(v)), "weighted": float(np.average(v, weights=support))}
    if len(roc) == p.shape[1] and p.shape[1] > 2:  # scikit-learn's own multi-class calls agree
        labels = list(range(p.shape[1]))
        for avg in ("macro", "weighted"):
            direct = roc_auc_score(y, p, multi_class="ovr", average=avg, labels=labels)
            assert abs(direct - pair(roc)[avg]) <= 1e-12 * direct, (avg, direct)
            direct = average_precision_score(label_binarize(y, classes=labels), p, average=avg)
            assert abs(direct - pair(ap)[avg]) <= 1e-12 * direct, (avg, direct)
    return pair(roc), pair(ap)


def reference(scores, y):
    kind, p64, p32 = probabilities(scores)
    roc, ap = averages(y, p32.astype(np.float64) if kind == "as_given" else p64)
    if kind == "softmax":  # the ranking must not depend on the rounding of P
        roc32, ap32 = averages(y, p32.astype(np.float64))
        assert roc32 == roc and ap32 == ap, "float32 and float64 softmax disagree: change seed"
    return {"probabilities": kind, "roc_auc": roc, "average_precision": ap}


def write(case, arrays, expected):
    write_case(OUT, case, arrays, expected)


def prediction_case(case, scores, y):
    scores = scores.astype(np.float32)
    y = y.astype(np.int32)
    pred = scores.argmax(axis=1).astype(np.int32)
    write(case, {"y": y, "pred": pred, "scores": scores}, reference(scores, y))


def knn_case(rng):
    c = 5
    x_train = rng.standard_normal((120, 4)).astype(np.float32)
    y_train = rng.integers(0, c, 120).astype(np.int32)
    x_test = rng.standard_normal((97, 4)).astype(np.float32)
    y_test = rng.integers(0, c, 97).astype(np.int32)
    knn = KNeighborsClassifier(n_neighbors=7, algorithm="brute").fit(x_train, y_train)
    scores = knn.predict_proba(x_test).astype(np.float32)
    write("knn_train", {"X": x_train, "y": y_train}, None)
    write("knn", {"X": x_test, "y": y_test}, reference(scores, y_test))


def eval_case(n):
    with h5py.File(DATASETS / "fmnist_test.h5", "r") as f:
        x, y = f["X"][:n], f["y"][:n]
    session = ort.InferenceSession(str(DATASETS / "fmnist_cnn.onnx"))
    scores = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    write("eval_fmnist", {"X": x, "y": y}, reference(scores, y))


def main():
    rng = np.random.default_rng(20261207)
    n, c = 211, 6
    units = np.zeros((n, c), dtype=np.int64)
    for i in range(n):
        for _ in range(8):
            units[i, rng.integers(0, c)] += 1
    prediction_case("probs_ties", units / 8.0, rng.integers(0, c - 1, n))  # class 5 absent
    prediction_case("logits", rng.normal(0, 2, (157, 4)), rng.integers(0, 4, 157))
    prediction_case("one_class", rng.dirichlet(np.ones(3), 20), np.full(20, 2))
    n, c = 150, 101
    prediction_case("wide_101", rng.dirichlet(np.ones(c), n), rng.integers(0, c, n))
    knn_case(rng)
    eval_case(300)


if __name__ == "__main__":
    main()
