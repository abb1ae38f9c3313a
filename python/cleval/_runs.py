"""The runs (evaluate, knn, metrics, compare, drift), their options, their data sources, and
the Result they return."""

import ctypes
import json
import os

import numpy as np

from . import _native
from ._arrays import to_array
from ._native import Error, Status, check, lib


class _Owner:
    """Owns one cleval_result: destroyed when the last array viewing its memory is gone."""

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        lib.cleval_result_destroy(self.handle)


_NUMPY_TYPES = {ctypes.c_int32: np.int32, ctypes.c_float: np.float32}


def _view(pointer, shape, ctype, owner):
    """A read-only ndarray over library memory that keeps `owner` (and the memory) alive."""
    count = int(np.prod(shape))
    if not pointer or count == 0:
        return None
    buffer = (ctype * count).from_address(ctypes.addressof(pointer.contents))
    buffer._owner = owner
    array = np.frombuffer(buffer, dtype=_NUMPY_TYPES[ctype]).reshape(shape)
    array.flags.writeable = False
    return array


class Result:
    """What a run produced.

    report      the JSON report as a dict (the command-line tool's --json for the same run)
    json        the same report as text
    predictions int32 [n] predicted classes (evaluate, knn), else None
    scores      float32 [n, width] scores (evaluate, knn), else None
    labels      the labels the run was given, when known (used by compare and drift)
    passed      every gate passed (True without gates)
    verdict     "pass"/"fail" (compare), "ok"/"warn"/"alert" (drift), "" otherwise

    predictions and scores are read-only views of the library's memory, which stays allocated
    as long as the Result or any of these arrays (or a view of them) lives."""

    def __init__(self, handle, labels=None):
        owner = _Owner(handle)
        self.json = lib.cleval_result_json(handle).decode("utf-8")
        self.report = json.loads(self.json)
        self.passed = bool(lib.cleval_result_passed(handle))
        self.verdict = lib.cleval_result_verdict(handle).decode("utf-8")
        n = ctypes.c_uint64()
        width = ctypes.c_uint32()
        pred = lib.cleval_result_predictions(handle, ctypes.byref(n))
        self.predictions = _view(pred, (n.value,), ctypes.c_int32, owner)
        scores = lib.cleval_result_scores(handle, ctypes.byref(n), ctypes.byref(width))
        self.scores = _view(scores, (n.value, width.value), ctypes.c_float, owner)
        self._labels = labels

    @property
    def labels(self):
        if callable(self._labels):
            self._labels = self._labels()
        return self._labels

    def __repr__(self):
        keys = ", ".join(f"{k}={self.report[k]!r}" for k in ("n_samples", "accuracy")
                         if k in self.report)
        return f"<cleval.Result {keys}>"


def _run(function, *args, labels=None):
    handle = ctypes.c_void_p()
    check(function(*args, ctypes.byref(handle)))
    return Result(handle, labels)


def _encode(text):
    return None if text is None else os.fsencode(text)


def _options(**given):
    """A cleval_options from the command-line defaults and the keyword arguments that are not
    None; the float arrays it points at are kept on the struct."""
    options = _native.Options()
    lib.cleval_options_init(ctypes.byref(options))
    names = {name for name, _ in _native.Options._fields_}
    for name, value in given.items():
        if value is None:
            continue
        if name not in names or name.startswith("n_"):
            raise Error(Status.USAGE, f"unknown option '{name}'")
        if name in ("input_mean", "input_std"):
            values = np.ascontiguousarray(value, dtype=np.float32).ravel()
            setattr(options, "_" + name, values)  # kept alive with the struct
            setattr(options, name, values.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
            setattr(options, "n_" + name, values.size)
        else:
            try:
                setattr(options, name, value.encode("utf-8") if isinstance(value, str) else value)
            except (TypeError, ValueError) as error:
                raise Error(Status.USAGE, f"option '{name}' cannot be {value!r}") from error
    return options


def _is_path(value):
    return isinstance(value, (str, bytes, os.PathLike))


class _Source:
    """A cleval_source over an HDF5 file or over arrays (borrowed: kept alive here until the
    source is destroyed)."""

    def __init__(self, X, y=None, x_key=None, y_key=None, what="X"):
        self.handle = ctypes.c_void_p()
        if _is_path(X):
            if y is not None and not isinstance(y, str):
                raise Error(Status.USAGE, f"{what} is a file: give y as a dataset name (y_key)")
            y_key = y if y is not None else y_key
            self.path, self.y_key = os.fspath(X), y_key
            check(lib.cleval_source_create_file(_encode(X), _encode(x_key), _encode(y_key),
                                                ctypes.byref(self.handle)))
            return
        self.path = None
        # The descriptions and the arrays they point at live as long as the source.
        self.x_array, self.x_values = to_array(X, "features", what)
        self.y_array, self.labels = (None, None) if y is None else to_array(y, "labels", "y")
        y_pointer = None if y is None else ctypes.byref(self.y_array)
        check(lib.cleval_source_create_arrays(ctypes.byref(self.x_array), y_pointer,
                                              ctypes.byref(self.handle)))

    def file_labels(self):
        """A function that reads the file's labels when first needed (None when it has none)."""
        path, key = self.path, self.y_key or "y"

        def read():
            try:
                import h5py
            except ImportError as error:
                raise Error(Status.USAGE, "reading the labels of an HDF5 run needs h5py "
                            "(pip install h5py)") from error
            with h5py.File(path, "r") as f:
                return np.asarray(f[key]) if key in f else None

        return read

    def run_labels(self):
        return self.labels if self.path is None else self.file_labels()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.cleval_source_destroy(self.handle)
        self.handle = ctypes.c_void_p()


def devices():
    """Every OpenCL device as a dict (index, platform, name, type, compute_units,
    global_mem_bytes, opencl_c_version), as `cleval devices --json -` lists them."""
    text = ctypes.c_void_p()
    check(lib.cleval_devices_json(ctypes.byref(text)))
    try:
        return json.loads(ctypes.string_at(text).decode("utf-8"))
    finally:
        lib.cleval_free(text)


def evaluate(model, X, y=None, batch=None, device=None, precision="fp32", top_k=None,
             x_key=None, y_key=None, **options):
    """`cleval eval`: the ONNX network in file `model` on X.

    X is an array [N, ...] (with labels y [N], optional) or the path of an HDF5 test set (then
    x_key / y_key name its datasets, "X" and "y" by default). Further keyword arguments are
    cleval_options fields (min_accuracy, input_scale, allow_nonfinite, ...)."""
    opts = _options(batch=batch, device=device, precision=precision, top_k=top_k, **options)
    with _Source(X, y, x_key, y_key) as source:
        return _run(lib.cleval_run_eval, _encode(model), source.handle, ctypes.byref(opts),
                    labels=source.run_labels())


def knn(train_X, train_y, X, y=None, k=5, batch=None, device=None, weights=None, metric=None,
        top_k=None, x_key=None, y_key=None, **options):
    """`cleval knn`: k-nearest neighbours of X among train_X (labels train_y).

    Each of train_X and X is an array or an HDF5 path; with a path, the labels argument beside
    it may name its dataset (default "y")."""
    opts = _options(k=k, batch=batch, device=device, weights=weights, metric=metric,
                    top_k=top_k, **options)
    with _Source(train_X, train_y, x_key, y_key, "train_X") as train, \
            _Source(X, y, x_key, y_key) as test:
        return _run(lib.cleval_run_knn, train.handle, test.handle, ctypes.byref(opts),
                    labels=test.run_labels())


def metrics(y, pred, scores=None, top_k=None, **options):
    """`cleval metrics`: the report of labels y [N] against predictions pred [N], with the
    score-based metrics when scores [N, C] are given."""
    opts = _options(top_k=top_k, **options)
    y_array, y_values = to_array(y, "labels", "y")
    pred_array, _pred_values = to_array(pred, "labels", "pred")
    scores_array = None
    if scores is not None:
        scores_array, _scores_values = to_array(scores, "scores", "scores")
    return _run(lib.cleval_run_metrics, ctypes.byref(y_array), ctypes.byref(pred_array),
                ctypes.byref(scores_array) if scores_array is not None else None,
                ctypes.byref(opts), labels=y_values)


class _RunArrays:
    """cleval_predictions over a Result, a dict {"pred", "scores", "y"} or a tuple
    (pred, scores, y) (scores and y optional or None)."""

    def __init__(self, run, what):
        if isinstance(run, Result):
            pred, scores, y = run.predictions, run.scores, run.labels
            if pred is None:
                raise Error(Status.USAGE, f"{what}: this result holds no predictions")
        elif isinstance(run, dict):
            unknown = set(run) - {"pred", "scores", "y"}
            if unknown:
                raise Error(Status.USAGE, f"{what}: unknown keys {sorted(unknown)} "
                            "(pred, scores, y)")
            pred, scores, y = run.get("pred"), run.get("scores"), run.get("y")
        elif isinstance(run, (tuple, list)) and 1 <= len(run) <= 3:
            pred, scores, y = (tuple(run) + (None, None))[:3]
        else:
            raise Error(Status.USAGE, f"{what}: expected a Result, a dict or a tuple "
                        "(pred, scores, y)")
        if pred is None:
            raise Error(Status.USAGE, f"{what}: 'pred' is required")
        self._keep = []
        self.value = _native.Predictions()
        self.value.pred = self._pointer(pred, "labels", f"{what} pred")
        self.value.y = self._pointer(y, "labels", f"{what} y")
        self.value.scores = self._pointer(scores, "scores", f"{what} scores")

    def _pointer(self, values, kind, what):
        if values is None:
            return None
        array, data = to_array(values, kind, what)
        self._keep += [array, data]
        return ctypes.pointer(array)


def _compare_like(function, first, second, names, opts):
    a, b = _RunArrays(first, names[0]), _RunArrays(second, names[1])
    return _run(function, ctypes.byref(a.value), ctypes.byref(b.value), ctypes.byref(opts))


def compare(a, b, max_flip_rate=None, max_accuracy_drop=None, alpha=None, max_score_diff=None,
            **options):
    """`cleval compare`: run b (the candidate) against run a (the baseline) over the same test
    set. Gates left None are off, except McNemar's alpha (0.05, dropped without labels)."""
    opts = _options(max_flip_rate=max_flip_rate, max_accuracy_drop=max_accuracy_drop,
                    alpha=alpha, max_score_diff=max_score_diff, **options)
    return _compare_like(lib.cleval_run_compare, a, b, ("a", "b"), opts)


def drift(ref, cur, psi_warn=None, psi_alert=None, js_alert=None, alpha=None, device=None,
          **options):
    """`cleval drift`: the output distribution of run cur against run ref (both with scores)."""
    opts = _options(psi_warn=psi_warn, psi_alert=psi_alert, js_alert=js_alert,
                    drift_alpha=alpha, device=device, **options)
    return _compare_like(lib.cleval_run_drift, ref, cur, ("ref", "cur"), opts)
