#!/usr/bin/env python3
"""onnxruntime's outputs for tests/test_nn_math.c, written as a C header.

Writes ``tests/fixtures/nn_math_ort.h``: one ``ort_case`` per case (the struct is defined by the
test before it includes the header), each a one-node ONNX model (its operator, attributes,
input, optional second input, opset) run through onnxruntime's CPU provider on a fixed random
input. The cases cover what the math helper added: MaxPool / AveragePool with ceil_mode (windows
clipped at the edge, a last window dropped, strides larger than the kernel, dilations, both
count_include_pad), auto_pad SAME_UPPER / SAME_LOWER / VALID on pools and Conv, and the
elementwise activations (HardSwish, HardSigmoid, Gelu both ways, Erf, Elu, Celu, Selu,
Softplus, LeakyRelu, PRelu).

Run from the repository root: ``python3 tools/make_nn_math_fixtures.py``.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

OUT = Path("tests/fixtures/nn_math_ort.h")
IR_VERSION = 8


def pool(op, x_shape, what, **attrs):
    return dict(op=op, what=what, x_shape=x_shape, attrs=attrs)


CASES = [
    pool("MaxPool", (1, 2, 8, 8), "ceil, a window clipped at the edge",
         kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    pool("MaxPool", (1, 1, 6, 5), "ceil with pads",
         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    pool("MaxPool", (1, 1, 7, 9), "ceil, last window dropped (it would start in the padding)",
         kernel_shape=[2, 3], strides=[3, 3], pads=[1, 0, 1, 2], ceil_mode=1),
    pool("MaxPool", (1, 1, 9, 9), "ceil with dilations",
         kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    pool("AveragePool", (1, 2, 6, 7), "ceil, count_include_pad=1",
         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
         count_include_pad=1),
    pool("AveragePool", (1, 2, 6, 7), "ceil, count_include_pad=0",
         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
         count_include_pad=0),
    pool("AveragePool", (1, 1, 7, 8), "ceil, stride larger than the kernel",
         kernel_shape=[2, 2], strides=[3, 3], pads=[0, 1, 0, 1], ceil_mode=1,
         count_include_pad=1),
    pool("AveragePool", (1, 2, 11), "1-D ceil, count_include_pad=1",
         kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1, count_include_pad=1),
    pool("AveragePool", (1, 2, 7, 6), "SAME_UPPER, count_include_pad=1",
         kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER", count_include_pad=1),
    pool("AveragePool", (1, 1, 5, 6), "SAME_LOWER, count_include_pad=0",
         kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
    pool("MaxPool", (1, 1, 5, 6), "SAME_LOWER",
         kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
    pool("AveragePool", (1, 1, 7, 5), "VALID",
         kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
    dict(op="Conv", what="SAME_UPPER, stride 2", x_shape=(1, 2, 7, 6), w_shape=(3, 2, 3, 3),
         attrs=dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    dict(op="Conv", what="SAME_LOWER, even kernel", x_shape=(1, 2, 5, 5), w_shape=(2, 2, 2, 2),
         attrs=dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER")),
    dict(op="Conv", what="VALID, stride 2", x_shape=(1, 2, 6, 7), w_shape=(2, 2, 3, 3),
         attrs=dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID")),
    dict(op="HardSwish", what="", x_shape=(2, 37), attrs={}),
    dict(op="HardSigmoid", what="alpha 0.3, beta 0.4", x_shape=(2, 37),
         attrs=dict(alpha=0.3, beta=0.4)),
    dict(op="Gelu", what="approximate none", x_shape=(2, 37), attrs={}, opset=20),
    dict(op="Gelu", what="approximate tanh", x_shape=(2, 37), attrs=dict(approximate="tanh"),
         opset=20),
    dict(op="Erf", what="", x_shape=(2, 37), attrs={}),
    dict(op="Elu", what="alpha 0.7", x_shape=(2, 37), attrs=dict(alpha=0.7)),
    dict(op="Celu", what="alpha 1.5", x_shape=(2, 37), attrs=dict(alpha=1.5)),
    dict(op="Selu", what="defaults", x_shape=(2, 37), attrs={}),
    dict(op="Softplus", what="", x_shape=(2, 37), attrs={}),
    dict(op="LeakyRelu", what="alpha 0.1", x_shape=(2, 37), attrs=dict(alpha=0.1)),
    dict(op="PRelu", what="slope per channel", x_shape=(2, 3, 4, 5), w_shape=(3, 1, 1),
         attrs={}),
]


def run_case(case, rng):
    x = rng.uniform(-5.0, 5.0, size=case["x_shape"]).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    names, feeds, w = ["x"], {"x": x}, None
    if "w_shape" in case:
        w = rng.uniform(-1.0, 1.0, size=case["w_shape"]).astype(np.float32)
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, w.shape))
        names.append("w")
        feeds["w"] = w
    node = helper.make_node(case["op"], names, ["y"], **case["attrs"])
    graph = helper.make_graph([node], "case", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.get("opset", 19))])
    model.ir_version = IR_VERSION
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return x, w, session.run(None, feeds)[0]


def c_float(v):
    text = f"{float(v):.9g}"
    return text + ("f" if any(c in text for c in ".e") else ".0f")


def floats(name, a):
    values = ", ".join(c_float(v) for v in a.ravel())
    return f"static const float {name}[] = {{{values}}};\n"


def dims(shape):
    return "{" + ", ".join(str(d) for d in shape) + "}"


def ints(attrs, name, fill, count):
    values = list(attrs.get(name, []))
    return "{" + ", ".join(str(v) for v in values + [fill] * (count - len(values))) + "}"


def c_string(v):
    return "NULL" if v is None else f'"{v}"'


def entry(i, case, w, y):
    a = case["attrs"]
    kernel = a.get("kernel_shape", [])
    alpha = a.get("alpha")
    beta = a.get("beta")
    fields = [
        c_string(case["op"]), c_string(case["what"]), str(case.get("opset", 19)),
        str(len(case["x_shape"])), dims(case["x_shape"]),
        str(len(case.get("w_shape", ()))), dims(case.get("w_shape", (0,))),
        str(y.ndim), dims(y.shape),
        str(len(kernel)), ints(a, "kernel_shape", 1, 3), ints(a, "strides", 1, 3),
        ints(a, "dilations", 1, 3), ints(a, "pads", 0, 6), "true" if "pads" in a else "false",
        c_string(a.get("auto_pad")), str(a.get("ceil_mode", -1)),
        str(a.get("count_include_pad", -1)),
        c_string(None if alpha is None else "alpha"), c_float(alpha or 0.0),
        c_string(None if beta is None else "beta"), c_float(beta or 0.0),
        c_string(a.get("approximate")),
        f"ORT_X_{i}", "NULL" if w is None else f"ORT_W_{i}", f"ORT_Y_{i}",
    ]
    return "    {" + ", ".join(fields) + "},\n"


def main():
    rng = np.random.default_rng(2026)
    arrays, entries = [], []
    for i, case in enumerate(CASES):
        x, w, y = run_case(case, rng)
        arrays.append(floats(f"ORT_X_{i}", x))
        if w is not None:
            arrays.append(floats(f"ORT_W_{i}", w))
        arrays.append(floats(f"ORT_Y_{i}", y))
        entries.append(entry(i, case, w, y))
    text = ("/* Generated by tools/make_nn_math_fixtures.py with onnxruntime "
            f"{ort.__version__}: one-node models\n * and their outputs; "
            "ort_case is defined by tests/test_nn_math.c. */\n")
    text += "".join(arrays)
    text += "static const ort_case ORT_CASES[] = {\n" + "".join(entries) + "};\n"
    OUT.write_text(text)
    print(f"{OUT}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
