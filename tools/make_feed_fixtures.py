#!/usr/bin/env python3
"""Generate the fixtures of cleval's sample-type test of the device data path
(tests/test_cli_feed.c): one small float classifier and the same kind of samples stored in every
element type a dataset may hold, with numpy's scores for each.

Run from the repository root: ``python3 tools/make_feed_fixtures.py``. Writes to
``tests/fixtures/feed/``; the C tests never run Python, so the outputs are committed.

* ``gemm.onnx`` (opset 17): float input [N, 2, 3, 3] -> Flatten -> Gemm(18 -> 4).
* ``data.h5``: ``y`` int32 [37] and, for each type T of uint8, int8, uint16, int16, int32
  (values beyond 16 bits), int32_small (values that fit int16), float16, float32 and float64,
  ``X_T`` [37, 2, 3, 3] of random values spanning the type, and ``scores_T`` float64 [37, 4]:
  numpy's Gemm (float64) over the samples preprocessed as the command line of the test asks
  (--input-scale 0.01 --input-mean 0.5,-0.25 --input-std 2,0.5): each value read as float32,
  then (x * scale - mean[c]) / std[c] in float32, c the channel (axis 1); and ``bound_T``
  [37, 4], the sum of |term| of each score (|x_k w_k| over k, plus |b|), which the test's
  tolerance scales with (float32 accumulation, cancelling terms).

37 samples: the test runs batches of 5, so several are in flight and the last one is partial.
"""
import os

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join("tests", "fixtures", "feed")
N, C, H, W, CLASSES = 37, 2, 3, 3, 4
SCALE = np.float32(0.01)
MEAN = np.array([0.5, -0.25], dtype=np.float32)
STD = np.array([2.0, 0.5], dtype=np.float32)


def samples(rng, kind):
    shape = (N, C, H, W)
    if kind == "int32":
        return rng.integers(-2_000_000, 2_000_000, shape, dtype=np.int32)
    if kind == "int32_small":
        return rng.integers(-30_000, 30_000, shape, dtype=np.int32)
    if kind.startswith("float"):
        return (rng.standard_normal(shape) * 300).astype(kind)
    info = np.iinfo(kind)
    return rng.integers(info.min, info.max, shape, dtype=kind, endpoint=True)


def main():
    rng = np.random.default_rng(20261207)
    weight = (rng.standard_normal((CLASSES, C * H * W)) * 0.3).astype(np.float32)
    bias = (rng.standard_normal(CLASSES) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1)],
        "feed_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CLASSES])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    os.makedirs(OUT, exist_ok=True)
    onnx.save(model, os.path.join(OUT, "gemm.onnx"))

    with h5py.File(os.path.join(OUT, "data.h5"), "w") as f:
        f.create_dataset("y", data=rng.integers(0, CLASSES, N, dtype=np.int32))
        for kind in ["uint8", "int8", "uint16", "int16", "int32", "int32_small", "float16",
                     "float32", "float64"]:
            x = samples(rng, kind)
            as_float = x.astype(np.float32)
            prepped = (as_float * SCALE - MEAN[None, :, None, None]) / STD[None, :, None, None]
            assert prepped.dtype == np.float32
            scores = prepped.reshape(N, -1).astype(np.float64) @ weight.T.astype(np.float64)
            scores += bias.astype(np.float64)
            f.create_dataset(f"X_{kind}", data=x)
            f.create_dataset(f"scores_{kind}", data=scores)
            bound = np.abs(prepped.reshape(N, -1).astype(np.float64)) @ np.abs(weight.T)
            f.create_dataset(f"bound_{kind}", data=bound + np.abs(bias))


if __name__ == "__main__":
    main()
