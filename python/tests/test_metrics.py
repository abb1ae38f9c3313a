"""cleval.metrics() against scikit-learn on the same arrays, and against the command-line
tool's `metrics` on the same data written to a file."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss

import cleval
from conftest import cli_json, without_run_keys, write_h5


def random_run(n, classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    # Mostly right, so that every metric is away from its extremes.
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, classes, n))
    scores = rng.normal(size=(n, classes)).astype(np.float32)
    scores[np.arange(n), pred] += 2.0
    return y, pred, scores


@pytest.mark.parametrize("n", [1, 13, 257, 1000])
def test_metrics_match_scikit_learn(n):
    y, pred, _ = random_run(n, 5, seed=n)
    report = cleval.metrics(y, pred).report
    labels = list(range(report["n_classes"]))
    assert report["n_samples"] == n
    assert report["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-15)
    assert report["macro"]["f1"] == pytest.approx(
        f1_score(y, pred, labels=labels, average="macro", zero_division=0), abs=1e-12)
    assert report["confusion_matrix"] == confusion_matrix(y, pred, labels=labels).tolist()


def test_scores_give_log_loss_of_scikit_learn():
    y, pred, scores = random_run(500, 4, seed=7)
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    report = cleval.metrics(y, pred, scores, top_k=2).report
    assert report["probabilities"] == "softmax"
    assert report["log_loss"] == pytest.approx(log_loss(y, probabilities, labels=range(4)),
                                               rel=1e-5)


def test_same_report_as_the_command_line(tmp_path):
    y, pred, scores = random_run(321, 6, seed=3)
    path = write_h5(tmp_path / "run.h5", y=y.astype(np.int32), pred=pred.astype(np.int32),
                    scores=scores)
    expected = cli_json("metrics", "--data", path)
    # Other dtypes than the file's, converted by the library as it converts file columns.
    got = cleval.metrics(y.astype(np.uint8), pred.astype(np.int64), scores.astype(np.float64))
    assert without_run_keys(got.report) == without_run_keys(expected)
    assert got.predictions is None and got.scores is None


def test_gates_set_passed_and_report():
    y, pred, _ = random_run(200, 3, seed=11)
    result = cleval.metrics(y, pred, min_accuracy=0.99)
    assert not result.passed
    assert result.report["gates"][0]["name"] == "min_accuracy"
    assert cleval.metrics(y, pred, min_accuracy=0.1).passed


def test_whole_float_labels_are_taken_and_fractions_refused():
    y, pred, _ = random_run(50, 3, seed=5)
    as_floats = cleval.metrics(y.astype(np.float64), pred).report
    assert as_floats["accuracy"] == cleval.metrics(y, pred).report["accuracy"]
    with pytest.raises(cleval.Error) as caught:
        cleval.metrics(y + 0.5, pred)
    assert caught.value.status == cleval.Status.USAGE
    assert "whole numbers" in str(caught.value)
