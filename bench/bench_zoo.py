#!/usr/bin/env python3
"""The full-size torchvision models of the acceptance list through cleval, onnxruntime and
OpenVINO, on the same samples.

Each model (torchvision's own class at its standard input size, 1000 classes, weights
perturbed and BatchNorm statistics measured as tools/make_zoo_fixtures.py does, so that no two
tensors are equal, as in trained weights) is exported with
``torch.onnx.export(..., dynamo=False)`` at opsets 13 and 17 (14 where 13 cannot express the
model, i.e. ViT's attention), and at 21 for resnet18, mobilenet_v2, efficientnet_b0 and
vit_b_16 (onnx.version_converter, or the dynamo exporter when that fails). Every file then
runs on the same N seeded samples through:

* cleval       ``cleval eval --save`` (scores from the prediction file); images/s over the
               run without loading the model (the JSON report's total_s - load_model_s);
* onnxruntime  CPU execution provider, the reference for agreement;
* OpenVINO     CPU plugin with f32 inference precision, when ``import openvino`` works
               (``pip install openvino``); skipped with a note otherwise;

each with 2 threads, in batches of ``--batch`` after one warm-up batch. Per model and opset it
prints whether cleval runs it (or its refusal line), the agreement with onnxruntime as
tests/test_nn_zoo.c measures it (samples whose scores are all within 1e-3 x the sample's
largest |score|, argmax equal where onnxruntime's top two are further apart than that), the
largest difference relative to that scale, images/s of each tool and cleval's ratios.

    python3 bench/bench_zoo.py [--models resnet18,vit_b_16] [--samples 64] [--batch 16]
                               [--cache /tmp/cleval_zoo_bench] [--build build]

Exports and sample files are kept in the cache folder and reused. Every model at every opset
takes many minutes on 2 cores: pick models with --models.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
THREADS = 2
TOLERANCE = 1e-3
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
          "efficientnet_b0", "squeezenet1_1", "shufflenet_v2_x1_0", "densenet121", "googlenet",
          "inception_v3", "regnet_y_400mf", "mnasnet0_5", "convnext_tiny", "vit_b_16", "swin_t",
          "alexnet", "vgg16"]
CONVERTED = ("resnet18", "mobilenet_v2", "efficientnet_b0", "vit_b_16")
SIZES = {"inception_v3": 299}


# ---- models and samples ----


def build_model(name):
    import torchvision
    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet",
                                                                     "inception_v3") else {}
    return getattr(torchvision.models, name)(**kwargs).eval()


def image_maker(size):
    return lambda rng: rng.standard_normal((4, 3, size, size), dtype=np.float32)


def export_model(name, cache):
    """The model's ONNX files [(opset, path)], exported into the cache unless already there."""
    import torch
    from make_zoo_fixtures import convert, export_first_working, perturb
    wanted = [13, 17] + ([21] if name in CONVERTED else [])
    found = {int(p.stem.rsplit("_", 1)[1]): p for p in cache.glob(f"{name}_[0-9]*.onnx")}
    if all(o in found or (o == 13 and 14 in found) for o in wanted):
        return sorted(found.items())
    size = SIZES.get(name, 224)
    torch.manual_seed(0)
    model = build_model(name)
    perturb(model, image_maker(size), 0)
    x = torch.from_numpy(image_maker(size)(np.random.default_rng(1))[:2])
    files = []
    for opset in (13, 17):
        got = export_first_working(model, x, cache / f"{name}_{opset}.onnx", opset)
        if got != opset:
            (cache / f"{name}_{opset}.onnx").rename(cache / f"{name}_{got}.onnx")
        files.append((got, cache / f"{name}_{got}.onnx"))
    if name in CONVERTED:
        convert(model, x, cache / f"{name}_17.onnx", cache / f"{name}_21.onnx", 21)
        files.append((21, cache / f"{name}_21.onnx"))
    return files


def sample_file(name, samples, cache):
    """N seeded standard-normal images at the model's size (what a normalised image holds)."""
    size = SIZES.get(name, 224)
    path = cache / f"samples_{size}_{samples}.h5"
    if not path.exists():
        x = np.random.default_rng(7).standard_normal((samples, 3, size, size), dtype=np.float32)
        with h5py.File(path, "w") as h:
            h["X"] = x
    with h5py.File(path, "r") as h:
        return path, h["X"][:]


# ---- the three runtimes ----


def timed_batches(run, x, batch):
    """(scores of all samples, images/s) after one warm-up batch."""
    run(x[:batch])
    start = time.perf_counter()
    scores = np.concatenate([run(x[i:i + batch]) for i in range(0, len(x), batch)])
    return scores, len(x) / (time.perf_counter() - start)


def run_onnxruntime(path, x, batch):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return timed_batches(lambda b: session.run(None, {name: b})[0], x, batch)


def run_openvino(path, x, batch):
    import openvino as ov
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": THREADS,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
    return timed_batches(lambda b: compiled(b)[0], x, batch)


def run_cleval(cleval, path, data, batch, work):
    """(scores, images/s) or (None, the refusal line)."""
    save, report = work / "pred.h5", work / "report.json"
    for f in (save, report):
        f.unlink(missing_ok=True)
    env = dict(os.environ, POCL_CPU_MAX_CU_COUNT=str(THREADS),
               POCL_MAX_PTHREAD_COUNT=str(THREADS))
    r = subprocess.run([str(cleval), "eval", "--model", str(path), "--data", str(data),
                        "--batch", str(batch), "--save", str(save), "--json", str(report),
                        "--quiet"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    timing = json.loads(report.read_text())
    seconds = timing["timing"]["total_s"] - timing["timing_breakdown"]["load_model_s"]
    with h5py.File(save, "r") as h:
        scores = h["scores"][:]
    return scores, len(scores) / seconds


# ---- agreement ----


def agreement(got, want):
    """(samples within tolerance, argmax equal where decisive, decisive samples, max diff)."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    diff = np.abs(got.astype(np.float64) - want) / np.where(scale > 0, scale, 1)
    within = int((diff <= TOLERANCE).all(axis=1).sum())
    top2 = np.sort(want, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > TOLERANCE * scale[:, 0]
    same = got.argmax(axis=1) == want.argmax(axis=1)
    return within, int((same & decisive).sum()), int(decisive.sum()), float(diff.max())


def fmt_rate(rate):
    return f"{rate:8.1f}" if rate else "       -"


def report_model(name, opset, cleval_result, ort_result, ov_result, samples):
    scores, cleval_rate = cleval_result
    ort_scores, ort_rate = ort_result
    ov_rate = ov_result[1] if ov_result else None
    if scores is None:
        print(f"{name:20s} {opset:5d}  refused: {cleval_rate}")
        print(f"{'':20s} {'':5s}  images/s: onnxruntime {ort_rate:.1f}"
              + (f", OpenVINO {ov_rate:.1f}" if ov_rate else ""))
        return
    within, same, decisive, max_diff = agreement(scores, ort_scores)
    ratios = f"{cleval_rate / ort_rate:6.2f}" + (f" {cleval_rate / ov_rate:6.2f}" if ov_rate
                                                 else "      -")
    print(f"{name:20s} {opset:5d}  runs  {within:3d}/{samples:<3d} {same:3d}/{decisive:<3d} "
          f"{max_diff:9.2e} {fmt_rate(cleval_rate)} {fmt_rate(ort_rate)} {fmt_rate(ov_rate)}  "
          f"{ratios}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help=f"comma-separated subset of: {','.join(MODELS)}")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cache", default="/tmp/cleval_zoo_bench", help="exports kept here")
    parser.add_argument("--build", default=str(ROOT / "build"), help="cleval build folder")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else MODELS
    if unknown := [n for n in names if n not in MODELS]:
        sys.exit(f"unknown models {unknown}; choose from {','.join(MODELS)}")
    cleval = Path(args.build) / "src" / "cleval"
    if not cleval.exists():
        sys.exit(f"{cleval} not found: build cleval first (cmake --build {args.build})")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    import torch
    torch.set_num_threads(THREADS)
    try:
        import openvino
        ov_note = f"OpenVINO {openvino.__version__}"
    except ImportError:
        openvino, ov_note = None, "OpenVINO not installed (pip install openvino): skipped"
    print(f"{args.samples} samples, batch {args.batch}, {THREADS} threads each; {ov_note}")
    print(f"agreement with onnxruntime: samples with every score within {TOLERANCE:g} x the "
          "sample's largest |score|; argmax equal / decisive samples")
    print(f"{'model':20s} {'opset':>5s}  cleval {'within':>7s} {'argmax':>7s} {'max diff':>9s} "
          f"{'cleval':>8s} {'onnxrt':>8s} {'OpenVINO':>8s}  {'/ort':>6s} {'/ov':>6s}  "
          "(images/s)")
    for name in names:
        files = export_model(name, cache)
        data, x = sample_file(name, args.samples, cache)
        for opset, path in files:
            ort_result = run_onnxruntime(path, x, args.batch)
            ov_result = run_openvino(path, x, args.batch) if openvino else None
            cleval_result = run_cleval(cleval, path, data, args.batch, cache)
            report_model(name, opset, cleval_result, ort_result, ov_result, args.samples)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
