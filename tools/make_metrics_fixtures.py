#!/usr/bin/env python3
"""Generate the reference fixtures for `cleval metrics` under tests/fixtures/metrics/.

For every case this writes two files:

  <case>.h5    `y` and `pred` (1-D integer arrays, in the dtype under test), optionally
               `class_names` (variable-length UTF-8 strings), and `expected_confusion`
               (int64 [C, C], rows = true class, columns = predicted class, gzip).
  <case>.json  what scikit-learn reports for those labels, with labels = 0..C-1 where
               C = max(max(y), max(pred)) + 1 and zero_division=0: accuracy, macro /
               weighted / micro precision-recall-f1, per-class scores and support, and the
               text of classification_report (digits=2).

The C test suite compares cleval's results against these numbers, so they are committed and
the tests never run Python. The cases cover binary and many-class problems, unusual
integer dtypes, sample counts around the 256 work-group size, a class that is never
predicted, a class absent from the data, a single sample, class names (non-ASCII
included) and a perfect classifier. Everything is seeded, so rerunning the script
reproduces the same files. Run from the repository root:

    python3 tools/make_metrics_fixtures.py
"""

import json
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"


def noisy_predictions(rng, y, n_classes, p_correct):
    """Copy y, replacing each label with probability 1 - p_correct by a different one."""
    wrong = rng.random(y.size) >= p_correct
    shift = rng.integers(1, n_classes, size=y.size)
    return np.where(wrong, (y + shift) % n_classes, y)


def make_cases():
    """Return a list of (name, y, pred, class_names or None, expected C)."""
    cases = []

    rng = np.random.default_rng(20261127)
    y = rng.integers(0, 2, size=1000)
    pred = np.where(rng.random(1000) < 0.2, 1 - y, y)
    cases.append(("c2_n1000", y.astype(np.int64), pred.astype(np.int64), None, 2))

    rng = np.random.default_rng(10997)
    y = rng.integers(0, 10, size=997)
    pred = noisy_predictions(rng, y, 10, 0.7)
    cases.append(("c10_n997", y.astype(np.uint8), pred.astype(np.int32), None, 10))

    rng = np.random.default_rng(1005000)
    y = rng.integers(0, 100, size=5000)
    pred = noisy_predictions(rng, y, 100, 0.6)
    cases.append(("c100_n5000", y.astype(np.int32), pred.astype(np.int32), None, 100))

    rng = np.random.default_rng(100020000)
    y = rng.integers(0, 1000, size=20000)
    pred = noisy_predictions(rng, y, 1000, 0.5)
    cases.append(("c1000_n20000", y.astype(np.int32), pred.astype(np.int32), None, 1000))

    # Class 3 occurs in y but is never predicted: its precision is 0 (zero_division=0).
    rng = np.random.default_rng(5200)
    y = rng.integers(0, 5, size=200)
    pred = noisy_predictions(rng, y, 5, 0.75)
    is_3 = pred == 3
    pred[is_3] = rng.choice([0, 1, 2, 4], size=int(is_3.sum()))
    cases.append(("never_predicted", y.astype(np.int64), pred.astype(np.int64), None, 5))

    # Labels from {0, 1, 2, 4}: class 3 has support 0 and is never predicted.
    rng = np.random.default_rng(4300)
    present = np.array([0, 1, 2, 4])
    y = rng.choice(present, size=300)
    pred = np.where(rng.random(300) < 0.7, y, rng.choice(present, size=300))
    cases.append(("absent_class", y.astype(np.int32), pred.astype(np.int32), None, 5))

    cases.append(("single", np.array([2], np.int64), np.array([1], np.int64), None, 3))

    # One more sample than a 256-wide work-group.
    rng = np.random.default_rng(7257)
    y = rng.integers(0, 7, size=257)
    pred = noisy_predictions(rng, y, 7, 0.65)
    cases.append(("n257", y.astype(np.int16), pred.astype(np.int16), None, 7))

    rng = np.random.default_rng(350)
    y = rng.integers(0, 3, size=50)
    pred = noisy_predictions(rng, y, 3, 0.7)
    names = ["cat", "chien \u00e9l\u00e9gant", "a rather long class name"]
    cases.append(("named", y.astype(np.int32), pred.astype(np.int32), names, 3))

    rng = np.random.default_rng(4100)
    y = rng.integers(0, 4, size=100)
    cases.append(("perfect", y.astype(np.uint16), y.astype(np.uint16), None, 4))

    return cases


def scores(average, y, pred, labels):
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, labels=labels, average=average, zero_division=0
    )
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def expected_results(y, pred, n_classes, class_names):
    labels = list(range(n_classes))
    p, r, f, s = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    per_class = [
        {
            "label": k,
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(s[k]),
        }
        for k in labels
    ]
    report_args = {"target_names": class_names} if class_names else {}
    report = classification_report(
        y, pred, labels=labels, digits=2, zero_division=0, **report_args
    )
    return {
        "n_samples": int(y.size),
        "n_classes": n_classes,
        "accuracy": float(accuracy_score(y, pred)),
        "macro": scores("macro", y, pred, labels),
        "weighted": scores("weighted", y, pred, labels),
        "micro": scores("micro", y, pred, labels),
        "per_class": per_class,
        "report": report,
    }


def write_case(name, y, pred, class_names, expected_c):
    n_classes = int(max(y.max(), pred.max())) + 1
    assert n_classes == expected_c, (name, n_classes, expected_c)
    if class_names is not None:
        assert len(class_names) == n_classes

    with h5py.File(OUT_DIR / f"{name}.h5", "w") as h5:
        h5.create_dataset("y", data=y)
        h5.create_dataset("pred", data=pred)
        if class_names is not None:
            h5.create_dataset(
                "class_names", data=class_names, dtype=h5py.string_dtype("utf-8")
            )
        cm = confusion_matrix(y, pred, labels=list(range(n_classes))).astype(np.int64)
        h5.create_dataset("expected_confusion", data=cm, compression="gzip")

    expected = expected_results(y, pred, n_classes, class_names)
    with open(OUT_DIR / f"{name}.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{name}: N={y.size} C={n_classes} accuracy={expected['accuracy']}")


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for case in make_cases():
        write_case(*case)


if __name__ == "__main__":
    main()
