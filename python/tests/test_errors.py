"""Failures raise cleval.Error carrying the status and the command-line tool's one-line message
for the same input."""

import numpy as np
import pytest

import cleval
from conftest import DATASETS, run_cli, write_h5

MODEL = str(DATASETS / "fmnist_cnn.onnx")


def cli_message(*args):
    """The tool's exit code and its error line without the "cleval: " prefix."""
    code, _, err = run_cli(*args, "--quiet")
    line = err.strip().splitlines()[-1]
    assert line.startswith("cleval: ")
    return code, line[len("cleval: "):]


def expect_same_error(call, *cli_args):
    code, message = cli_message(*cli_args)
    with pytest.raises(cleval.Error) as caught:
        call()
    assert caught.value.exit_code == code
    assert str(caught.value) == message
    return caught.value


def test_missing_model(tmp_path):
    missing = str(tmp_path / "missing.onnx")
    data = str(DATASETS / "iris_test.h5")
    error = expect_same_error(lambda: cleval.evaluate(missing, data), "eval", "--model", missing,
                              "--data", data)
    assert error.status == cleval.Status.INPUT


def test_shape_the_model_does_not_take(tmp_path):
    data = str(DATASETS / "iris_test.h5")
    expect_same_error(lambda: cleval.evaluate(MODEL, data), "eval", "--model", MODEL, "--data",
                      data)


def test_label_at_or_above_the_output_width(tmp_path):
    X = np.zeros((4, 1, 28, 28), np.uint8)
    y = np.array([0, 1, 12, 3], np.int32)
    data = str(write_h5(tmp_path / "bad_label.h5", X=X, y=y))
    expect_same_error(lambda: cleval.evaluate(MODEL, data), "eval", "--model", MODEL, "--data",
                      data)


def test_not_hdf5(tmp_path):
    data = tmp_path / "not.h5"
    data.write_text("not HDF5\n")
    expect_same_error(lambda: cleval.evaluate(MODEL, str(data)), "eval", "--model", MODEL,
                      "--data", data)


def test_negative_label_in_arrays_names_the_sample():
    with pytest.raises(cleval.Error) as caught:
        cleval.metrics(np.array([0, 1, -1]), np.array([0, 1, 1]))
    assert caught.value.status == cleval.Status.INPUT
    assert "sample 2" in str(caught.value) and "below 0" in str(caught.value)


def test_bad_arguments_are_usage_errors():
    with pytest.raises(cleval.Error) as caught:
        cleval.metrics(np.zeros((3, 2), np.int32), np.zeros(3, np.int32))
    assert caught.value.status == cleval.Status.USAGE
    with pytest.raises(cleval.Error) as caught:
        cleval.metrics(np.zeros(3, np.int32), np.zeros(3, np.int32), no_such_option=1)
    assert "no_such_option" in str(caught.value)
    with pytest.raises(cleval.Error) as caught:
        cleval.metrics(np.zeros(3, np.int32), np.zeros(3, np.int32), batch="x")
    assert str(caught.value) == "option 'batch' cannot be 'x'"
    with pytest.raises(cleval.Error):
        cleval.metrics(np.array(["a", "b"]), np.zeros(2, np.int32))
