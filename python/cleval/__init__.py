"""cleval: batch evaluation of classification models on OpenCL devices, from Python.

A thin ctypes layer over libcleval (include/cleval.h): every run returns a Result holding the
JSON report as a dict (the command-line tool's --json for the same run) and the predictions and
scores as numpy arrays; a failure raises cleval.Error with the tool's one-line message. See
docs/python.md."""

from ._native import Error, Status, library_path, lib as _lib
from ._runs import Result, compare, devices, drift, evaluate, knn, metrics

__all__ = ["Error", "Result", "Status", "compare", "devices", "drift", "evaluate", "knn",
           "library_path", "metrics", "version"]


def version():
    """The version of the loaded libcleval, "MAJOR.MINOR.PATCH"."""
    return _lib.cleval_version().decode("ascii")
