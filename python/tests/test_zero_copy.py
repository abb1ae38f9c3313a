"""Arrays reach the library without a copy when they can: C-contiguous, aligned, of a type
libcleval reads. Any other array is converted once, and the converted copy is what the library
receives."""

import numpy as np
import pytest

import cleval
from cleval import _arrays, _runs


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64, np.float32,
                                   np.float64])
def test_contiguous_arrays_are_passed_as_they_are(dtype):
    X = np.arange(24, dtype=dtype).reshape(4, 6)
    description, kept = _arrays.to_array(X, "features", "X")
    assert kept is X
    assert description.data == X.ctypes.data
    assert list(description.shape[:2]) == [4, 6] and description.rank == 2


def test_sources_hand_the_library_the_numpy_buffer():
    X = np.ones((5, 3), np.float32)
    y = np.zeros(5, np.int64)
    with _runs._Source(X, y) as source:
        assert source.x_array.data == X.ctypes.data
        assert source.y_array.data == y.ctypes.data


@pytest.mark.parametrize("make", [
    lambda: np.arange(48, dtype=np.float32).reshape(6, 8)[:, ::2],  # strided
    lambda: np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    lambda: np.arange(12, dtype=np.float16).reshape(3, 4),  # a type libcleval does not read
    lambda: np.arange(12, dtype=">i4").reshape(3, 4),  # big-endian
])
def test_other_arrays_are_converted_once(make):
    X = make()
    description, kept = _arrays.to_array(X, "features", "X")
    assert kept is not X and kept.flags.c_contiguous
    assert description.data == kept.ctypes.data
    np.testing.assert_array_equal(kept, X)


def test_converted_features_give_the_same_metrics(iris):
    train_X, train_y, X, y = iris
    plain = cleval.knn(train_X, train_y, X, y, k=3)
    strided = np.repeat(X, 2, axis=1)[:, ::2]
    assert not strided.flags.c_contiguous
    converted = cleval.knn(np.asfortranarray(train_X), train_y, strided, y, k=3)
    np.testing.assert_array_equal(plain.predictions, converted.predictions)
