#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu_perf.sh, on the same GPU and the same files as cleval:

* the shipped CNN (datasets/fmnist_cnn.onnx's weights, exported by the script's staging step
  as .npz because the GPU image has no onnx package) device-only, timed with CUDA events over
  batches already on the GPU, with TF32 off and on;
* the same network end to end from each HDF5 file through h5py (read, copy, run, argmax back
  on the host), as `cleval eval` reads it;
* brute-force KNN on the full Fashion-MNIST (cdist + topk + vote, k=5), TF32 off and on;
* a confusion matrix of 5 x 10^7 pairs by bincount.

    python3 bench/gpu_perf_torch.py WEIGHTS.npz TRAIN.h5 TEST.h5 [BIG.h5 ...] > torch.json

Prints one JSON object (device times: medians of 5 after a warm-up; end to end: one pass after
the device runs warmed everything up). Needs torch with CUDA, numpy and h5py; without h5py
the object holds only a "skipped" note.
"""
import json
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530  # tools/train_fmnist_cnn.py: the standardisation in the network
BATCH = 1024


def cnn(weights, dev):
    """FmnistCnn's forward pass (tools/train_fmnist_cnn.py) over the ONNX file's weights."""
    w = {k: torch.from_numpy(v).to(dev) for k, v in weights.items()}

    def forward(x):
        x = (x / 255.0 - MEAN) / STD
        x = F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"]))
        x = F.relu(F.conv2d(x, w["conv2.weight"], w["conv2.bias"]))
        x = torch.flatten(F.max_pool2d(x, 2), 1)
        x = F.relu(F.linear(x, w["fc1.weight"], w["fc1.bias"]))
        return F.log_softmax(F.linear(x, w["fc2.weight"], w["fc2.bias"]), dim=1)
    return forward


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def device_seconds(fn, repeat=5):
    """Median device time of fn() between two CUDA events, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def wall_seconds(fn, repeat=3):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    weights_path, train_path, test_path, *big_paths = sys.argv[1:]
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    try:
        import h5py
    except ImportError:
        out["skipped"] = "h5py is not importable (the staged wheel did not install)"
        print(json.dumps(out, indent=1))
        return
    forward = cnn(dict(np.load(weights_path)), dev)

    def load(path, key):
        with h5py.File(path, "r") as f:
            return f[key][...]
    test_x = torch.from_numpy(load(test_path, "X").astype(np.float32)).to(dev)
    test_y = torch.from_numpy(load(test_path, "y").astype(np.int64)).to(dev)

    with torch.inference_mode():
        def run_all():
            return torch.cat([forward(test_x[i:i + BATCH]).argmax(1)
                              for i in range(0, len(test_x), BATCH)])
        for tf32 in (False, True):
            set_tf32(tf32)
            s = device_seconds(run_all)
            tag = "tf32" if tf32 else "fp32"
            out[f"cnn_device_images_per_s_{tag}"] = len(test_x) / s
            out[f"cnn_accuracy_{tag}"] = (run_all() == test_y).double().mean().item()
        set_tf32(False)

        def end_to_end(path):
            """Read, copy and run the whole file in batches, as `cleval eval` does."""
            correct = n = 0
            with h5py.File(path, "r") as f:
                X, y = f["X"], f["y"]
                for i in range(0, X.shape[0], BATCH * 8):
                    xb = torch.from_numpy(X[i:i + BATCH * 8]).to(dev, non_blocking=True).float()
                    pred = torch.cat([forward(xb[j:j + BATCH]).argmax(1)
                                      for j in range(0, len(xb), BATCH)]).cpu().numpy()
                    correct += int((pred == y[i:i + len(pred)]).sum())
                    n += len(pred)
            return n, correct / n
        for path in [test_path] + big_paths:
            t0 = time.perf_counter()
            n, accuracy = end_to_end(path)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            out.setdefault("cnn_end_to_end", []).append(
                {"file": path, "samples": n, "seconds": seconds, "images_per_s": n / seconds,
                 "accuracy": accuracy})

        train = torch.from_numpy(load(train_path, "X").reshape(-1, 784).astype(np.float32) / 255)
        train = train.to(dev)
        train_y = torch.from_numpy(load(train_path, "y").astype(np.int64)).to(dev)
        queries = test_x.reshape(-1, 784) / 255

        def knn():
            votes = []
            for i in range(0, len(queries), 2000):
                idx = torch.cdist(queries[i:i + 2000], train).topk(5, largest=False).indices
                counts = torch.zeros(idx.shape[0], 10, device=dev).scatter_add_(
                    1, train_y[idx], torch.ones(idx.shape, device=dev))
                votes.append(counts.argmax(1))
            return torch.cat(votes)
        for tf32 in (False, True):
            set_tf32(tf32)
            tag = "tf32" if tf32 else "fp32"
            out[f"knn_device_s_{tag}"] = device_seconds(knn)
            out[f"knn_accuracy_{tag}"] = (knn() == test_y).double().mean().item()
        set_tf32(False)

        pairs = 50_000_000
        g = torch.Generator(device=dev).manual_seed(0)
        y = torch.randint(0, 10, (pairs,), device=dev, generator=g)
        pred = torch.where(torch.rand(pairs, device=dev, generator=g) < 0.7, y,
                           torch.randint(0, 10, (pairs,), device=dev, generator=g))
        out["bincount_pairs"] = pairs
        out["bincount_device_s"] = device_seconds(lambda: torch.bincount(y * 10 + pred,
                                                                          minlength=100))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
