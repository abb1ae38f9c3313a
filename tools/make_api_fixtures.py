"""Writes tests/fixtures/api/metrics_example.h5: the labels and predictions that
examples/metrics_arrays.c holds in memory, as a prediction file, so that the test suite can
check the example's report against `cleval metrics` on the same values."""
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "api", "metrics_example.h5")

# The arrays of examples/metrics_arrays.c.
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
PREDICTIONS = [0, 0, 1, 0, 1, 1, 2, 1, 2, 0, 2, 2]


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with h5py.File(OUT, "w") as f:
        f.create_dataset("y", data=np.array(LABELS, dtype=np.int32))
        f.create_dataset("pred", data=np.array(PREDICTIONS, dtype=np.int32))
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
