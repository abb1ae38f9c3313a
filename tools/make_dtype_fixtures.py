#!/usr/bin/env python3
"""Generate the fixtures of cleval's element-type tests: models exported by torch.onnx.export
whose inputs are not float, with onnxruntime's outputs.

Run from the repository root: ``python3 tools/make_dtype_fixtures.py``. Writes to
``tests/fixtures/dtype/``; the C tests never run Python, so the outputs are committed.

* ``embed_linear.onnx`` (opset 17) a text classifier: int64 token ids [N, 6] ->
  nn.Embedding(50, 8) -> flatten -> Linear(48, 4). Exported ops: Gather (runtime indices),
  Flatten, Gemm.
* ``uint8_prep.onnx`` (opset 17) an image classifier with its preprocessing inside: uint8
  [N, 3, 6, 5] -> float() -> / 255 -> (x - mean) / std -> Conv(3, 4, 3) -> ReLU -> flatten ->
  Linear(48, 3). Exported ops: Cast, Div, Sub, Conv, Relu, Flatten, Gemm.

Each comes with ``<name>_data.h5``: ``X`` (int64 ids [37, 6], uint8 images [37, 3, 6, 5];
37 samples: a partial last batch at any batch size that matters), ``y`` int64 labels, and
``scores_ort`` float32 [37, classes] (onnxruntime on X).
"""
import os

import h5py
import numpy as np
import onnxruntime as ort
import torch
from torch import nn

OUT = os.path.join("tests", "fixtures", "dtype")
N = 37


class EmbedLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.fc = nn.Linear(48, 4)

    def forward(self, ids):
        return self.fc(torch.flatten(self.embed(ids), 1))


class Uint8Prep(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(48, 3)

    def forward(self, x):
        x = (x.float() / 255.0 - self.mean) / self.std
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def export(model, example, name, x, classes, rng):
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, (example,), path, opset_version=17, input_names=["x"],
                      output_names=["scores"], dynamic_axes={"x": {0: "N"}, "scores": {0: "N"}},
                      dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    scores = session.run(None, {"x": x})[0].astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    assert np.abs(scores - reference).max() < 1e-5
    with h5py.File(os.path.join(OUT, name + "_data.h5"), "w") as f:
        f.create_dataset("X", data=x)
        f.create_dataset("y", data=rng.integers(0, classes, N).astype(np.int64))
        f.create_dataset("scores_ort", data=scores)
    print(path, x.dtype, x.shape, scores.shape)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (N, 6)).astype(np.int64)
    export(EmbedLinear().eval(), torch.from_numpy(ids[:2]), "embed_linear", ids, 4, rng)
    images = rng.integers(0, 256, (N, 3, 6, 5)).astype(np.uint8)
    export(Uint8Prep().eval(), torch.from_numpy(images[:2]), "uint8_prep", images, 3, rng)


if __name__ == "__main__":
    main()
