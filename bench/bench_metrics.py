#!/usr/bin/env python3
"""Confusion-matrix benchmark: cleval's device reduction against
scikit-learn's confusion_matrix and numpy.bincount on the same (y, pred) pairs, plus the
machine's streaming-read bandwidth and the end-to-end `cleval metrics` time on the same file.

    python3 bench/bench_metrics.py [--build build] [--sizes 10000000 50000000] [--classes 10 1000]
    python3 bench/bench_metrics.py --scores [--score-cases 10000000x10 1000000x1000]
        [--baseline-build OTHER_BUILD]
    python3 bench/bench_metrics.py --auc [--auc-cases 1000000x10 10000000x10]

--scores times the score-based metrics instead (top-5 accuracy, log loss, ECE over raw logits):
`cleval metrics --top-k 5` against a Python process running scikit-learn (top_k_accuracy_score,
log_loss on the softmax) and one running torchmetrics on the CPU (MulticlassAccuracy top_k=5,
cross-entropy, MulticlassCalibrationError), each timed as a whole process from the same
HDF5 file (start-up and reading included), and checks they agree. The Python processes read
the scores in pieces of at most 2^27 values (512 MB as float32; the whole file when smaller),
since scikit-learn's float64 softmax of a 4 GB file would not fit in memory. The 1000-class
case is 10^6 x 1000 (4 GB of float32), not 10^7 x 1000 (40 GB, more than a 24 GB machine's
memory and page cache). --baseline-build times another build's cleval (say, before a change)
on the same files, in the same run. The current build's runs pass --auc off, so they time the
same metrics as before ROC AUC existed.

--auc times ROC AUC and average precision (one-vs-rest, macro and weighted) over the softmax
of raw logits: cleval's share is `cleval metrics --auc on` less `--auc off` on the same file
(whole processes); scikit-learn's is roc_auc_score(multi_class='ovr') and
average_precision_score on the binarized labels, macro and weighted, timed inside its process
after reading and the softmax; torchmetrics' (MulticlassAUROC and MulticlassAveragePrecision,
thresholds=None: exact) likewise when it is installed. The values must agree to 1e-6 (the
float32 softmax rounds differently in numpy and on the device, which may order a few near-equal
probabilities differently).

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


# Both read the file in pieces of argv[2] rows and add up per piece.
SKLEARN_SCORES = """
import json, sys
import h5py, numpy as np
from sklearn.metrics import log_loss, top_k_accuracy_score
rows, hits, loss = int(sys.argv[2]), 0.0, 0.0
with h5py.File(sys.argv[1]) as f:
    n, c = f["scores"].shape
    labels = np.arange(c)
    for row0 in range(0, n, rows):
        y, s = f["y"][row0:row0 + rows], f["scores"][row0:row0 + rows]
        e = np.exp(s.astype(np.float64) - s.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        hits += top_k_accuracy_score(y, s, k=5, labels=labels, normalize=False)
        loss += log_loss(y, p, labels=labels, normalize=False)
print(json.dumps({"top_k": hits / n, "log_loss": loss / n}))
"""

TORCHMETRICS_SCORES = """
import json, sys
import h5py, torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError
rows, loss = int(sys.argv[2]), 0.0
with h5py.File(sys.argv[1]) as f:
    n, c = f["scores"].shape
    accuracy = MulticlassAccuracy(num_classes=c, top_k=5, average="micro")
    ece = MulticlassCalibrationError(num_classes=c, n_bins=15, norm="l1")
    for row0 in range(0, n, rows):
        y = torch.from_numpy(f["y"][row0:row0 + rows]).long()
        s = torch.from_numpy(f["scores"][row0:row0 + rows])
        accuracy.update(s, y)
        ece.update(s, y)
        loss += float(torch.nn.functional.cross_entropy(s.double(), y, reduction="sum"))
print(json.dumps({"top_k": float(accuracy.compute()), "log_loss": loss / n,
                  "ece": float(ece.compute())}))
"""

# The most score values the Python references hold at once (see the module's docstring).
REFERENCE_PIECE_VALUES = 1 << 27


SKLEARN_AUC = """
import json, sys, time
import h5py, numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import label_binarize
with h5py.File(sys.argv[1]) as f:
    y, s = f["y"][:], f["scores"][:]
e = np.exp(s - s.max(axis=1, keepdims=True))
p = e / e.sum(axis=1, keepdims=True)  # float32, as cleval's
labels = np.arange(s.shape[1])
start = time.perf_counter()
out = {"roc_auc": {a: roc_auc_score(y, p, multi_class="ovr", average=a, labels=labels)
                   for a in ("macro", "weighted")}}
onehot = label_binarize(y, classes=labels)
out["average_precision"] = {a: average_precision_score(onehot, p, average=a)
                            for a in ("macro", "weighted")}
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""

TORCHMETRICS_AUC = """
import json, sys, time
import h5py, torch
from torchmetrics.classification import MulticlassAUROC, MulticlassAveragePrecision
with h5py.File(sys.argv[1]) as f:
    y, s = torch.from_numpy(f["y"][:]).long(), torch.from_numpy(f["scores"][:])
p, c = torch.softmax(s, dim=1), s.shape[1]
start = time.perf_counter()
out = {}
for key, metric in (("roc_auc", MulticlassAUROC), ("average_precision",
                                                    MulticlassAveragePrecision)):
    out[key] = {a: float(metric(num_classes=c, average=a, thresholds=None)(p, y))
                for a in ("macro", "weighted")}
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def write_logits(path, n, classes, seed, chunk=1_000_000):
    """Raw logits [n, classes] and labels, written in chunks so memory stays bounded."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        y = f.create_dataset("y", (n,), dtype=np.int32)
        pred = f.create_dataset("pred", (n,), dtype=np.int32)
        scores = f.create_dataset("scores", (n, classes), dtype=np.float32)
        for row0 in range(0, n, chunk):
            m = min(chunk, n - row0)
            labels = rng.integers(0, classes, m, dtype=np.int32)
            logits = rng.normal(0, 1, (m, classes)).astype(np.float32)
            logits[np.arange(m), labels] += 2.0  # a model that is right more often than not
            y[row0:row0 + m] = labels
            pred[row0:row0 + m] = logits.argmax(axis=1)
            scores[row0:row0 + m] = logits


def timed_process(command, repeat):
    """Median wall time of the whole process, and its last stdout."""
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def time_cleval(build, path, repeat, extra=()):
    """Median whole-process time of `cleval metrics --top-k 5` from `build`, and its report,
    after one untimed run (PoCL compiles a changed kernel on first use, then caches it). The
    build's own library comes first (a copied build finds it too)."""
    env = dict(os.environ)
    library = os.path.join(build, "src")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [library, env.get("LD_LIBRARY_PATH")]))
    command = [os.path.join(library, "cleval"), "metrics", "--data", path, "--top-k", "5",
               "--json", "-", *extra]
    subprocess.run(command, check=True, capture_output=True, env=env)
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), json.loads(out)


def run_scores_case(args, n, classes, folder):
    path = os.path.join(folder, f"logits_{n}_{classes}.h5")
    write_logits(path, n, classes, seed=n + classes)
    cl_s, report = time_cleval(args.build, path, args.sklearn_repeat, ["--auc", "off"])
    base_s = None
    if args.baseline_build:
        base_s, base = time_cleval(args.baseline_build, path, args.sklearn_repeat)
        assert base["top_k"] == report["top_k"], (base["top_k"], report["top_k"])
    piece = str(max(1, REFERENCE_PIECE_VALUES // classes))
    sk_s, out = timed_process(["python3", "-c", SKLEARN_SCORES, path, piece], args.sklearn_repeat)
    sk = json.loads(out)
    tm_s, out = timed_process(["python3", "-c", TORCHMETRICS_SCORES, path, piece],
                              args.sklearn_repeat)
    tm = json.loads(out)
    os.remove(path)
    assert report["top_k"]["accuracy"] == sk["top_k"], (report["top_k"], sk["top_k"])
    assert abs(report["log_loss"] - sk["log_loss"]) <= 1e-5 * sk["log_loss"]
    assert abs(report["log_loss"] - tm["log_loss"]) <= 1e-5 * tm["log_loss"]
    assert abs(report["calibration"]["ece"] - tm["ece"]) <= 1e-4
    return {"n": n, "classes": classes, "cleval_s": cl_s, "baseline_s": base_s,
            "sklearn_s": sk_s, "torchmetrics_s": tm_s, "top_k": report["top_k"]["accuracy"],
            "log_loss": report["log_loss"], "ece": report["calibration"]["ece"]}


def main_scores(args):
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as folder:
        for case in args.score_cases:
            n, classes = (int(v) for v in case.lower().split("x"))
            rows.append(run_scores_case(args, n, classes, folder))
    baseline = " | baseline s | sk/baseline | tm/baseline" if args.baseline_build else ""
    print("N | C | cleval s | sklearn s | torchmetrics s | sk/cleval | tm/cleval" + baseline +
          " | top-5 | log loss | ECE")
    for r in rows:
        cells = [f"{r['n']:.0e}", str(r["classes"]), f"{r['cleval_s']:.3f}",
                 f"{r['sklearn_s']:.3f}", f"{r['torchmetrics_s']:.3f}",
                 f"{r['sklearn_s'] / r['cleval_s']:.1f}x",
                 f"{r['torchmetrics_s'] / r['cleval_s']:.1f}x"]
        if args.baseline_build:
            cells += [f"{r['baseline_s']:.3f}", f"{r['sklearn_s'] / r['baseline_s']:.1f}x",
                      f"{r['torchmetrics_s'] / r['baseline_s']:.1f}x"]
        cells += [f"{r['top_k']:.4f}", f"{r['log_loss']:.4f}", f"{r['ece']:.4f}"]
        print(" | ".join(cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def timed_inside(script, path, repeat):
    """Median of the seconds a Python process reports for its own timed part, and its last
    report; None when the script cannot run (a missing package)."""
    times, report = [], None
    for _ in range(repeat):
        done = subprocess.run(["python3", "-c", script, path], capture_output=True, text=True)
        if done.returncode != 0:
            return None, None
        report = json.loads(done.stdout)
        times.append(report["seconds"])
    return statistics.median(times), report


def assert_auc_agrees(report, other, what):
    for key in ("roc_auc", "average_precision"):
        for avg in ("macro", "weighted"):
            assert abs(report[key][avg] - other[key][avg]) <= 1e-6, (what, key, avg)


def run_auc_case(args, n, classes, folder):
    path = os.path.join(folder, f"logits_{n}_{classes}.h5")
    write_logits(path, n, classes, seed=n + classes)
    cleval = os.path.join(args.build, "src", "cleval")
    run = [cleval, "metrics", "--data", path, "--json", "-", "--auc"]
    off_s, _ = timed_process(run + ["off"], args.sklearn_repeat)
    on_s, out = timed_process(run + ["on"], args.sklearn_repeat)
    report = json.loads(out)
    sk_s, sk = timed_inside(SKLEARN_AUC, path, args.sklearn_repeat)
    tm_s, tm = timed_inside(TORCHMETRICS_AUC, path, args.sklearn_repeat)
    os.remove(path)
    assert_auc_agrees(report, sk, "scikit-learn")
    if tm:
        assert_auc_agrees(report, tm, "torchmetrics")
    return {"n": n, "classes": classes, "cleval_off_s": off_s, "cleval_on_s": on_s,
            "cleval_auc_s": on_s - off_s, "sklearn_auc_s": sk_s, "torchmetrics_auc_s": tm_s,
            "roc_auc": report["roc_auc"], "average_precision": report["average_precision"]}


def main_auc(args):
    """Prints each case's row as soon as it is measured (the large cases take long)."""
    rows = []
    print("N | C | cleval off s | cleval on s | cleval AUC s | sklearn AUC s | sk/cleval | "
          "torchmetrics AUC s | tm/cleval | ROC AUC macro | AP macro", flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as folder:
        for case in args.auc_cases:
            n, classes = (int(v) for v in case.lower().split("x"))
            r = run_auc_case(args, n, classes, folder)
            rows.append(r)
            print_auc_row(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def print_auc_row(r):
    tm = r["torchmetrics_auc_s"]
    print(" | ".join([
        f"{r['n']:.0e}", str(r["classes"]), f"{r['cleval_off_s']:.2f}", f"{r['cleval_on_s']:.2f}",
        f"{r['cleval_auc_s']:.2f}", f"{r['sklearn_auc_s']:.2f}",
        f"{r['sklearn_auc_s'] / r['cleval_auc_s']:.1f}x", f"{tm:.2f}" if tm else "not installed",
        f"{tm / r['cleval_auc_s']:.1f}x" if tm else "-",
        f"{r['roc_auc']['macro']:.6f}", f"{r['average_precision']['macro']:.6f}"]), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 50_000_000])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sklearn-repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--scores", action="store_true",
                        help="time the score-based metrics instead of the confusion matrix")
    parser.add_argument("--score-cases", nargs="+", default=["10000000x10", "1000000x1000"],
                        help="NxC cases of --scores (the 1000-class case is 10^6 rows: "
                             "10^7 x 1000 would be 40 GB of float32)")
    parser.add_argument("--baseline-build",
                        help="--scores: also time this build's cleval on the same files")
    parser.add_argument("--auc", action="store_true",
                        help="time ROC AUC and average precision instead")
    parser.add_argument("--auc-cases", nargs="+", default=["1000000x10", "10000000x10"],
                        help="NxC cases of --auc")
    args = parser.parse_args()
    if args.scores:
        main_scores(args)
        return
    if args.auc:
        main_auc(args)
        return

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
