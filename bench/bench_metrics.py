#!/usr/bin/env python3
"""Confusion-matrix benchmark (issue: foundation): cleval's device reduction against
scikit-learn's confusion_matrix and numpy.bincount on the same (y, pred) pairs, plus the
machine's streaming-read bandwidth and the end-to-end `cleval metrics` time on the same file.

    python3 bench/bench_metrics.py [--build build] [--sizes 10000000 50000000] [--classes 10 1000]

Every figure is the median of several runs in this one process; ratios compare figures taken
in the same run. Not a test: it asserts nothing about speed, only that all tools agree.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import h5py
import numpy as np
from sklearn.metrics import confusion_matrix


def median_time(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_pairs(n, classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n, dtype=np.int32)
    wrong = rng.random(n) < 0.3
    pred = np.where(wrong, rng.integers(0, classes, n, dtype=np.int32), y).astype(np.int32)
    return y, pred


def run_case(args, n, classes, folder):
    y, pred = make_pairs(n, classes, seed=n + classes)
    path = os.path.join(folder, f"pairs_{n}_{classes}.h5")
    with h5py.File(path, "w") as f:
        f["y"] = y
        f["pred"] = pred

    sk_s, sk = median_time(lambda: confusion_matrix(y, pred, labels=np.arange(classes)),
                           args.sklearn_repeat)
    np_s, counts = median_time(
        lambda: np.bincount(y.astype(np.int64) * classes + pred,
                            minlength=classes * classes).reshape(classes, classes),
        args.repeat)
    assert np.array_equal(sk, counts)

    bench = os.path.join(args.build, "bench", "bench_histogram")
    out = subprocess.run([bench, path, "--repeat", str(args.repeat)], check=True,
                         capture_output=True, text=True).stdout
    dev = json.loads(out)
    assert dev["identical_to_c_loop"], "device counts differ from the C loop"

    cleval = os.path.join(args.build, "src", "cleval")
    e2e, read_s, reduce_s = [], [], []
    for _ in range(args.sklearn_repeat):
        start = time.perf_counter()
        report = json.loads(subprocess.run([cleval, "metrics", "--data", path, "--json", "-"],
                                           check=True, capture_output=True, text=True).stdout)
        e2e.append(time.perf_counter() - start)
        read_s.append(report["timing_breakdown"]["read_s"])
        reduce_s.append(report["timing_breakdown"]["wait_s"])
        assert np.array_equal(np.array(report["confusion_matrix"]), sk)
    os.remove(path)
    return {
        "n": n, "classes": classes, "path": dev["path"],
        "sklearn_s": sk_s, "numpy_bincount_s": np_s, "cleval_device_s": dev["device_s"],
        "c_loop_s": dev["c_loop_s"], "stream_read_gbs": dev["stream_read_gbs"],
        "cleval_device_gbs": dev["device_gbs"],
        "cleval_metrics_e2e_s": statistics.median(e2e),
        "e2e_read_s": statistics.median(read_s), "e2e_reduce_s": statistics.median(reduce_s),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 50_000_000])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sklearn-repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as folder:
        for n in args.sizes:
            for classes in args.classes:
                rows.append(run_case(args, n, classes, folder))

    header = ("N", "C", "path", "sklearn s", "bincount s", "cleval s", "C loop s",
              "sk/cleval", "np/cleval", "cleval GB/s", "read GB/s", "% of read",
              "e2e s (read/wait device)")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join([
            f"{r['n']:.0e}", str(r["classes"]), r["path"], f"{r['sklearn_s']:.3f}",
            f"{r['numpy_bincount_s']:.3f}", f"{r['cleval_device_s']:.4f}", f"{r['c_loop_s']:.4f}",
            f"{r['sklearn_s'] / r['cleval_device_s']:.0f}x",
            f"{r['numpy_bincount_s'] / r['cleval_device_s']:.1f}x",
            f"{r['cleval_device_gbs']:.2f}", f"{r['stream_read_gbs']:.2f}",
            f"{100 * r['cleval_device_gbs'] / r['stream_read_gbs']:.0f}%",
            f"{r['cleval_metrics_e2e_s']:.3f} ({r['e2e_read_s']:.3f}/{r['e2e_reduce_s']:.3f})",
        ]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
