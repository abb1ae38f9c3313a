#!/usr/bin/env python3
"""Generate the LayerNorm fixtures of tests/test_nn_reduce.c.

Run from the repository root: ``python3 tools/make_layernorm_fixtures.py``. Writes to
``tests/fixtures/onnx/``; the C tests never run Python, so the outputs are committed.

One small classifier, exported by ``torch.onnx.export`` twice:

* ``layernorm_13.onnx``  opset 13, where torch writes nn.LayerNorm decomposed (ReduceMean,
                         Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add), which cleval fuses
                         back into one LayerNormalization;
* ``layernorm_17.onnx``  opset 17, with LayerNormalization nodes.

The model: x [N, 4, 11] -> LayerNorm(11) (random gamma and beta) -> LayerNorm((4, 11))
without affine parameters -> Flatten -> Linear(44, 5). ``layernorm_io.h5`` holds ``X``
float32 [7, 4, 11] (seeded, scaled and shifted so the rows' means and spreads differ),
``scores_torch`` (PyTorch in eval mode) and ``scores_ort_13`` / ``scores_ort_17``
(onnxruntime on each export), checked to agree within 1e-5.
"""

import warnings
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

OUT_DIR = Path("tests/fixtures/onnx")
N = 7
TOLERANCE = 1e-5


class LayerNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_last = nn.LayerNorm(11)
        self.ln_two = nn.LayerNorm((4, 11), elementwise_affine=False)
        self.fc = nn.Linear(44, 5)
        with torch.no_grad():
            self.ln_last.weight.copy_(torch.rand(11) + 0.5)
            self.ln_last.bias.copy_(torch.randn(11) * 0.3)

    def forward(self, x):
        return self.fc(torch.flatten(self.ln_two(self.ln_last(x)), 1))


def main():
    warnings.filterwarnings("ignore")
    torch.manual_seed(7)
    model = LayerNormNet().eval()
    rng = np.random.default_rng(7)
    X = (rng.standard_normal((N, 4, 11)) * rng.uniform(0.1, 5.0, (N, 4, 1))
         + rng.uniform(-3.0, 3.0, (N, 4, 1))).astype(np.float32)
    with torch.no_grad():
        scores_torch = model(torch.from_numpy(X)).numpy()
    with h5py.File(OUT_DIR / "layernorm_io.h5", "w") as f:
        f.create_dataset("X", data=X, track_times=False)
        f.create_dataset("scores_torch", data=scores_torch, track_times=False)
        for opset in (13, 17):
            path = OUT_DIR / f"layernorm_{opset}.onnx"
            torch.onnx.export(model, torch.from_numpy(X[:1]), str(path), input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                              opset_version=opset, dynamo=False)
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            scores_ort = sess.run(None, {"x": X})[0]
            diff = float(np.abs(scores_ort.astype(np.float64) - scores_torch).max())
            if diff > TOLERANCE:
                raise SystemExit(f"opset {opset}: PyTorch and onnxruntime differ by {diff}")
            f.create_dataset(f"scores_ort_{opset}", data=scores_ort, track_times=False)
            print(f"{path}: onnxruntime vs PyTorch {diff:.2e}")


if __name__ == "__main__":
    main()
