#!/usr/bin/env python3
"""Generate the elementwise-fusion fixtures of tests/test_nn_gemmfuse.c.

Run from the repository root: ``python3 tools/make_gemmfuse_fixtures.py``. Writes to
``tests/fixtures/onnx/``; the C tests never run Python, so the outputs are committed.

``fusion_blocks.onnx`` (opset 13, written node by node with onnx.helper, seeded weights) is a
small classifier x [N, 4, 5, 5] -> 5 scores holding the patterns cleval fuses into one
elementwise kernel:

* a residual block: Conv -> Relu -> Conv, Add with the block's input, Relu (Add+Relu);
* a squeeze-excitation block with Sigmoid: GlobalAveragePool -> Conv -> Relu -> Conv ->
  Sigmoid, Mul with the block's input (Mul+Sigmoid);
* the same with HardSigmoid (alpha 1/6, beta 1/2, as torch writes MobileNetV3's
  Hardsigmoid), the gate as Mul's first input (Mul+HardSigmoid);
* HardSwish written out as x * HardSigmoid(x) after a Conv (Mul+HardSigmoid);
* two branches added and clipped to [0, 6] (Add+Clip);
* GlobalAveragePool -> Flatten -> Gemm.

``fusion_io.h5`` holds ``X`` float32 [7, 4, 5, 5] (seeded) and ``scores_ort`` (onnxruntime,
CPU execution provider, all graph optimisations off so it runs the nodes as written).
"""

from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT_DIR = Path("tests/fixtures/onnx")
N = 7


def main():
    rng = np.random.default_rng(23)
    inits = []

    def weight(name, shape, scale):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def conv(name, x, cin, cout, k, y):
        pad = k // 2
        return helper.make_node("Conv", [x, weight(name + ".w", [cout, cin, k, k], 0.4),
                                         weight(name + ".b", [cout], 0.2)], [y], name=name,
                                pads=[pad] * 4)

    nodes = [
        conv("conv1", "x", 4, 8, 3, "c1"),
        helper.make_node("Relu", ["c1"], ["h"], name="relu1"),
        # residual: relu(conv(relu(conv(h))) + h)
        conv("res.conv_a", "h", 8, 8, 3, "ra"),
        helper.make_node("Relu", ["ra"], ["rb"], name="res.relu_a"),
        conv("res.conv_b", "rb", 8, 8, 3, "rc"),
        helper.make_node("Add", ["rc", "h"], ["rd"], name="res.add"),
        helper.make_node("Relu", ["rd"], ["r"], name="res.relu"),
        # squeeze-excitation, Sigmoid gate as Mul's second input
        helper.make_node("GlobalAveragePool", ["r"], ["sp"], name="se1.pool"),
        conv("se1.fc1", "sp", 8, 2, 1, "s1"),
        helper.make_node("Relu", ["s1"], ["s2"], name="se1.relu"),
        conv("se1.fc2", "s2", 2, 8, 1, "s3"),
        helper.make_node("Sigmoid", ["s3"], ["s4"], name="se1.sigmoid"),
        helper.make_node("Mul", ["r", "s4"], ["e"], name="se1.mul"),
        # squeeze-excitation, HardSigmoid gate as Mul's first input
        helper.make_node("GlobalAveragePool", ["e"], ["tp"], name="se2.pool"),
        conv("se2.fc1", "tp", 8, 2, 1, "t1"),
        helper.make_node("Relu", ["t1"], ["t2"], name="se2.relu"),
        conv("se2.fc2", "t2", 2, 8, 1, "t3"),
        helper.make_node("HardSigmoid", ["t3"], ["t4"], name="se2.hardsigmoid",
                         alpha=1.0 / 6.0, beta=0.5),
        helper.make_node("Mul", ["t4", "e"], ["f"], name="se2.mul"),
        # HardSwish written out: u * HardSigmoid(u)
        conv("hs.conv", "e", 8, 8, 1, "u"),
        helper.make_node("HardSigmoid", ["u"], ["g"], name="hs.gate", alpha=1.0 / 6.0,
                         beta=0.5),
        helper.make_node("Mul", ["u", "g"], ["w"], name="hs.mul"),
        # two branches added, clipped to [0, 6]
        helper.make_node("Add", ["w", "f"], ["q0"], name="join.add"),
        helper.make_node("Clip", ["q0", "zero", "six"], ["q"], name="join.clip"),
        helper.make_node("GlobalAveragePool", ["q"], ["gp"], name="head.pool"),
        helper.make_node("Flatten", ["gp"], ["fl"], name="head.flatten"),
        helper.make_node("Gemm", ["fl", weight("head.w", [5, 8], 0.5),
                                  weight("head.b", [5], 0.1)], ["y"], name="head.gemm",
                         transB=1),
    ]
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "six"))
    graph = helper.make_graph(
        nodes, "fusion_blocks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="make_gemmfuse_fixtures")
    onnx.checker.check_model(model)
    path = OUT_DIR / "fusion_blocks.onnx"
    onnx.save(model, str(path))

    X = rng.standard_normal((N, 4, 5, 5)).astype(np.float32) * 1.5
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    scores = sess.run(None, {"x": X})[0]
    with h5py.File(OUT_DIR / "fusion_io.h5", "w") as f:
        f.create_dataset("X", data=X, track_times=False)
        f.create_dataset("scores_ort", data=scores, track_times=False)
    print(f"{path}: scores range [{scores.min():.3f}, {scores.max():.3f}]")


if __name__ == "__main__":
    main()
