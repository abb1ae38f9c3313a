"""numpy arrays as cleval_array descriptions. An array already C-contiguous, aligned and of a
type libcleval reads is passed as it is (the library reads the numpy buffer itself); any other
is converted once. The caller keeps the returned ndarray alive while the library may read it."""

import numpy as np

from ._native import Array, Error, Status

# cleval_dtype (include/cleval.h) of each numpy type libcleval reads directly.
_DTYPES = {
    np.dtype(np.int8): 0,
    np.dtype(np.uint8): 1,
    np.dtype(np.int16): 2,
    np.dtype(np.uint16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.uint32): 5,
    np.dtype(np.int64): 6,
    np.dtype(np.uint64): 7,
    np.dtype(np.float32): 8,
    np.dtype(np.float64): 9,
}


def _usage(message):
    return Error(Status.USAGE, message)


def _native_order(array):
    """The array in the machine's byte order (a big-endian HDF5 read, for instance)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _labels(values, what):
    """Labels or predictions: any integer type as it is; floats and booleans when every value is
    a whole number (as scikit-learn takes them), converted to int64."""
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind in "fb":
        as_int = values.astype(np.int64)
        if values.dtype.kind == "b" or np.array_equal(as_int, values):
            return as_int
        raise _usage(f"{what}: labels must be whole numbers (found {values.dtype} values)")
    raise _usage(f"{what}: labels must be integers, not {values.dtype}")


def _floats(values, what):
    """Scores: float32 or float64 as they are; other numbers converted to float32."""
    if values.dtype.kind == "f" and values.dtype.itemsize in (4, 8):
        return values
    if values.dtype.kind in "iufb":
        return values.astype(np.float32)
    raise _usage(f"{what}: scores must be numbers, not {values.dtype}")


def _features(values, what):
    """Features: every type libcleval reads as it is; others (float16, bool) as float32."""
    if values.dtype in _DTYPES:
        return values
    if values.dtype.kind in "fb":
        return values.astype(np.float32)
    raise _usage(f"{what}: features must be numbers, not {values.dtype}")


_KINDS = {"labels": (_labels, 1, 1), "scores": (_floats, 2, 2), "features": (_features, 1, 8)}


def to_array(values, kind, what):
    """(cleval_array, ndarray): `values` as a C array description of the given kind ("labels",
    "scores" or "features"), and the ndarray whose buffer it points at."""
    convert, min_rank, max_rank = _KINDS[kind]
    array = np.asarray(values)
    if array.ndim < min_rank or array.ndim > max_rank:
        expected = f"{min_rank}" if min_rank == max_rank else f"{min_rank} to {max_rank}"
        raise _usage(f"{what}: expected {expected} dimensions, got shape {array.shape}")
    array = np.ascontiguousarray(convert(_native_order(array), what))
    if not array.flags.aligned:
        array = array.copy()
    description = Array()
    description.data = array.ctypes.data if array.size else None
    description.dtype = _DTYPES[array.dtype]
    description.rank = array.ndim
    for axis, size in enumerate(array.shape):
        description.shape[axis] = size
    return description, array
