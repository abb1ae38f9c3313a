#!/usr/bin/env python3
"""The residual Add + Relu of ResNet-18 alone, at its largest shape [N, 64, 56, 56]: two graph
inputs x and r, y = Relu(x + r) (fused into one binary kernel), plus a per-channel Add of a
[64, 1, 1] constant (y2 = y + c) for the broadcast path; written with onnx.helper and run through
a classifier head (GlobalAveragePool, Flatten); run through cleval with --profile.

Prints each layer's kernel, median device time and GB/s (bytes read and written, float) over
--repeat runs of the whole --samples set.

    python3 bench/bench_add.py [--samples 32] [--batch 32] [--repeat 5] [--build build]
                               [--work /tmp/bench_add]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_profile import median_seconds, profile_layers, sample_file  # noqa: E402

SHAPE = (64, 56, 56)


def model():
    c = helper.make_tensor("c", TensorProto.FLOAT, [64, 1, 1],
                           np.linspace(-1, 1, 64, dtype=np.float32).tolist())
    # r = -x through Neg keeps both Add operands device tensors of the same shape
    nodes = [
        helper.make_node("Neg", ["x"], ["r"], name="neg"),
        helper.make_node("Add", ["x", "r"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["t"], name="relu"),
        helper.make_node("Add", ["t", "c"], ["u"], name="add_channel"),
        helper.make_node("GlobalAveragePool", ["u"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "add", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *SHAPE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])], [c])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--build", default="build")
    parser.add_argument("--work", default="/tmp/bench_add")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "add.onnx"
    onnx.save(model(), path)
    data = sample_file(work, args.samples, SHAPE)
    times = profile_layers(args.build, path, data, args.batch, work, args.repeat)
    elements = args.samples * int(np.prod(SHAPE))
    for name, runs in times.items():
        if name not in ("neg", "add", "add_channel"):
            continue
        seconds = median_seconds(runs)
        # same-shape Add reads two tensors and writes one; the others read one, write one
        tensors = 3 if name == "add" else 2
        gbs = tensors * 4 * elements / seconds / 1e9 if seconds > 0 else 0.0
        print(f"{name:12s} {runs[0]['kernel']:24s} median {seconds * 1e3:8.2f} ms "
              f"{gbs:7.2f} GB/s over {len(runs)} runs")


if __name__ == "__main__":
    main()
