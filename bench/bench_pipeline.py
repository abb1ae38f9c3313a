#!/usr/bin/env python3
"""Large-job benchmark: a 10^6-sample Fashion-MNIST-shaped uint8
file (chunked, gzip) through the shipped CNN and through KNN, end to end (`cleval eval|knn`,
reading and decompressing while the device computes) against compute-only (the same batches
already in memory, bench/bench_compute), peak RSS for 10^5 and 10^6 samples, and 1 vs 2 MPI
ranks on this machine.

    python3 bench/bench_pipeline.py [--build build] [--samples 1000000] [--knn-train 10000]

Not a test: it prints figures and ratios.
"""
import argparse
import gzip
import json
import os
import re
import subprocess
import tempfile
import time

import h5py
import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(FMNIST, name)) as f:
        data = f.read()
    if "images" in name:
        return np.frombuffer(data[16:], dtype=np.uint8).reshape(-1, 1, 28, 28)
    return np.frombuffer(data[8:], dtype=np.uint8)


def write_images(path, images, labels, n):
    """n samples tiled from the real images, mirrored on every other pass (so they differ)."""
    with h5py.File(path, "w") as f:
        x = f.create_dataset("X", (n, 1, 28, 28), dtype=np.uint8, chunks=(min(n, 1024), 1, 28, 28),
                             compression="gzip", compression_opts=4)
        y = f.create_dataset("y", (n,), dtype=np.int32, chunks=(min(n, 65536),),
                             compression="gzip")
        for start in range(0, n, len(images)):
            count = min(len(images), n - start)
            block = images[:count] if (start // len(images)) % 2 == 0 else images[:count, :, :, ::-1]
            x[start:start + count] = block
            y[start:start + count] = labels[:count]


def timed_run(cmd):
    """Wall seconds, peak RSS (KiB, from GNU time) and stdout of a command."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "PEAK %M"] + cmd, check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = int(re.search(r"PEAK (\d+)", out.stderr).group(1))
    return wall, peak, out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--knn-train", type=int, default=10_000)
    parser.add_argument("--keep", help="folder to keep the generated files in")
    args = parser.parse_args()
    cleval = os.path.join(args.build, "src", "cleval")
    compute = os.path.join(args.build, "bench", "bench_compute")
    model = "datasets/fmnist_cnn.onnx"

    images = np.concatenate([read_idx("train-images-idx3-ubyte.gz"),
                             read_idx("t10k-images-idx3-ubyte.gz")])
    labels = np.concatenate([read_idx("train-labels-idx1-ubyte.gz"),
                             read_idx("t10k-labels-idx1-ubyte.gz")]).astype(np.int32)
    folder = args.keep or tempfile.mkdtemp(prefix="cleval-bench-pipeline-")
    os.makedirs(folder, exist_ok=True)
    big, small = os.path.join(folder, "big.h5"), os.path.join(folder, "small.h5")
    train = os.path.join(folder, "train.h5")
    for path, n in ((big, args.samples), (small, args.samples // 10)):
        if not os.path.exists(path):
            write_images(path, images, labels, n)
    if not os.path.exists(train):
        with h5py.File(train, "w") as f:
            f["X"] = images[60000 - args.knn_train:60000]
            f["y"] = labels[60000 - args.knn_train:60000]
    print(f"files: {args.samples} samples {os.path.getsize(big) / 2**20:.0f} MiB gzip, "
          f"{args.samples // 10} samples {os.path.getsize(small) / 2**20:.0f} MiB")

    rows = []
    for name, job, compute_cmd in (
            ("CNN (eval)", ["eval", "--model", model],
             [compute, "eval", model, small, "--rows", "100000", "--repeat", "3"]),
            ("KNN k=5", ["knn", "--train", train, "-k", "5"],
             [compute, "knn", train, small, "-k", "5", "--rows", "50000", "--repeat", "3"])):
        only = float(re.search(r"RESULT ([\d.]+)", subprocess.run(
            compute_cmd, check=True, capture_output=True, text=True).stdout).group(1))
        result = {}
        for label, path in (("1e6", big), ("1e5", small)):
            wall, peak, out = timed_run([cleval] + job + ["--data", path, "--json", "-",
                                                          "--quiet"])
            report = json.loads(out)
            result[label] = (report["timing"]["samples_per_s"], wall, peak)
        rows.append((name, only, result))

    print(f"\n{'job':<12} {'compute-only/s':>15} {'end-to-end/s':>13} {'ratio':>6} "
          f"{'peak RSS 1e5':>13} {'peak RSS 1e6':>13}")
    for name, only, result in rows:
        e2e = result["1e6"][0]
        print(f"{name:<12} {only:15.0f} {e2e:13.0f} {e2e / only:6.2f} "
              f"{result['1e5'][2] / 1024:10.0f} MiB {result['1e6'][2] / 1024:10.0f} MiB")

    print("\nMPI on this machine (the CNN over the 1e5 file):")
    base = None
    for ranks in (1, 2):
        wall, _, _ = timed_run(["mpirun", "--oversubscribe", "--allow-run-as-root", "-np",
                                str(ranks), cleval, "eval", "--model", model, "--data", small,
                                "--json", os.devnull, "--quiet"])
        base = base or wall
        print(f"  {ranks} rank(s): {wall:.2f} s ({base / wall:.2f}x)")


if __name__ == "__main__":
    main()
