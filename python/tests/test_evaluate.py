"""cleval.evaluate() on the shipped network and the first 300 Fashion-MNIST test samples: from
arrays and from a file, the command-line tool's numbers; predictions against scikit-learn's
metrics of themselves."""

import json

import h5py
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix

import cleval
from conftest import DATASETS, cli_json, without_run_keys, write_h5

MODEL = str(DATASETS / "fmnist_cnn.onnx")


@pytest.fixture(scope="module")
def cli_run(fmnist, tmp_path_factory):
    """The command-line tool's report and saved predictions for the 300 samples."""
    folder = tmp_path_factory.mktemp("evaluate")
    X, y = fmnist
    data = write_h5(folder / "test300.h5", X=X, y=y)
    saved = folder / "pred.h5"
    report = cli_json("eval", "--model", MODEL, "--data", data, "--save", saved)
    with h5py.File(saved, "r") as f:
        return data, report, np.asarray(f["pred"]), np.asarray(f["scores"])


def test_arrays_give_the_command_line_report(fmnist, cli_run):
    X, y = fmnist
    _, expected, pred, scores = cli_run
    result = cleval.evaluate(MODEL, X, y)
    got = without_run_keys(result.report)
    expected = without_run_keys(expected)
    # Arrays carry no class names and no data path.
    for report in (got, expected):
        report.pop("per_class")
    assert got == expected
    np.testing.assert_array_equal(result.predictions, pred)
    np.testing.assert_array_equal(result.scores, scores)
    assert result.report["accuracy"] == accuracy_score(y, result.predictions)
    assert result.report["confusion_matrix"] == confusion_matrix(
        y, result.predictions, labels=range(10)).tolist()


def test_file_gives_the_command_line_report(cli_run):
    data, expected, pred, _ = cli_run
    result = cleval.evaluate(MODEL, data)
    assert without_run_keys(result.report) == without_run_keys(expected)
    np.testing.assert_array_equal(result.predictions, pred)
    assert json.loads(result.json) == result.report


def test_without_labels_predictions_only(fmnist, cli_run):
    X, _ = fmnist
    result = cleval.evaluate(MODEL, X[:17], batch=5)
    assert "accuracy" not in result.report
    np.testing.assert_array_equal(result.predictions, cli_run[2][:17])


def test_predictions_outlive_the_result(fmnist):
    X, y = fmnist
    result = cleval.evaluate(MODEL, X[:31], y[:31])
    pred, scores = result.predictions, result.scores[3:7]
    copies = pred.copy(), scores.copy()
    del result
    import gc

    gc.collect()
    # The library's memory stays allocated while a view of it lives.
    cleval.evaluate(MODEL, X[31:62], y[31:62])
    np.testing.assert_array_equal(pred, copies[0])
    np.testing.assert_array_equal(scores, copies[1])
    assert not pred.flags.writeable
