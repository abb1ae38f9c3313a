#!/usr/bin/env python3
"""What PyTorch does on the same GPU, for scripts/gpu_check.sh: the shipped CNN over the
Fashion-MNIST test set (TorchScript, fp32, inference mode), brute-force KNN (cdist + topk +
vote) on the full Fashion-MNIST, and a confusion matrix by bincount. Needs only torch and
numpy (the GPU image has no h5py): the data comes from Debian's IDX files and the model from a
TorchScript file made by scripts/gpu_stage.sh.

    python3 bench/gpu_anchors.py DATA_DIR MODEL.pt [--pairs 50000000]

Prints one JSON object of timings (medians of 5 after a warm-up).
"""
import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import torch


def read_idx(folder, name):
    with gzip.open(os.path.join(folder, name)) as f:
        data = f.read()
    if "images" in name:
        return np.frombuffer(data[16:], dtype=np.uint8).reshape(-1, 1, 28, 28)
    return np.frombuffer(data[8:], dtype=np.uint8)


def median_time(fn, repeat=5):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("model")
    parser.add_argument("--pairs", type=int, default=50_000_000)
    args = parser.parse_args()
    dev = torch.device("cuda")
    result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}

    test = torch.from_numpy(read_idx(args.data, "t10k-images-idx3-ubyte.gz").astype(np.float32))
    labels = torch.from_numpy(read_idx(args.data, "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    model = torch.jit.load(args.model, map_location=dev).eval()
    with torch.inference_mode():
        for batch in (256, 1024):
            def run():
                preds = []
                for start in range(0, len(test), batch):
                    x = test[start:start + batch].to(dev, non_blocking=True)
                    preds.append(model(x).argmax(1))
                return torch.cat(preds)
            seconds = median_time(run)
            accuracy = (run().cpu() == labels).double().mean().item()
            result[f"cnn_images_per_s_batch{batch}"] = len(test) / seconds
            result["cnn_accuracy"] = accuracy

    train = torch.from_numpy(read_idx(args.data, "train-images-idx3-ubyte.gz")
                             .reshape(-1, 784).astype(np.float32) / 255).to(dev)
    train_labels = torch.from_numpy(read_idx(args.data, "train-labels-idx1-ubyte.gz")
                                    .astype(np.int64)).to(dev)
    queries = (test.reshape(-1, 784) / 255).to(dev)

    def knn():
        votes = []
        for start in range(0, len(queries), 2000):
            d = torch.cdist(queries[start:start + 2000], train)
            idx = d.topk(5, largest=False).indices
            counts = torch.zeros(idx.shape[0], 10, device=dev).scatter_add_(
                1, train_labels[idx], torch.ones(idx.shape, device=dev))
            votes.append(counts.argmax(1))
        return torch.cat(votes)
    result["knn_seconds"] = median_time(knn)
    result["knn_accuracy"] = (knn().cpu() == labels).double().mean().item()

    generator = torch.Generator(device=dev).manual_seed(0)
    y = torch.randint(0, 10, (args.pairs,), device=dev, generator=generator)
    pred = torch.where(torch.rand(args.pairs, device=dev, generator=generator) < 0.7, y,
                       torch.randint(0, 10, (args.pairs,), device=dev, generator=generator))
    result["bincount_seconds"] = median_time(lambda: torch.bincount(y * 10 + pred, minlength=100))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
