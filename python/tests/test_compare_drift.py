"""cleval.compare() and cleval.drift() over runs in memory (tuples, dicts, Results) give the
command-line tool's report for the same runs written to prediction files."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import cleval
from conftest import cli_json, without_run_keys, write_h5


def two_runs(n, classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int32)
    runs = []
    for right in (0.8, 0.75):
        pred = np.where(rng.random(n) < right, y, rng.integers(0, classes, n)).astype(np.int32)
        scores = rng.normal(size=(n, classes)).astype(np.float32)
        scores[np.arange(n), pred] += 3.0
        runs.append((pred, scores))
    return y, runs


@pytest.mark.parametrize("n", [1, 7, 300])
def test_compare_gives_the_command_line_report(tmp_path, n):
    y, ((pred_a, scores_a), (pred_b, scores_b)) = two_runs(n, 4, seed=n)
    a = write_h5(tmp_path / "a.h5", pred=pred_a, scores=scores_a, y=y)
    b = write_h5(tmp_path / "b.h5", pred=pred_b, scores=scores_b, y=y)
    expected = cli_json("compare", a, b, "--max-flip-rate", 0.2)
    result = cleval.compare((pred_a, scores_a, y), {"pred": pred_b, "scores": scores_b, "y": y},
                            max_flip_rate=0.2)
    assert without_run_keys(result.report) == without_run_keys(expected)
    assert result.passed == expected["passed"]
    assert result.verdict == ("pass" if expected["passed"] else "fail")
    assert result.report["flips"] == int(np.sum(pred_a != pred_b))
    assert result.report["accuracy_a"] == accuracy_score(y, pred_a)


def test_compare_without_labels_or_scores(tmp_path):
    _, ((pred_a, _), (pred_b, _)) = two_runs(50, 3, seed=2)
    expected = cli_json("compare", write_h5(tmp_path / "a.h5", pred=pred_a),
                        write_h5(tmp_path / "b.h5", pred=pred_b))
    result = cleval.compare((pred_a,), (pred_b,))
    assert without_run_keys(result.report) == without_run_keys(expected)


def test_compare_results_of_two_knn_runs(iris):
    train_X, train_y, X, y = iris
    a, b = cleval.knn(train_X, train_y, X, y, k=1), cleval.knn(train_X, train_y, X, y, k=15)
    report = cleval.compare(a, b).report
    assert report["flips"] == int(np.sum(a.predictions != b.predictions))
    assert report["accuracy_b"] == accuracy_score(y, b.predictions)


def test_compare_refuses_runs_of_different_lengths():
    with pytest.raises(cleval.Error) as caught:
        cleval.compare((np.zeros(10, np.int32),), (np.zeros(12, np.int32),))
    assert caught.value.status == cleval.Status.INPUT
    assert "10 samples" in str(caught.value) and "12" in str(caught.value)


@pytest.mark.parametrize("n_ref, n_cur", [(1, 1), (97, 13), (500, 800)])
def test_drift_gives_the_command_line_report(tmp_path, n_ref, n_cur):
    y, ((pred_a, scores_a), _) = two_runs(n_ref, 5, seed=n_ref)
    y_cur, (_, (pred_b, scores_b)) = two_runs(n_cur, 5, seed=n_cur + 1)
    ref = write_h5(tmp_path / "ref.h5", pred=pred_a, scores=scores_a, y=y)
    cur = write_h5(tmp_path / "cur.h5", pred=pred_b, scores=scores_b)
    expected = cli_json("drift", ref, cur, "--psi-alert", 0.5)
    result = cleval.drift((pred_a, scores_a, y), (pred_b, scores_b), psi_alert=0.5)
    assert without_run_keys(result.report) == without_run_keys(expected)
    assert result.verdict in ("ok", "warn", "alert")


def test_drift_needs_scores():
    with pytest.raises(cleval.Error) as caught:
        cleval.drift((np.zeros(3, np.int32),), (np.zeros(3, np.int32),))
    assert "scores" in str(caught.value)
