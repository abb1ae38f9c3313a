#!/usr/bin/env python3
"""GFLOP/s of cleval's matrix multiply on the shapes classifier heads and attention have,
against numpy's OpenBLAS sgemm on the same shapes in the same run.

For each shape it writes a one-node ONNX graph (MatMul; B a constant for the weight products,
a second input for the activation products of attention), runs it with bench_gemm (the C
driver next to this script: device seconds of the kernels per run, and CPU seconds of a whole
run, medians over the repeats) and times numpy.matmul on float32 arrays of the same shapes
(median wall and CPU seconds over the repeats) with 1 and with 2 OpenBLAS threads: on a
shared machine two BLAS threads that spin-wait for each other can be slower than one, so the
ratio is taken against the faster of the two. cleval and numpy alternate shape by shape, so
they see the same machine load. GFLOP per CPU second does not count time slices given to
other processes, so it moves less than wall-clock figures when the machine is loaded.

    python3 bench/bench_gemm.py [--build build] [--repeat 7] [--only NAME,...]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent

# name, A shape, B shape, B constant (weights) or a second input (activations)
SHAPES = [
    ("head b1 2048->1000", [1, 2048], [2048, 1000], True),
    ("head b64 2048->1000", [64, 2048], [2048, 1000], True),
    ("head b64 768->1000", [64, 768], [768, 1000], True),
    ("tall 197x768x64", [197, 768], [768, 64], True),
    ("qkv 8x197x768x2304", [8, 197, 768], [768, 2304], True),
    ("attn QK^T 96x197x64x197", [8, 12, 197, 64], [8, 12, 64, 197], False),
    ("attn PV 96x197x197x64", [8, 12, 197, 197], [8, 12, 197, 64], False),
]


def write_model(path, a_shape, b_shape, b_const):
    out = list(np.matmul(np.zeros(a_shape, np.float32), np.zeros(b_shape, np.float32)).shape)
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape)]
    inits = []
    if b_const:
        rng = np.random.default_rng(0)
        inits.append(numpy_helper.from_array(
            rng.uniform(-0.5, 0.5, b_shape).astype(np.float32), "b"))
    else:
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape))
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def numpy_seconds(a_shape, b_shape, repeat, threads):
    """Median wall and CPU seconds of one numpy.matmul with `threads` OpenBLAS threads."""
    rng = np.random.default_rng(1)
    a = rng.uniform(-0.5, 0.5, a_shape).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, b_shape).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        return median_seconds(lambda: np.matmul(a, b), repeat)


def median_seconds(product, repeat):
    # Each sample repeats the product for at least 20 ms: a single small product would time
    # OpenBLAS waking its threads rather than computing.
    product()
    t, calls = time.perf_counter(), 0
    while time.perf_counter() - t < 0.02:
        product()
        calls += 1
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(calls):
            product()
        walls.append((time.perf_counter() - t) / calls)
        cpus.append((time.process_time() - c) / calls)
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    driver = Path(args.build) / "bench" / "bench_gemm"
    if not driver.exists():
        sys.exit(f"{driver} is missing: cmake --build {args.build} --target bench_gemm")
    only = [s for s in args.only.split(",") if s]
    print("GFLOP/s: cleval's kernels by device time, numpy by wall time with 1 and 2 threads, "
          "ratio cleval / the faster numpy;\nGFLOP per CPU second: a whole cleval run (copies "
          "included) and numpy's better thread count, ratio cleval / numpy")
    print(f"{'shape':26s} {'GFLOP':>6s} {'cleval':>7s} {'np 1T':>7s} {'np 2T':>7s} {'ratio':>6s}"
          f" {'cl/cpu':>7s} {'np/cpu':>7s} {'ratio':>6s}  kernel")
    with tempfile.TemporaryDirectory() as tmp:
        for name, a_shape, b_shape, b_const in SHAPES:
            if only and not any(o in name for o in only):
                continue
            path = os.path.join(tmp, "m.onnx")
            write_model(path, a_shape, b_shape, b_const)
            res = subprocess.run([str(driver), path, "--repeat", str(args.repeat)],
                                 capture_output=True, text=True)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
            if res.returncode != 0 or not line:
                print(f"{name:26s} failed: {res.stderr.strip()}")
                continue
            _, flops, _, gflops, _, cpu, kernel = line[0].split(" ", 6)
            g = float(flops) * 1e-9
            (w1, c1), (w2, c2) = (numpy_seconds(a_shape, b_shape, args.repeat, t) for t in (1, 2))
            cl_cpu, np_cpu = g / float(cpu), g / min(c1, c2)
            print(f"{name:26s} {g:6.3f} {float(gflops):7.1f} {g / w1:7.1f} {g / w2:7.1f} "
                  f"{float(gflops) / (g / min(w1, w2)):6.2f} {cl_cpu:7.1f} {np_cpu:7.1f} "
                  f"{cl_cpu / np_cpu:6.2f}  {kernel}", flush=True)


if __name__ == "__main__":
    main()
