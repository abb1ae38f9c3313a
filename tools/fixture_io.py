"""What the fixture generators share: a case written as an HDF5 file of named arrays (in the
given order) and, when given, its expected values as JSON beside it."""
import json

import h5py


def write_case(out, case, arrays, expected):
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / f"{case}.h5", "w", track_order=True) as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)
    if expected is not None:
        (out / f"{case}.json").write_text(json.dumps(expected, indent=1) + "\n")
