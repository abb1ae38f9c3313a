"""Shared by the package's tests: the repository's datasets, the command-line tool (CLEVAL_CLI,
else the build tree's) whose JSON the package must reproduce, and small HDF5 writers."""

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / "datasets"
CLI = os.environ.get("CLEVAL_CLI", str(ROOT / "build" / "src" / "cleval"))

# Keys that depend on the run rather than on the data.
RUN_KEYS = ("timing", "timing_breakdown", "device", "files")


def run_cli(*args):
    """(exit code, stdout, stderr) of the command-line tool."""
    done = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def cli_json(*args):
    """The JSON report of a command that succeeds (or fails only a gate)."""
    code, out, err = run_cli(*args, "--json", "-", "--quiet")
    assert code in (0, 1), err
    return json.loads(out)


def without_run_keys(report):
    return {k: v for k, v in report.items() if k not in RUN_KEYS}


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, values in datasets.items():
            if values is not None:
                f.create_dataset(name, data=values)
    return path


@pytest.fixture(scope="session")
def fmnist():
    """The first 300 samples of the shipped Fashion-MNIST test set: (X uint8, y int32)."""
    with h5py.File(DATASETS / "fmnist_test.h5", "r") as f:
        return np.asarray(f["X"][:300]), np.asarray(f["y"][:300])


@pytest.fixture(scope="session")
def iris():
    """(train X, train y, test X, test y) of the shipped iris split."""
    with h5py.File(DATASETS / "iris_train.h5", "r") as train, \
            h5py.File(DATASETS / "iris_test.h5", "r") as test:
        return (np.asarray(train["X"]), np.asarray(train["y"]), np.asarray(test["X"]),
                np.asarray(test["y"]))
