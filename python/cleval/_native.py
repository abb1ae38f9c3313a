"""libcleval through ctypes: finding the shared library, the C structs of include/cleval.h, the
function prototypes, and the exception a failed call raises."""

import ctypes
import ctypes.util
import enum
import os
from pathlib import Path


class Status(enum.IntEnum):
    """cleval_status (include/cleval.h)."""

    OK = 0
    USAGE = 1
    INPUT = 2
    UNSUPPORTED = 3
    IO = 4
    OPENCL = 5
    NOMEM = 6
    INTERRUPTED = 7
    INTERNAL = 8


# The command-line tool's exit code for each status (docs/contract.md "Exit codes").
_EXIT_CODES = {
    Status.USAGE: 2,
    Status.INPUT: 2,
    Status.UNSUPPORTED: 2,
    Status.IO: 2,
    Status.OPENCL: 3,
    Status.NOMEM: 4,
    Status.INTERRUPTED: 130,
    Status.INTERNAL: 5,
}


class Error(Exception):
    """A failed cleval call. `str(error)` is the one-line message the command-line tool prints
    after "cleval: "; `status` is the cleval_status; `exit_code` the tool's exit code."""

    __module__ = "cleval"  # shown as cleval.Error in tracebacks

    def __init__(self, status, message):
        self.status = Status(status)
        self.message = message
        self.exit_code = _EXIT_CODES.get(self.status, 5)
        super().__init__(message)


class Array(ctypes.Structure):
    """cleval_array: a C-contiguous caller array."""

    MAX_RANK = 8
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_uint32),
        ("shape", ctypes.c_uint64 * MAX_RANK),
    ]


class Options(ctypes.Structure):
    """cleval_options, field for field."""

    _fields_ = [
        ("device", ctypes.c_char_p),
        ("batch", ctypes.c_uint64),
        ("max_classes", ctypes.c_uint32),
        ("top_k", ctypes.c_uint32),
        ("min_accuracy", ctypes.c_double),
        ("min_class_recall", ctypes.c_double),
        ("precision", ctypes.c_char_p),
        ("fp16_arithmetic", ctypes.c_char_p),
        ("calibration", ctypes.c_uint32),
        ("prune", ctypes.c_double),
        ("allow_nonfinite", ctypes.c_bool),
        ("input_scale", ctypes.c_float),
        ("input_mean", ctypes.POINTER(ctypes.c_float)),
        ("n_input_mean", ctypes.c_uint32),
        ("input_std", ctypes.POINTER(ctypes.c_float)),
        ("n_input_std", ctypes.c_uint32),
        ("input_nhwc", ctypes.c_bool),
        ("k", ctypes.c_uint32),
        ("weights", ctypes.c_char_p),
        ("metric", ctypes.c_char_p),
        ("max_flip_rate", ctypes.c_double),
        ("max_accuracy_drop", ctypes.c_double),
        ("alpha", ctypes.c_double),
        ("max_score_diff", ctypes.c_double),
        ("psi_warn", ctypes.c_double),
        ("psi_alert", ctypes.c_double),
        ("js_alert", ctypes.c_double),
        ("drift_alpha", ctypes.c_double),
    ]


class Predictions(ctypes.Structure):
    """cleval_predictions: a saved run in memory."""

    _fields_ = [
        ("y", ctypes.POINTER(Array)),
        ("pred", ctypes.POINTER(Array)),
        ("scores", ctypes.POINTER(Array)),
    ]


_LIBRARY_NAMES = ("libcleval.so", "libcleval.so.0")


def _candidates():
    """Where the library may be, in the order docs/python.md gives."""
    explicit = os.environ.get("CLEVAL_LIBRARY")
    if explicit:
        yield Path(explicit)
        return
    here = Path(__file__).resolve().parent
    for name in _LIBRARY_NAMES:
        yield here / name
    # A source checkout: python/cleval/ sits two levels below the repository root.
    for build in ("build", "build-release", "build-asan"):
        for name in _LIBRARY_NAMES:
            yield here.parent.parent / build / "src" / name
    found = ctypes.util.find_library("cleval")
    if found:
        yield Path(found)
    for name in _LIBRARY_NAMES:
        yield Path(name)  # the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache)


def _load():
    tried = []
    for path in _candidates():
        # A bare name is for the loader to resolve; a path must exist.
        if path.parent != Path(".") and not path.exists():
            tried.append(str(path))
            continue
        try:
            return ctypes.CDLL(str(path)), str(path)
        except OSError as error:
            tried.append(f"{path} ({error})")
    raise ImportError(
        "cleval: libcleval.so not found; set CLEVAL_LIBRARY to its path (tried: "
        + ", ".join(tried)
        + ")"
    )


lib, library_path = _load()


def _declare(name, restype, *argtypes):
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


_P = ctypes.POINTER
_RESULT = ctypes.c_void_p
_SOURCE = ctypes.c_void_p
_declare("cleval_version", ctypes.c_char_p)
_declare("cleval_status_str", ctypes.c_char_p, ctypes.c_int)
_declare("cleval_last_error", ctypes.c_char_p)
_declare("cleval_free", None, ctypes.c_void_p)
_declare("cleval_devices_json", ctypes.c_int, _P(ctypes.c_void_p))
_declare("cleval_source_create_file", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_char_p, _P(_SOURCE))
_declare("cleval_source_create_arrays", ctypes.c_int, _P(Array), _P(Array), _P(_SOURCE))
_declare("cleval_source_destroy", None, _SOURCE)
_declare("cleval_options_init", None, _P(Options))
_declare("cleval_result_json", ctypes.c_char_p, _RESULT)
_declare("cleval_result_predictions", _P(ctypes.c_int32), _RESULT, _P(ctypes.c_uint64))
_declare("cleval_result_scores", _P(ctypes.c_float), _RESULT, _P(ctypes.c_uint64),
         _P(ctypes.c_uint32))
_declare("cleval_result_passed", ctypes.c_bool, _RESULT)
_declare("cleval_result_verdict", ctypes.c_char_p, _RESULT)
_declare("cleval_result_destroy", None, _RESULT)
_declare("cleval_run_eval", ctypes.c_int, ctypes.c_char_p, _SOURCE, _P(Options), _P(_RESULT))
_declare("cleval_run_knn", ctypes.c_int, _SOURCE, _SOURCE, _P(Options), _P(_RESULT))
_declare("cleval_run_metrics", ctypes.c_int, _P(Array), _P(Array), _P(Array), _P(Options),
         _P(_RESULT))
_declare("cleval_run_compare", ctypes.c_int, _P(Predictions), _P(Predictions), _P(Options),
         _P(_RESULT))
_declare("cleval_run_drift", ctypes.c_int, _P(Predictions), _P(Predictions), _P(Options),
         _P(_RESULT))


def check(status):
    """Raises Error with the library's message when `status` is not CLEVAL_OK."""
    if status != Status.OK:
        message = lib.cleval_last_error().decode("utf-8", "replace")
        if not message:
            message = lib.cleval_status_str(status).decode("utf-8", "replace")
        raise Error(status, message)
