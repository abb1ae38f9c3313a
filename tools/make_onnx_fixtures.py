#!/usr/bin/env python3
"""Generate the small ONNX test fixtures that cleval's C test suite loads.

Run from the repository root: ``python3 tools/make_onnx_fixtures.py``. Writes to
``tests/fixtures/onnx/``; the C tests never run Python, so the outputs are committed.

Good models, each ``<name>.onnx`` plus ``<name>_io.h5`` holding ``X`` float32 [7, ...]
(seeded random inputs; 7 is prime, so every batch size from 2 to 6 leaves a partial
last batch),
``scores_torch`` and ``scores_ort`` float32 [7, out] (PyTorch in eval mode, and
onnxruntime; they are checked to agree within 1e-5). Each model exercises a different
part of the engine's operator set:

* ``mlp_softmax``    (opset 11) Flatten, Gemm, Relu, Tanh, Softmax.
* ``lenet_bn``       (opset 13) Conv, BatchNormalization, Relu, AveragePool, Sigmoid,
                     GlobalAveragePool, Flatten, Gemm. Exported with
                     TrainingMode.PRESERVE so BatchNormalization stays a node of its own
                     (the default eval export folds it into the preceding Conv), with
                     random running statistics and affine parameters.
* ``norm_subdiv``    (opset 9)  Sub/Div against per-channel [2,1,1] constants
                     (broadcasting), Conv, Relu, Flatten, Gemm, LogSoftmax.
* ``conv_strided``   (opset 17) Conv with stride 2 and with stride (2,1) + dilation 2.
* ``conv_padded``    (opset 11) Conv with padding, Conv without bias, Clip (min/max as
                     Constant inputs), Pad (asymmetric, fill 0.25), AveragePool, MaxPool
                     with padding (padded with -inf). The Pad comes from F.pad through
                     pad_symbolic below, so it is one node with constant pads.
* ``conv_depthwise`` (opset 13) depthwise Conv (group=4), pointwise 1x1 Conv.
* ``gemm_matmul``    (opset 13) Gemm (transB), MatMul with a constant weight, Mul/Add
                     against constant row vectors, Reshape to 3-D and back, LogSoftmax.
* ``gemm_attrs``     (opset 13) built with onnx.helper, not torch: one Gemm with
                     alpha=0.5, beta=2.0, transB=1 and a bias C of shape [out], then
                     Sigmoid. ``scores_torch`` here is a NumPy computation.

Bad inputs (no _io.h5), for the error paths (exit 2):

* ``truncated.onnx``        the first half of the bytes of mlp_softmax.onnx.
* ``not_onnx.onnx``         a few lines of plain text.
* ``unsupported_op.onnx``   valid ONNX with a ``Hardmax`` node named "hardmax_node" between
                            a Gemm and the output.
* ``unsupported_attr.onnx`` valid ONNX with a Conv node named "conv_autopad" that uses
                            auto_pad="SAME_UPPER" with dilations of 2 (runtimes disagree
                            on those pads).

Everything is deterministic: each model is built after torch.manual_seed(<its own seed>)
and its inputs come from a NumPy generator with a fixed seed.
"""

import warnings
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch.onnx import register_custom_op_symbolic
from torch.onnx.symbolic_helper import parse_args

OUT_DIR = Path("tests/fixtures/onnx")
N = 7            # samples per fixture: prime, so batches of 2..6 leave a partial one
TOLERANCE = 1e-5
IR_VERSION = 8   # for the onnx.helper models: old enough for any onnxruntime of recent years


# --------------------------------------------------------------------------- models


class MlpSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(20, 32), nn.ReLU(),
            nn.Linear(32, 16), nn.Tanh(),
            nn.Linear(16, 5), nn.Softmax(dim=1))

    def forward(self, x):
        return self.net(x)


def randomize_batchnorm(bn):
    """Give a BatchNorm layer non-trivial statistics and affine parameters."""
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c) * 0.5)
        bn.running_var.copy_(torch.rand(c) * 1.5 + 0.5)     # 0.5 .. 2.0
        bn.weight.copy_(torch.rand(c) + 0.5)                # 0.5 .. 1.5
        bn.bias.copy_(torch.randn(c) * 0.3)


class LenetBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.BatchNorm2d(6), nn.ReLU(),       # 20x20 -> 16x16
            nn.AvgPool2d(2),                                        # -> 8x8
            nn.Conv2d(6, 16, 3), nn.BatchNorm2d(16), nn.Sigmoid(),  # -> 6x6
            nn.AdaptiveAvgPool2d(1),                                # -> 1x1 (GlobalAveragePool)
            nn.Flatten(),
            nn.Linear(16, 4))
        for m in self.net:
            if isinstance(m, nn.BatchNorm2d):
                randomize_batchnorm(m)

    def forward(self, x):
        return self.net(x)


class NormSubDiv(nn.Module):
    """Per-channel standardisation inside the model, as exported models often do."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([120.0, 60.0]).reshape(2, 1, 1))
        self.register_buffer("std", torch.tensor([50.0, 25.0]).reshape(2, 1, 1))
        self.conv = nn.Conv2d(2, 4, 3)                              # 9x9 -> 7x7
        self.fc = nn.Linear(4 * 7 * 7, 5)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.relu(self.conv(x))
        x = torch.flatten(x, 1)
        return F.log_softmax(self.fc(x), dim=1)


class ConvStrided(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(),                # 17x15 -> 8x7
            nn.Conv2d(8, 4, 3, stride=(2, 1), dilation=2),          # -> 2x3
            nn.Flatten(),
            nn.Linear(4 * 2 * 3, 6))

    def forward(self, x):
        return self.net(x)


class ConvPadded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 5, 3, padding=1)                  # 11x11 -> 11x11
        self.conv2 = nn.Conv2d(5, 5, 5, padding=2, bias=False)      # -> 11x11
        self.avgpool = nn.AvgPool2d(3, stride=2)                    # 12x14 -> 5x6
        self.maxpool = nn.MaxPool2d(2, stride=1, padding=1)         # -> 6x7
        self.fc = nn.Linear(5 * 6 * 7, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = torch.clamp(self.conv2(x), min=-0.5, max=0.5)
        # An explicit Pad node. Asymmetric pads (left 1, right 2, top 0, bottom 1) and a
        # non-zero fill value, so that mixing up begin/end, H/W or ignoring the
        # constant_value input shows up in the outputs. 11x11 -> 12x14.
        x = F.pad(x, (1, 2, 0, 1), value=0.25)
        x = self.maxpool(self.avgpool(x))
        return self.fc(torch.flatten(x, 1))


@parse_args("v", "is", "s", "f")
def pad_symbolic(g, x, pad, mode, value):
    """aten::pad -> one ONNX Pad with constant pads, for 4-D constant padding.

    torch's own opset-11 symbolic computes the pads with a Slice(steps=-1) chain that its
    constant folding cannot fold, leaving ~15 shape-arithmetic nodes in front of the Pad.
    """
    assert mode == "constant" and len(pad) <= 8
    # torch lists (begin, end) pairs from the last axis backwards; ONNX wants all the
    # begins, then all the ends, from axis 0 forwards.
    pairs = [(0, 0)] * (4 - len(pad) // 2) + [(pad[i], pad[i + 1])
                                               for i in reversed(range(0, len(pad), 2))]
    pads = [b for b, _ in pairs] + [e for _, e in pairs]
    return g.op("Pad", x, g.op("Constant", value_t=torch.tensor(pads, dtype=torch.int64)),
                g.op("Constant", value_t=torch.tensor(value, dtype=torch.float32)),
                mode_s="constant")


class ConvDepthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, 4, 3, groups=4, padding=1), nn.ReLU(),     # depthwise, 8x8
            nn.Conv2d(4, 8, 1),                                     # pointwise
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, 5))

    def forward(self, x):
        return self.net(x)


class GemmMatmul(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(24, 24)                                # Gemm, transB=1
        self.register_buffer("w", torch.randn(24, 24) / 24 ** 0.5)  # MatMul weight
        self.register_buffer("scale", torch.rand(24) + 0.5)         # Mul row vector
        self.register_buffer("shift", torch.randn(24) * 0.1)        # Add row vector
        self.fc2 = nn.Linear(24, 6)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.matmul(x, self.w)
        x = x * self.scale + self.shift
        x = x.reshape(-1, 4, 6)
        x = x.reshape(-1, 24)
        return F.log_softmax(self.fc2(x), dim=1)


# (name, model class, per-sample input shape, opset, input range, torch seed)
TORCH_MODELS = [
    ("mlp_softmax", MlpSoftmax, (20,), 11, (-2.0, 2.0), 101),
    ("lenet_bn", LenetBn, (3, 20, 20), 13, (-1.0, 1.0), 102),
    ("norm_subdiv", NormSubDiv, (2, 9, 9), 9, (0.0, 255.0), 103),
    ("conv_strided", ConvStrided, (3, 17, 15), 17, (-1.0, 1.0), 104),
    ("conv_padded", ConvPadded, (2, 11, 11), 11, (-1.0, 1.0), 105),
    ("conv_depthwise", ConvDepthwise, (4, 8, 8), 13, (-1.0, 1.0), 106),
    ("gemm_matmul", GemmMatmul, (24,), 13, (-2.0, 2.0), 107),
]


# --------------------------------------------------------------------------- helpers


def random_inputs(shape, low, high, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(N, *shape)).astype(np.float32)


def run_ort(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


def write_io(name, X, scores_torch, scores_ort):
    """Write <name>_io.h5 after checking the two references agree; return the max diff."""
    diff = float(np.abs(scores_torch.astype(np.float64) - scores_ort).max())
    if diff > TOLERANCE:
        raise SystemExit(f"{name}: PyTorch and onnxruntime differ by {diff} (> {TOLERANCE})")
    with h5py.File(OUT_DIR / f"{name}_io.h5", "w") as f:
        f.create_dataset("X", data=X.astype(np.float32), track_times=False)
        f.create_dataset("scores_torch", data=scores_torch.astype(np.float32),
                         track_times=False)
        f.create_dataset("scores_ort", data=scores_ort.astype(np.float32), track_times=False)
    return diff


def describe(name, path, diff=None):
    model = onnx.load(str(path))
    ops = " ".join(node.op_type for node in model.graph.node)
    extra = "" if diff is None else f", max |torch - ort| {diff:.2e}"
    print(f"{name}: opset {model.opset_import[0].version}, {path.stat().st_size} bytes{extra}")
    print(f"    {ops}")


def save_helper_model(graph, path, opset=13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="cleval make_onnx_fixtures.py")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def const(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


# --------------------------------------------------------------------------- fixtures


def make_torch_fixture(name, cls, shape, opset, value_range, seed):
    torch.manual_seed(seed)
    model = cls().eval()
    X = random_inputs(shape, *value_range, seed=seed)
    with torch.no_grad():
        scores_torch = model(torch.from_numpy(X)).numpy()

    # The default (EVAL) export folds each BatchNormalization into the Conv before it;
    # PRESERVE keeps it as a node of its own (still inference BN: the model is in eval mode).
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    training = torch.onnx.TrainingMode.PRESERVE if has_bn else torch.onnx.TrainingMode.EVAL

    path = OUT_DIR / f"{name}.onnx"
    torch.onnx.export(
        model, torch.from_numpy(X[:1]), str(path), dynamo=False, opset_version=opset,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, training=training)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    describe(name, path, write_io(name, X, scores_torch, run_ort(path, X)))


def make_gemm_attrs():
    """Gemm(input [n,K], B [out,K], C [out], transB=1, alpha=0.5, beta=2) -> Sigmoid."""
    name, k, out = "gemm_attrs", 10, 4
    rng = np.random.default_rng(108)
    B = rng.normal(0.0, 0.5, size=(out, k)).astype(np.float32)
    C = rng.normal(0.0, 0.5, size=(out,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "B", "C"], ["gemm_out"], name="gemm",
                          alpha=0.5, beta=2.0, transA=0, transB=1),
         helper.make_node("Sigmoid", ["gemm_out"], ["output"], name="sigmoid")],
        "gemm_attrs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out])],
        initializer=[const("B", B), const("C", C)])
    path = OUT_DIR / f"{name}.onnx"
    save_helper_model(graph, path)

    X = rng.uniform(-2.0, 2.0, size=(N, k)).astype(np.float32)
    z = 0.5 * (X.astype(np.float64) @ B.T.astype(np.float64)) + 2.0 * C
    scores_numpy = 1.0 / (1.0 + np.exp(-z))
    describe(name, path, write_io(name, X, scores_numpy, run_ort(path, X)))


def make_unsupported_op():
    """Gemm -> Hardmax ("hardmax_node") -> output: valid ONNX that cleval does not implement."""
    rng = np.random.default_rng(109)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "W", "b"], ["gemm_out"], name="gemm", transB=1),
         helper.make_node("Hardmax", ["gemm_out"], ["output"], name="hardmax_node")],
        "unsupported_op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
        initializer=[const("W", rng.normal(size=(3, 8))), const("b", rng.normal(size=3))])
    path = OUT_DIR / "unsupported_op.onnx"
    save_helper_model(graph, path)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # it is valid
    describe("unsupported_op", path)


def make_unsupported_attr():
    """Conv "conv_autopad" with auto_pad="SAME_UPPER", dilations 2 -> Flatten -> Gemm -> output."""
    rng = np.random.default_rng(110)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv_out"],
                          name="conv_autopad", kernel_shape=[3, 3], strides=[2, 2],
                          dilations=[2, 2], auto_pad="SAME_UPPER"),  # [n,2,3,3]
         helper.make_node("Flatten", ["conv_out"], ["flat"], name="flatten", axis=1),
         helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], name="fc",
                          transB=1)],
        "unsupported_attr",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
        initializer=[const("conv_w", rng.normal(size=(2, 1, 3, 3))),
                     const("conv_b", rng.normal(size=2)),
                     const("fc_w", rng.normal(size=(3, 18))),
                     const("fc_b", rng.normal(size=3))])
    path = OUT_DIR / "unsupported_attr.onnx"
    save_helper_model(graph, path)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # it is valid
    describe("unsupported_attr", path)


def make_bad_files():
    data = (OUT_DIR / "mlp_softmax.onnx").read_bytes()
    (OUT_DIR / "truncated.onnx").write_bytes(data[:len(data) // 2])
    (OUT_DIR / "not_onnx.onnx").write_text(
        "This is not an ONNX model.\n"
        "It is a plain text file with an .onnx name,\n"
        "for testing that cleval refuses it with exit code 2.\n")
    for name in ("truncated", "not_onnx"):
        path = OUT_DIR / f"{name}.onnx"
        print(f"{name}: {path.stat().st_size} bytes")


def main():
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based")
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    register_custom_op_symbolic("aten::pad", pad_symbolic, 11)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for spec in TORCH_MODELS:
        make_torch_fixture(*spec)
    make_gemm_attrs()
    make_unsupported_op()
    make_unsupported_attr()
    make_bad_files()


if __name__ == "__main__":
    main()
