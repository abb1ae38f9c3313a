#!/usr/bin/env python3
"""Pooling at ResNet-18's stem shape, alone: MaxPool 3x3 stride 2 pad 1 on [N, 64, 112, 112],
then AveragePool 3x3 stride 1 pad 1 (count_include_pad 0) and GlobalAveragePool + Flatten as
the classifier head, written with onnx.helper and run through cleval with --profile.

Prints each layer's kernel, median device time and GFLOP/s (one per window tap) over --repeat
runs of the whole --samples set.

    python3 bench/bench_pool.py [--samples 32] [--batch 16] [--repeat 5] [--build build]
                                [--work /tmp/bench_pool]
"""

import argparse
import statistics
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_profile import median_seconds, profile_layers, sample_file  # noqa: E402


def model():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], name="maxpool"),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1], name="avgpool"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--build", default="build")
    parser.add_argument("--work", default="/tmp/bench_pool")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "pool.onnx"
    onnx.save(model(), path)
    data = sample_file(work, args.samples, (64, 112, 112))
    times = profile_layers(args.build, path, data, args.batch, work, args.repeat)
    for name, runs in times.items():
        seconds = median_seconds(runs)
        gflops = statistics.median(layer.get("gflops_per_s", 0.0) for layer in runs)
        print(f"{name:14s} {runs[0]['kernel']:16s} median {seconds * 1e3:8.2f} ms "
              f"{gflops:7.2f} GFLOP/s over {len(runs)} runs")

if __name__ == "__main__":
    main()
