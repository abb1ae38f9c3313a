#!/usr/bin/env python3
"""The convolution shapes of real image models, without PyTorch: MobileNetV2 and ResNet-18 at
224 x 224 written layer by layer with onnx.helper (BatchNormalization already folded into each
Conv's bias, as torch.onnx.export leaves it; random He-scaled weights), run through cleval
(--profile) and onnxruntime (2 threads) on the same seeded samples.

Prints per model the images/s of both (the run without loading the model, as
bench/bench_zoo.py measures it), the largest score difference relative to each sample's
largest |score|, and cleval's device time and GFLOP/s per layer class (the stem, 1x1
pointwise, depthwise, 3x3 and the other convolutions, the rest), summed over the profiled run.

    python3 bench/bench_conv_shapes.py [--models mobilenet_v2,resnet18] [--samples 32]
                                       [--batch 16] [--build build] [--work /tmp/conv_shapes]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zoo import agreement, run_onnxruntime  # noqa: E402
from layer_profile import pocl_env, sample_file  # noqa: E402


class Graph:
    def __init__(self, seed):
        self.nodes, self.inits, self.rng, self.count = [], [], np.random.default_rng(seed), 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array, prefix="c"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), n))
        return n

    def conv(self, x, cin, cout, k, stride=1, group=1, act=None):
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(cout) * 0.1
        y = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(w, "w"), self.const(b, "b")], [y], kernel_shape=[k, k],
            strides=[stride, stride], pads=[k // 2] * 4, group=group, name=y))
        return self.act(y, act)

    def act(self, x, act):
        if act is None:
            return x
        y = self.name(act)
        if act == "relu":
            self.nodes.append(helper.make_node("Relu", [x], [y], name=y))
        else:  # relu6
            self.nodes.append(helper.make_node(
                "Clip", [x, self.const(0.0, "lo"), self.const(6.0, "hi")], [y], name=y))
        return y

    def op(self, kind, inputs, **attrs):
        y = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [y], name=y, **attrs))
        return y

    def head(self, x, channels):
        x = self.op("GlobalAveragePool", [x])
        x = self.op("Flatten", [x], axis=1)
        w = self.rng.standard_normal((channels, 1000)) * np.sqrt(1.0 / channels)
        return self.op("Gemm", [x, self.const(w, "fc"), self.const(np.zeros(1000), "fcb")])

    def model(self, out):
        graph = helper.make_graph(
            self.nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 1000])], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def mobilenet_v2():
    g = Graph(1)
    x, cin = g.conv("x", 3, 32, 3, 2, act="relu6"), 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride, hidden = s if i == 0 else 1, cin * t
            y = g.conv(x, cin, hidden, 1, act="relu6") if t != 1 else x
            y = g.conv(y, hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = g.conv(y, hidden, c, 1)
            x = g.op("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = g.conv(x, cin, 1280, 1, act="relu6")
    return g.model(g.head(x, 1280))


def resnet18():
    g = Graph(2)
    x = g.conv("x", 3, 64, 7, 2, act="relu")
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for c, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for i in range(2):
            stride = s if i == 0 else 1
            y = g.conv(x, cin, c, 3, stride, act="relu")
            y = g.conv(y, c, c, 3)
            skip = g.conv(x, cin, c, 1, stride) if stride != 1 or cin != c else x
            x = g.act(g.op("Add", [y, skip]), "relu")
            cin = c
    return g.model(g.head(x, 512))


MODELS = {"mobilenet_v2": mobilenet_v2, "resnet18": resnet18}


def run_cleval(cleval, model, data, batch, work, profile):
    report = work / "report.json"
    report.unlink(missing_ok=True)
    env = pocl_env()
    cmd = [str(cleval), "eval", "--model", str(model), "--data", str(data), "--batch", str(batch),
           "--json", str(report), "--quiet", "--save", str(work / "pred.h5")]
    r = subprocess.run(cmd + (["--profile"] if profile else []), capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        sys.exit(f"cleval failed: {r.stderr.strip()}")
    out = json.loads(report.read_text())
    with h5py.File(work / "pred.h5", "r") as h:
        scores = h["scores"][:]
    (work / "pred.h5").unlink()
    seconds = out["timing"]["total_s"] - out["timing_breakdown"]["load_model_s"]
    return scores, len(scores) / seconds, out.get("layers", [])


def conv_shapes(model):
    """Node name -> a short class of each Conv: stem, 1x1, dw3x3, 3x3, ..."""
    shapes = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, group = attrs["kernel_shape"][0], attrs.get("group", 1)
        kind = "stem" if node.input[0] == "x" else (f"dw{k}x{k}" if group > 1 else f"{k}x{k}")
        shapes[node.name] = f"{kind} s{attrs['strides'][0]}"
    return shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--build", default="build")
    parser.add_argument("--work", default="/tmp/conv_shapes")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cleval = Path(args.build) / "src" / "cleval"
    data = sample_file(work, args.samples, (3, 224, 224))
    with h5py.File(data, "r") as h:
        x = h["X"][:]
    for name in args.models.split(","):
        model = MODELS[name]()
        path = work / f"{name}.onnx"
        onnx.save(model, path)
        shapes = conv_shapes(model)
        ort_scores, ort_rate = run_onnxruntime(path, x, args.batch)
        scores, rate, _ = run_cleval(cleval, path, data, args.batch, work, False)
        _, _, layers = run_cleval(cleval, path, data, args.batch, work, True)
        within, _, _, max_diff = agreement(scores, ort_scores)
        print(f"{name}: cleval {rate:.1f} img/s, onnxruntime {ort_rate:.1f} img/s "
              f"(ratio {rate / ort_rate:.2f}); {within}/{len(x)} within 1e-3, "
              f"max diff {max_diff:.1e}")
        classes = {}
        for layer in layers:
            key = shapes.get(layer["name"], "other ops") if layer["op"].startswith("Conv") \
                else "other ops"
            s, f = classes.get(key, (0.0, 0.0))
            classes[key] = (s + layer["seconds"], f + layer["seconds"] * layer["gflops_per_s"])
        total = sum(s for s, _ in classes.values())
        for key, (s, f) in sorted(classes.items(), key=lambda kv: -kv[1][0]):
            rate_txt = f"{f / s:6.1f} GFLOP/s" if key != "other ops" and s > 0 else ""
            print(f"  {key:12s} {s:7.3f} s {100 * s / total:5.1f} %  {rate_txt}")


if __name__ == "__main__":
    main()
