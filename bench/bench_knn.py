#!/usr/bin/env python3
"""KNN benchmark: Fashion-MNIST, 60,000 train x 10,000 test x 784
float32 (pixels x/255), k=5, side by side in one run on the same data:

  cleval knn (whole process: load, search, votes, metrics),
  cleval knn on the same images stored as uint8 (0..255): the integer mode, exact integer
    distances and no float64 re-ranking,
  scikit-learn KNeighborsClassifier(algorithm='brute', n_jobs=-1),
  faiss IndexFlatL2 (search + a numpy vote),
  OpenBLAS sgemm through numpy on the distance product's shape, as the machine's limit,

then cleval's scaling when N_train and N_test each double (from half size).

    python3 bench/bench_knn.py [--build build] [--repeat 3] [--no-scaling]

Medians of --repeat runs; every tool's predictions are checked to agree. Not a test.
"""
import argparse
import gzip
import json
import os
import statistics
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
        n, rows, cols = np.frombuffer(data[4:16], dtype=">u4")
        return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, rows * cols)
    return np.frombuffer(data[8:], dtype=np.uint8)


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def vote(labels, n_classes):
    """Uniform vote, the smallest label winning ties (argmax returns the first maximum)."""
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    np.add.at(counts, (np.arange(labels.shape[0])[:, None], labels), 1)
    return counts.argmax(axis=1)


def write_set(path, x, y):
    with h5py.File(path, "w") as f:
        f["X"] = x
        f["y"] = y.astype(np.int32)


def run_cleval(args, train, test, k, repeat, save=None):
    cmd = [os.path.join(args.build, "src", "cleval"), "knn", "--train", train, "--data", test,
           "-k", str(k), "--json", "-", "--quiet"]
    if save:
        cmd += ["--save", save]
    walls, reports = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        walls.append(time.perf_counter() - start)
        reports.append(json.loads(out))
    best = reports[walls.index(statistics.median(walls))] if repeat % 2 else reports[0]
    breakdown = {key: statistics.median(r["timing_breakdown"][key] for r in reports)
                 for key in reports[0]["timing_breakdown"]}
    return statistics.median(walls), best, breakdown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling runs")
    args = parser.parse_args()
    k = args.k

    x_train = (read_idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255).astype(np.float32)
    y_train = read_idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = (read_idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).astype(np.float32)
    y_test = read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    flop = 2.0 * x_train.shape[0] * x_test.shape[0] * x_train.shape[1]

    folder = tempfile.mkdtemp(prefix="cleval-bench-knn-")
    train_h5, test_h5 = os.path.join(folder, "train.h5"), os.path.join(folder, "test.h5")
    write_set(train_h5, x_train, y_train)
    write_set(test_h5, x_test, y_test)

    # OpenBLAS sgemm (numpy) as the machine's practical limit: on the distance product's shape
    # (a 4,096-query slice of it) and on a square 4096^3 product; the better of the two counts.
    a = np.ascontiguousarray(x_test[:4096])
    b = np.ascontiguousarray(x_train.T)
    sgemm_s, _ = timed(lambda: a @ b, args.repeat)
    shape_gflops = 2.0 * a.shape[0] * b.shape[0] * b.shape[1] / sgemm_s / 1e9
    square = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    square_s, _ = timed(lambda: square @ square, args.repeat)
    sgemm_gflops = max(shape_gflops, 2.0 * 4096 ** 3 / square_s / 1e9)

    saved = os.path.join(folder, "pred.h5")
    cleval_s, report, breakdown = run_cleval(args, train_h5, test_h5, k, args.repeat, saved)
    with h5py.File(saved) as f:
        cleval_pred = f["pred"][:]
    train_u8, test_u8 = os.path.join(folder, "train_u8.h5"), os.path.join(folder, "test_u8.h5")
    write_set(train_u8, read_idx("train-images-idx3-ubyte.gz"), y_train)
    write_set(test_u8, read_idx("t10k-images-idx3-ubyte.gz"), y_test)
    u8_s, u8_report, u8_breakdown = run_cleval(args, train_u8, test_u8, k, args.repeat, saved)
    with h5py.File(saved) as f:
        u8_pred = f["pred"][:]

    from sklearn.neighbors import KNeighborsClassifier
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute", n_jobs=-1)
    sk_s, sk_pred = timed(lambda: sk.fit(x_train, y_train).predict(x_test), args.repeat)

    import faiss
    def faiss_run():
        index = faiss.IndexFlatL2(x_train.shape[1])
        index.add(x_train)
        _, neighbours = index.search(x_test, k)
        return vote(y_train[neighbours], 10)
    faiss_s, faiss_pred = timed(faiss_run, args.repeat)

    agree_sk = int((cleval_pred == sk_pred).sum())
    agree_faiss = int((cleval_pred == faiss_pred).sum())
    screen_gflops = flop / breakdown["screen_s"] / 1e9

    print(f"Fashion-MNIST {x_train.shape[0]} x {x_test.shape[0]} x {x_train.shape[1]}, k={k}, "
          f"median of {args.repeat}; device: {report['device']}")
    print(f"{'tool':<34} {'seconds':>8} {'GFLOP/s eff.':>13} {'vs cleval':>10} {'accuracy':>9}")
    rows = [("cleval knn (whole process)", cleval_s, report["accuracy"]),
            ("cleval knn, uint8 (integer mode)", u8_s, u8_report["accuracy"]),
            ("scikit-learn brute, n_jobs=-1", sk_s, float((sk_pred == y_test).mean())),
            ("faiss IndexFlatL2 + numpy vote", faiss_s, float((faiss_pred == y_test).mean()))]
    for name, seconds, accuracy in rows:
        print(f"{name:<34} {seconds:8.3f} {flop / seconds / 1e9:13.1f} "
              f"{seconds / cleval_s:9.2f}x {accuracy:9.4f}")
    print(f"OpenBLAS sgemm: {shape_gflops:.1f} GFLOP/s on 4096x784 @ 784x60000, "
          f"{2.0 * 4096 ** 3 / square_s / 1e9:.1f} on 4096^3 (limit: {sgemm_gflops:.1f})")
    print(f"cleval breakdown: load+layout {breakdown['load_train_s']:.3f} s, screening "
          f"{breakdown['screen_s']:.3f} s ({screen_gflops:.1f} GFLOP/s = "
          f"{100 * screen_gflops / sgemm_gflops:.0f}% of sgemm), exact re-rank + votes "
          f"{breakdown['exact_s']:.3f} s, test reads {breakdown['read_s']:.3f} s")
    print(f"cleval uint8 breakdown: load+layout {u8_breakdown['load_train_s']:.3f} s, exact "
          f"integer search {u8_breakdown['screen_s']:.3f} s "
          f"({flop / u8_breakdown['screen_s'] / 1e9:.1f} GFLOP/s eq.), votes "
          f"{u8_breakdown['exact_s']:.3f} s")
    print(f"agreement: cleval = scikit-learn on {agree_sk}/{len(y_test)}, = faiss on "
          f"{agree_faiss}/{len(y_test)}, float32 = uint8 run on "
          f"{int((cleval_pred == u8_pred).sum())}/{len(y_test)}; ties decided by rule: "
          f"{report['knn']['vote_ties']} vote, {report['knn']['distance_ties']} distance")
    if args.no_scaling:
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
        return

    print("\nscaling (cleval whole process, median):")
    half_train, half_test = x_train.shape[0] // 2, x_test.shape[0] // 2
    sizes = [(half_train, half_test), (2 * half_train, half_test), (half_train, 2 * half_test),
             (2 * half_train, 2 * half_test)]
    base = None
    for n_train, n_test in sizes:
        tr, te = os.path.join(folder, "tr.h5"), os.path.join(folder, "te.h5")
        write_set(tr, x_train[:n_train], y_train[:n_train])
        write_set(te, x_test[:n_test], y_test[:n_test])
        seconds, _, parts = run_cleval(args, tr, te, k, args.repeat)
        base = base or seconds
        print(f"  train {n_train:6d} x test {n_test:6d}: {seconds:7.3f} s ({seconds / base:4.2f}x),"
              f" screening {parts['screen_s']:.3f} s")
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)


if __name__ == "__main__":
    main()
