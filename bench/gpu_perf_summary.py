#!/usr/bin/env python3
"""The summary of scripts/gpu_perf.sh: reads its details folder and prints one Markdown page of
figures and cleval/PyTorch ratios. Standard library only (it runs on the GPU image); a missing
or failed part shows as "n/a" with the step's exit status, never stops the page.

    python3 bench/gpu_perf_summary.py DETAILS_DIR > summary.md
"""
import glob
import json
import os
import re
import statistics
import sys

D = sys.argv[1]


def path(name):
    return os.path.join(D, name)


def load(name):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(obj, *keys):
    for k in keys:
        if not isinstance(obj, (dict, list)):
            return None
        try:
            obj = obj[k]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def med(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def walls(name):
    try:
        with open(path(name)) as f:
            return [float(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def reports(pattern):
    return [r for r in (load(os.path.basename(p)) for p in sorted(glob.glob(path(pattern)))) if r]


def fmt(v, spec=".3g", unit=""):
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def bench_nn_result(name, batch):
    """images/s of a bench_nn RESULT line for this batch (fp32)."""
    try:
        with open(path(name)) as f:
            for line in f:
                p = line.split()
                if p[:1] == ["RESULT"] and p[1] == str(batch):
                    return float(p[2])
    except (OSError, ValueError, IndexError):
        pass
    return None


def build_seconds(log):
    """Seconds spent in clBuildProgram, from the --verbose lines "built kernels/X.cl [...] in S s"."""
    try:
        with open(path(log)) as f:
            return sum(float(m) for m in re.findall(r"built kernels/\S+ \[.*?\] in ([0-9.]+) s",
                                                    f.read()))
    except OSError:
        return None


steps = {}
try:
    with open(path("steps.tsv")) as f:
        for line in list(f)[1:]:
            name, rc, seconds = line.rstrip("\n").split("\t")
            steps[name] = (int(rc), float(seconds))
except (OSError, ValueError):
    pass

out = []
w = out.append
devices = open(path("devices.txt")).read().strip() if os.path.exists(path("devices.txt")) else "n/a"
probe = load("probe.json") or {}
torch = load("torch.json") or {}
w(f"# cleval performance on {probe.get('device', 'an unknown device')}\n")
w("Devices (`cleval devices`):\n\n```\n" + devices + "\n```\n")
if "gpu" in torch:
    w(f"PyTorch {torch.get('torch')} on {torch['gpu']}.\n")
elif "skipped" in torch:
    w(f"PyTorch: skipped ({torch['skipped']}).\n")

w("## The device's own limits (bench/gpu_probe, plain OpenCL)\n")
w("| measure | value |\n| --- | --- |")
w(f"| host to device, pageable / pinned | {fmt(probe.get('h2d_pageable_gbs'))} / "
  f"{fmt(probe.get('h2d_pinned_gbs'))} GB/s |")
w(f"| device to host, pageable / pinned | {fmt(probe.get('d2h_pageable_gbs'))} / "
  f"{fmt(probe.get('d2h_pinned_gbs'))} GB/s |")
ov = probe.get("overlap") or {}
w(f"| copy and kernel overlap (1 = fully, 0 = serial, below 0 = slower together) | {fmt(ov.get('ratio'), '.2f')} "
  f"(copy {fmt(ov.get('copy_s'))} s, kernel {fmt(ov.get('kernel_s'))} s, both "
  f"{fmt(ov.get('both_s'))} s) |")
w(f"| float FMA peak | {fmt(probe.get('fma_gflops'), '.0f')} GFLOP/s |")
w(f"| local-memory reads | {fmt(probe.get('local_read_gbs'), '.0f')} GB/s |\n")

w("## Start-up (whole process)\n")
w("| phase | seconds |\n| --- | --- |")
w(f"| `cleval devices`, every ICD (median of 3) | {fmt(med(walls('startup_devices_all.txt')))} |")
if walls("startup_devices_nvidia.txt"):
    w(f"| `cleval devices`, NVIDIA's ICD alone | {fmt(med(walls('startup_devices_nvidia.txt')))} |")
for run, label in (("cold", "cold (empty cleval, PoCL and CUDA caches)"),
                   ("warm", "warm (median of 3)")):
    names = ["cold"] if run == "cold" else ["warm1", "warm2", "warm3"]
    rep = [load(f"startup_eval_{n}.json") for n in names]
    wall = med([x for n in names for x in walls(f"startup_eval_{n}.wall")])
    load_model = med([get(r, "timing_breakdown", "load_model_s") for r in rep])
    builds = med([build_seconds(f"startup_eval_{n}.log") for n in names])
    total = med([get(r, "timing", "total_s") for r in rep])
    w(f"| eval of 512 images, {label}: whole process | {fmt(wall)} |")
    w(f"| ... of which model load | {fmt(load_model)} |")
    w(f"| ... of which the run after loading | {fmt(None if total is None or load_model is None else total - load_model)} |")
    w(f"| ... program builds, summed over the run (`--verbose`) | {fmt(builds)} |")
w("")

w("## The CNN (datasets/fmnist_cnn.onnx)\n")
e2e = {os.path.basename(x.get("file", "")): x for x in torch.get("cnn_end_to_end", [])}
c10k = med([get(r, "timing", "samples_per_s") for r in reports("eval10k_*.json")])
t10k = get(e2e.get("fmnist_test.h5"), "images_per_s")
big = load("evalbig.json")
cbig = get(big, "timing", "samples_per_s")
tbig = get(e2e.get("big.h5"), "images_per_s")
dev_c = bench_nn_result("bench_nn_10k.txt", 1024)
dev_t = torch.get("cnn_device_images_per_s_fp32")
dev_t32 = torch.get("cnn_device_images_per_s_tf32")
w("| run | cleval images/s | PyTorch images/s | cleval / PyTorch |\n| --- | --- | --- | --- |")
w(f"| 10^4 images end to end from HDF5 (cleval: median of 3 whole processes) | {fmt(c10k, '.0f')} "
  f"| {fmt(t10k, '.0f')} | {fmt(ratio(c10k, t10k), '.3f')} |")
w(f"| {fmt(get(big, 'n_samples'), 'd')} images end to end | {fmt(cbig, '.0f')} | {fmt(tbig, '.0f')} "
  f"| {fmt(ratio(cbig, tbig), '.3f')} |")
w(f"| device only, batch 1024, fp32 (PyTorch: CUDA events, TF32 off) | {fmt(dev_c, '.0f')} | "
  f"{fmt(dev_t, '.0f')} | {fmt(ratio(dev_c, dev_t), '.3f')} |")
w(f"| device only, PyTorch with TF32 on | {fmt(dev_c, '.0f')} | {fmt(dev_t32, '.0f')} | "
  f"{fmt(ratio(dev_c, dev_t32), '.3f')} |")
acc = med([get(r, "accuracy") for r in reports("eval10k_*.json")])
w(f"\nAccuracy on the 10^4 test images: cleval {fmt(acc, '.4f')}, PyTorch "
  f"{fmt(torch.get('cnn_accuracy_fp32'), '.4f')} (TF32 {fmt(torch.get('cnn_accuracy_tf32'), '.4f')}).")
if big:
    tb = big.get("timing_breakdown", {})
    w(f"Large run: {fmt(get(big, 'timing', 'total_s'))} s in all; model load "
      f"{fmt(tb.get('load_model_s'))} s, reading {fmt(tb.get('read_s'))} s, waiting for the "
      f"device {fmt(tb.get('wait_s'))} s.")
layers = []
if os.path.exists(path("bench_nn_10k.txt")):
    layers = [line.strip() for line in open(path("bench_nn_10k.txt"))
              if line.startswith("LAYER 1024 ")]
if layers:
    w("\nPer-layer device time at batch 1024 (bench_nn's profiled pass; fields: layer | op | "
      "kernel | device seconds | FLOPs):\n\n```\n" + "\n".join(layers) + "\n```")
w("")

w("## Zoo models (tests/fixtures/zoo, 5 samples each: start-up dominates the whole process)\n")
w("| model | whole process s | device images/s at batch 5 |\n| --- | --- | --- |")
zoo = sorted(glob.glob(path("zoo_*.wall")))
for z in zoo:
    name = os.path.basename(z)[4:-5]
    w(f"| {name} | {fmt(med(walls(os.path.basename(z))))} | "
      f"{fmt(bench_nn_result(f'zoo_{name}_bench.txt', 5), '.0f')} |")
if not zoo:
    w("| none present | | |")
w("")

w("## KNN, full Fashion-MNIST (60,000 x 10,000, k=5)\n")
knn = reports("knn_*.json")
kw = med(walls("knn.wall"))
parts = {k: med([get(r, "timing_breakdown", k) for r in knn])
         for k in ("load_train_s", "read_s", "wait_s", "screen_s", "exact_s")}
w(f"cleval: {fmt(kw)} s whole process (median of 3): loading the training set "
  f"{fmt(parts['load_train_s'])} s, screening product {fmt(parts['screen_s'])} s and exact "
  f"re-ranking + vote {fmt(parts['exact_s'])} s on the device, reading {fmt(parts['read_s'])} s, "
  f"waiting {fmt(parts['wait_s'])} s.")
kt, kt32 = torch.get("knn_device_s_fp32"), torch.get("knn_device_s_tf32")
device_knn = None if parts["screen_s"] is None else parts["screen_s"] + (parts["exact_s"] or 0)
w(f"PyTorch cdist + topk + vote, device only: {fmt(kt)} s (TF32 on: {fmt(kt32)} s). "
  f"cleval device time / PyTorch: {fmt(ratio(device_knn, kt), '.2f')}; whole process / "
  f"PyTorch device: {fmt(ratio(kw, kt), '.1f')}.")
w(f"Accuracy: cleval {fmt(med([get(r, 'accuracy') for r in knn]), '.4f')}, PyTorch "
  f"{fmt(torch.get('knn_accuracy_fp32'), '.4f')} (TF32 {fmt(torch.get('knn_accuracy_tf32'), '.4f')}).\n")

w("## Confusion matrix of 5 x 10^7 pairs\n")
hist = load("histogram.json") or {}
hs = hist.get("device_s")
w(f"cleval {fmt(None if hs is None else hs * 1e3)} ms on the device ({hist.get('path', 'n/a')} "
  f"path), torch.bincount {fmt(None if torch.get('bincount_device_s') is None else torch['bincount_device_s'] * 1e3)} ms; "
  f"ratio {fmt(ratio(hs, torch.get('bincount_device_s')), '.2f')}.\n")

w("## Tuner\n")
if os.path.exists(path("tune.txt")):
    w("```\n" + "".join(open(path("tune.txt")).readlines()[:20]).rstrip() + "\n```\n")
else:
    w("n/a\n")
tuned = med([get(r, "timing", "samples_per_s") for r in reports("tuned10k_*.json")])
if tuned is not None:
    w(f"10^4 images with the tuned values: {fmt(tuned, '.0f')} images/s whole process (median of "
      f"3), {fmt(ratio(tuned, c10k), '.2f')} x the untuned runs.\n")

w("## Steps\n")
w("| step | exit | seconds |\n| --- | --- | --- |")
for name, (rc, seconds) in steps.items():
    note = {124: " (timed out)", 125: " (skipped: no time left)"}.get(rc, "")
    w(f"| {name} | {rc}{note} | {seconds:.1f} |")
print("\n".join(out))
