#!/usr/bin/env python3
"""cleval's network runner against PyTorch and onnxruntime on the same data, in one run.

Runs the shipped Fashion-MNIST CNN (datasets/fmnist_cnn.onnx) over the 10,000-image test set
(datasets/fmnist_test.h5) at batch sizes 64, 256 and 1024 with:

* cleval      bench_nn (the C driver next to this script, built in the build folder):
              cleval_nn_run() per batch, scores copied back to the host;
* torch eager the same network in PyTorch (weights from the ONNX file), torch.inference_mode;
* torchscript torch.jit.trace + freeze + optimize_for_inference (oneDNN), the fastest CPU mode;
* onnxruntime the ONNX file itself, CPU execution provider;

all with 2 threads (the machine's cores). The rounds are interleaved (every tool once per
round, ROUNDS rounds) and each figure is the median over the rounds, so load from other
processes spreads evenly over the tools. Also prints OpenBLAS sgemm (numpy, 2048^3) as the
machine's practical matrix-multiply ceiling, the per-layer device time of a profiled cleval
pass, and the ratio of cleval to the fastest PyTorch mode.

    python3 bench/bench_nn.py [--build build] [--rounds 5] [--batches 64,256,1024]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "datasets" / "fmnist_cnn.onnx"
DATA = ROOT / "datasets" / "fmnist_test.h5"
THREADS = 2


def model_flops(path):
    """Floating-point operations per sample of Conv, Gemm and MatMul (multiply-add = 2)."""
    import onnx
    from onnx import shape_inference
    model = onnx.load(str(path))
    # Shape inference needs a concrete batch; 1 sample.
    for dim in model.graph.input[0].type.tensor_type.shape.dim[:1]:
        dim.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and out:
            w = inits[node.input[1]]
            total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul") and out:
            w = inits.get(node.input[1])
            k = w[1] if node.op_type == "Gemm" and any(
                a.name == "transB" and a.i for a in node.attribute) else w[0]
            total += 2 * int(np.prod(out)) * k
    return total


def load_data():
    with h5py.File(DATA, "r") as f:
        x = f["X"][:].astype(np.float32)
        y = f["y"][:].astype(np.int64)
    return x.reshape(len(x), 1, 28, 28), y


def torch_tools():
    """Callables batch -> scores for PyTorch eager, TorchScript and onnxruntime."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    sys.path.insert(0, str(ROOT / "tools"))
    from train_fmnist_cnn import FmnistCnn  # the network the ONNX file was exported from

    torch.set_num_threads(THREADS)
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(MODEL)).graph.initializer}
    net = FmnistCnn().eval()
    net.load_state_dict(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            scripted = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(net, torch.zeros(64, 1, 28, 28))))
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def eager(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    def script(x):
        with torch.inference_mode():
            return scripted(torch.from_numpy(x)).numpy()

    def onnxrt(x):
        return session.run(None, {input_name: x})[0]

    return {"torch eager": eager, "torchscript": script, "onnxruntime": onnxrt}, torch.__version__, ort.__version__


def one_pass(fn, x, batch):
    """Seconds for one pass over x in batches, and the predictions."""
    preds = []
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        preds.append(fn(x[i:i + batch]).argmax(axis=1))
    return time.perf_counter() - start, np.concatenate(preds)


def run_cleval(driver, batches, repeat, profile=False):
    """{batch: (images/s, accuracy)} and the raw output of one bench_nn run."""
    cmd = [str(driver), str(MODEL), str(DATA), "--batch", ",".join(map(str, batches)),
           "--repeat", str(repeat)]
    if not profile:
        cmd.append("--no-profile")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            fields = line.split()
            results[int(fields[1])] = (float(fields[2]), float(fields[3]))
    return results, out


def sgemm_gflops(n=2048, repeat=5):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=str(ROOT / "build"), help="cleval build folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="64,256,1024")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    driver = Path(args.build) / "bench" / "bench_nn"
    if not driver.exists():
        sys.exit(f"{driver} not found: build cleval first (cmake --build {args.build})")
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

    x, y = load_data()
    flops = model_flops(MODEL)
    tools, torch_version, ort_version = torch_tools()
    print(f"model {MODEL.name}: {flops / 1e6:.1f} MFLOP per image; {len(x)} images; "
          f"{THREADS} threads; torch {torch_version}, onnxruntime {ort_version}")

    # Warm-up: every tool once at every batch size (oneDNN and PoCL compile on first use).
    for fn in tools.values():
        for b in batches:
            one_pass(fn, x[:2 * b], b)

    rates = {name: {b: [] for b in batches} for name in ["cleval", *tools]}
    accuracy = {}
    for r in range(args.rounds):
        results, _ = run_cleval(driver, batches, repeat=3)
        for b in batches:
            rates["cleval"][b].append(results[b][0])
            accuracy["cleval"] = results[b][1]
        for name, fn in tools.items():
            for b in batches:
                seconds, pred = one_pass(fn, x, b)
                rates[name][b].append(len(x) / seconds)
                accuracy[name] = float((pred == y).mean())
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    blas = sgemm_gflops()

    med = {name: {b: statistics.median(v) for b, v in per.items()} for name, per in rates.items()}
    print()
    header = f"{'batch':>6} | " + " | ".join(f"{n:>14}" for n in med) + \
        " | cleval GFLOP/s* | cleval / fastest torch | cleval / onnxruntime"
    print(header)
    print("-" * len(header))
    for b in batches:
        fastest = max(med["torch eager"][b], med["torchscript"][b])
        cells = " | ".join(f"{med[n][b]:>9.0f} im/s" for n in med)
        print(f"{b:>6} | {cells} | {med['cleval'][b] * flops / 1e9:>14.1f} | "
              f"{med['cleval'][b] / fastest:>22.2f} | {med['cleval'][b] / med['onnxruntime'][b]:>20.2f}")
    print(f"\nmedians of {args.rounds} interleaved rounds (cleval: median of 3 passes per round)")
    print("* images/s x the network's direct-convolution FLOPs; the Winograd conv does fewer")
    print("accuracy: " + ", ".join(f"{n} {a:.4f}" for n, a in accuracy.items()))
    print(f"OpenBLAS sgemm 2048^3 (numpy, {THREADS} threads): {blas:.0f} GFLOP/s; "
          f"cleval at batch {batches[-1]}: {med['cleval'][batches[-1]] * flops / 1e9:.0f} GFLOP/s "
          "over the whole network")

    _, out = run_cleval(driver, batches, repeat=1, profile=True)
    print("\ncleval per-layer device time (one profiled pass per batch size):")
    for line in out.splitlines():
        if line.startswith("per-layer") or line.startswith("  "):
            print(line)


if __name__ == "__main__":
    main()
