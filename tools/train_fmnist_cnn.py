#!/usr/bin/env python3
"""Train the seed Fashion-MNIST CNN and export it to ONNX for cleval.

Produces (run from the repository root: ``python3 tools/train_fmnist_cnn.py``):

* ``datasets/fmnist_cnn.onnx`` -- the shipped example model (opset 13). Input "input"
  float32 [batch, 1, 28, 28] of raw pixel values 0..255 (cleval feeds the uint8 pixels of
  ``datasets/fmnist_test.h5`` converted to float32); output "logits" float32 [batch, 10],
  log-probabilities (the net ends in LogSoftmax). Input scaling lives inside the model
  (x / 255, then (x - 0.2860) / 0.3530), so the graph starts with Div, Sub, Div nodes.
* ``datasets/fmnist_cnn.json`` -- how it was made: test accuracy under PyTorch and under
  onnxruntime, epochs, seed, torch version, opset, input description, training time.
* ``tests/fixtures/onnx/fmnist_cnn_io.h5`` -- reference outputs for the C test suite:
  ``X`` float32 [256, 1, 28, 28] (the first 256 test images, raw 0..255; gzip + shuffle
  compressed), ``scores_torch`` and ``scores_ort`` float32 [256, 10] (PyTorch in eval mode,
  and onnxruntime).

The network: Conv2d(1,32,3) ReLU Conv2d(32,64,3) ReLU MaxPool2d(2) Dropout(0.25) Flatten
Linear(9216,128) ReLU Dropout(0.5) Linear(128,10) LogSoftmax, trained with AdamW on the
60,000 training images from Debian's dataset-fashion-mnist package, on the CPU with fixed
seeds and deterministic algorithms (about a minute per epoch on 2 cores). The images are
read from the Debian package directly, with the IDX reader of tools/make_datasets.py.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_datasets import load_fmnist  # noqa: E402  (same IDX reader as the datasets)

SEED = 20240601
EPOCHS = 3
BATCH = 128
LR = 1e-3
OPSET = 13
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel mean / std on the 0..1 scale

MODEL_PATH = Path("datasets/fmnist_cnn.onnx")
INFO_PATH = Path("datasets/fmnist_cnn.json")
IO_PATH = Path("tests/fixtures/onnx/fmnist_cnn_io.h5")
N_IO = 256


class FmnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = x / 255.0                   # raw pixels 0..255 -> 0..1
        x = (x - MEAN) / STD            # standardise
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def predict(model, X, batch=1000):
    """Eval-mode outputs of the model for float32 X, as a numpy array."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(X[i:i + batch]) for i in range(0, len(X), batch)]).numpy()


def train(model, X, y):
    """Train in place; returns the wall-clock seconds spent."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    shuffle = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(X), generator=shuffle)
        total_loss = 0.0
        for i in range(0, len(X), BATCH):
            idx = order[i:i + BATCH]
            optimizer.zero_grad()
            loss = F.nll_loss(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
        print(f"epoch {epoch}: loss {total_loss / len(X):.4f}, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    return time.perf_counter() - start


def export(model, path):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), str(path), dynamo=False,
                      opset_version=OPSET, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def run_ort(path, X, batch=1000):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": X[i:i + batch]})[0]
                           for i in range(0, len(X), batch)])


def main():
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based")
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    X_train, y_train = load_fmnist("train")
    X_test, y_test = load_fmnist("t10k")
    X_train = torch.from_numpy(X_train.astype(np.float32))
    X_test_np = X_test.astype(np.float32)
    X_test = torch.from_numpy(X_test_np)
    y_train = torch.from_numpy(y_train)

    model = FmnistCnn()
    seconds = train(model, X_train, y_train)

    scores_torch = predict(model, X_test)
    acc_torch = float((scores_torch.argmax(1) == y_test).mean())

    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    export(model, MODEL_PATH)
    scores_ort = run_ort(MODEL_PATH, X_test_np)
    acc_ort = float((scores_ort.argmax(1) == y_test).mean())
    max_diff = float(np.abs(scores_torch - scores_ort).max())
    print(f"test accuracy: torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f}; "
          f"max |torch - ort| {max_diff:.3g}")
    if max_diff > 1e-4:
        sys.exit(f"onnxruntime and PyTorch disagree by {max_diff} (> 1e-4)")

    info = {
        "test_accuracy_pytorch": round(acc_torch, 6),
        "test_accuracy_onnxruntime": round(acc_ort, 6),
        "epochs": EPOCHS,
        "seed": SEED,
        "torch_version": torch.__version__,
        "opset": OPSET,
        "input": "float32 [batch,1,28,28], raw pixels 0..255",
        "training_seconds": round(seconds, 1),
    }
    INFO_PATH.write_text(json.dumps(info, indent=2) + "\n")

    IO_PATH.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(IO_PATH, "w") as f:
        # Compressed (gzip + shuffle, both built into libhdf5) to keep the fixture small.
        f.create_dataset("X", data=X_test_np[:N_IO], chunks=(64, 1, 28, 28),
                         compression="gzip", compression_opts=4, shuffle=True,
                         track_times=False)
        f.create_dataset("scores_torch", data=scores_torch[:N_IO].astype(np.float32),
                         track_times=False)
        f.create_dataset("scores_ort", data=scores_ort[:N_IO].astype(np.float32),
                         track_times=False)
    for p in (MODEL_PATH, INFO_PATH, IO_PATH):
        print(f"{p}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
