#!/usr/bin/env python3
"""Build the datasets shipped with cleval, in the HDF5 layout of docs/contract.md.

Produces (run from the repository root: ``python3 tools/make_datasets.py``):

* ``datasets/fmnist_test.h5`` -- the 10,000-image Fashion-MNIST test set, read from
  Debian's ``dataset-fashion-mnist`` package. ``X`` uint8 [10000, 1, 28, 28] (chunked,
  1000 rows per chunk, gzip level 4, so the engine's batched reader has real chunks
  to work through), ``y`` int32 [10000], ``class_names`` variable-length UTF-8 strings.
  This is the test set for ``datasets/fmnist_cnn.onnx`` (see train_fmnist_cnn.py).
* ``datasets/iris_train.h5`` / ``datasets/iris_test.h5`` -- scikit-learn's Iris split
  80/20 with ``random_state=42``: ``X`` float64 [N, 4], ``y`` int64 [N], ``class_names``.
  A small float64 / int64 pair for the KNN baseline (``cleval knn``).

The output is deterministic: the same inputs give the same arrays (HDF5 files carry no
timestamps, as written here with ``track_times=False``).
"""

import gzip
from pathlib import Path

import h5py
import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
OUT_DIR = Path("datasets")

FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]

# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read a gzip-compressed IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape}, found {arr.size} values")
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def load_fmnist(split):
    """Return (images uint8 [N, 1, 28, 28], labels int64 [N]) for split 'train' or 't10k'."""
    images = read_idx(FMNIST_DIR / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(FMNIST_DIR / f"{split}-labels-idx1-ubyte.gz")
    assert images.shape[0] == labels.shape[0]
    return images[:, None, :, :], labels.astype(np.int64)


def write_dataset(path, X, y, class_names, **x_options):
    """Write one dataset file: X, y and class_names (variable-length UTF-8 strings)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, track_times=False, **x_options)
        f.create_dataset("y", data=y, track_times=False)
        f.create_dataset("class_names", data=class_names,
                         dtype=h5py.string_dtype(encoding="utf-8"), track_times=False)
    print(f"{path}: X {X.dtype} {list(X.shape)}, y {y.dtype} {list(y.shape)}, "
          f"{path.stat().st_size} bytes")


def main():
    OUT_DIR.mkdir(exist_ok=True)

    X, y = load_fmnist("t10k")
    assert X.shape == (10000, 1, 28, 28) and X.dtype == np.uint8
    write_dataset(OUT_DIR / "fmnist_test.h5", X, y.astype(np.int32), FMNIST_CLASSES,
                  chunks=(1000, 1, 28, 28), compression="gzip", compression_opts=4)

    iris = load_iris()
    X_train, X_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, random_state=42)
    write_dataset(OUT_DIR / "iris_train.h5", X_train.astype(np.float64),
                  y_train.astype(np.int64), IRIS_CLASSES)
    write_dataset(OUT_DIR / "iris_test.h5", X_test.astype(np.float64),
                  y_test.astype(np.int64), IRIS_CLASSES)


if __name__ == "__main__":
    main()
