#!/usr/bin/env python3
"""Rebuilds the shipped network (tools/train_fmnist_cnn.py's FmnistCnn) with the weights of
datasets/fmnist_cnn.onnx and saves it as TorchScript, so PyTorch can run the very same model
on a machine without the onnx package (the GPU check's anchor, bench/gpu_anchors.py).

    python3 tools/onnx_to_torchscript.py datasets/fmnist_cnn.onnx OUT.pt
"""
import sys

import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, "tools")
from train_fmnist_cnn import FmnistCnn  # noqa: E402


def main():
    source, target = sys.argv[1], sys.argv[2]
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in onnx.load(source).graph.initializer}
    model = FmnistCnn()
    model.load_state_dict(weights)
    example = torch.zeros(1, 1, 28, 28)
    torch.jit.save(torch.jit.trace(model.eval(), example), target)


if __name__ == "__main__":
    main()
