#!/usr/bin/env python3
"""The model-zoo table: full-size torchvision models through cleval, onnxruntime and OpenVINO on
the same samples, with images/s, ratios and peak RSS, then the slowest layers of the models
furthest behind onnxruntime against what the machine can do.

Each model (torchvision's own class at its standard input size, 1000 classes, weights
perturbed and BatchNorm statistics measured as tools/make_zoo_fixtures.py does, so that no two
tensors are equal, as in trained weights), or one of the sequence and tabular classifiers of
bench/zoo_sequence.py (a Transformer encoder, an LSTM over token ids, a GRU, a 1-D CNN, an MLP
with BatchNorm, at the sizes of real ones; inputs seeded in their own type), is exported with
``torch.onnx.export(..., dynamo=False)`` at the opsets of ``--opsets`` (17 by default; 13 falls
back to 14 where 13 cannot express the model, i.e. ViT's attention; 21 is the opset-17 file
through onnx.version_converter, or the dynamo exporter when that fails). Every file then runs
on the same N seeded standard-normal samples through:

* cleval       ``cleval eval --save`` (scores from the prediction file); images/s over the
               run without loading the model (the JSON report's total_s - load_model_s);
* onnxruntime  CPU execution provider, the reference for agreement;
* OpenVINO     CPU plugin with f32 inference precision (skipped with a note when
               ``import openvino`` fails);

each with 2 threads, in batches of ``--batch`` (the tabular MLP at its own count of COUNTS,
where start-up and model loading are a small part), each run in a process of its own so that
its peak RSS (GNU time's maximum resident set size) is its own. The Python tools read the
sample file batch by batch as cleval does and time the batches after one warm-up batch; their
RSS includes the interpreter, numpy and h5py. Rounds are interleaved: every round runs each tool
once, in an order that rotates from round to round, so that a change in the machine's load
falls on every tool alike; images/s is the median over the rounds, peak RSS the largest.

Per model it prints whether cleval runs it (or its refusal line), the agreement with
onnxruntime as tests/test_nn_zoo.c measures it (samples whose scores are all within 1e-3 x the
sample's largest |score|; argmax equal where onnxruntime's top two are further apart than
that), the largest difference relative to that scale, images/s, cleval's ratios and peak RSS.

Then, for the ``--profile-count`` models with the lowest cleval / onnxruntime ratio (or those
named by ``--profile``), one ``cleval eval --profile`` run on the same samples: the
``--layers`` slowest layers with their device seconds, GFLOP/s and that rate as a share of the
machine's float FMA peak (a 2-thread AVX loop compiled here with ``cc -march=native``) and of
numpy's OpenBLAS sgemm at n = 2048 on 2 threads, both measured in the same run.

    python3 bench/bench_zoo.py [--models resnet18,vit_b_16] [--samples 1024] [--batch 64]
                               [--rounds 3] [--opsets 17] [--out bench/results/zoo_cpu.md]

Exports and sample files are kept in the cache folder (``--cache``) and reused.
"""

import argparse
import json
import os
import platform
import statistics
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
# The sequence and tabular classifiers of bench/zoo_sequence.py (its MODELS), named here so that
# the --worker processes never import it: it imports torch, whose few hundred MiB would count
# in the Python tools' peak RSS.
SEQUENCE = ["transformer_encoder", "lstm_text", "gru_sequence", "cnn1d", "mlp_tabular"]
MODELS += SEQUENCE
# The issue's set, the default of --models.
ZOO = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
       "regnet_y_400mf", "densenet121", "convnext_tiny", "vit_b_16", "vgg16",
       "inception_v3"] + SEQUENCE
TOOLS = ["cleval", "onnxruntime", "openvino"]
SIZES = {"inception_v3": 299}
# Models measured at their own (samples, batch) whatever --samples and --batch say: a tabular
# MLP takes microseconds per row, so at an image model's count the process start-up and the
# model load would be most of what is timed; it is measured at a count where they are not.
COUNTS = {"mlp_tabular": (100000, 1024)}

# Two threads of independent AVX FMA chains: 12 accumulators of 16 floats hide the FMA latency
# on two pipes. a = a * m + c converges to 1, so no value overflows or turns subnormal.
FMA_PEAK_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef float v16 __attribute__((vector_size(64)));
enum { CHAINS = 12 };
static long iters;
static void *work(void *out)
{
    v16 a[CHAINS], m, c;
    for (int j = 0; j < 16; j++) { m[j] = 0.9999f; c[j] = 1e-4f; }
    for (int i = 0; i < CHAINS; i++) a[i] = m * (float)i;
    for (long k = 0; k < iters; k++)
        for (int i = 0; i < CHAINS; i++) a[i] = a[i] * m + c;
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += a[i][0];
    *(float *)out = s;
    return NULL;
}
int main(int argc, char **argv)
{
    int threads = atoi(argv[1]);
    iters = atol(argv[2]);
    pthread_t t[64];
    float sums[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, &sums[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    printf("%f %f\n", 2.0 * 16 * CHAINS * (double)iters * threads / s / 1e9, sums[0]);
    return 0;
}
"""


# ---- models and samples ----


def build_model(name):
    if name in SEQUENCE:
        import zoo_sequence
        return zoo_sequence.MODELS[name][0]().eval()
    import torchvision
    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet",
                                                                     "inception_v3") else {}
    return getattr(torchvision.models, name)(**kwargs).eval()


def input_maker(name):
    """rng, n -> n inputs of the model: images at its size, or the sequence model's own."""
    if name in SEQUENCE:
        import zoo_sequence
        return zoo_sequence.MODELS[name][1]
    size = SIZES.get(name, 224)
    return lambda rng, n: rng.standard_normal((n, 3, size, size), dtype=np.float32)


def export_model(name, opsets, cache):
    """The model's ONNX files [(opset, path)] for `opsets`, exported into the cache unless
    already there (opset 13 may come back as 14)."""
    def found(opset):
        alternatives = (13, 14) if opset == 13 else (opset,)
        return next((cache / f"{name}_{o}.onnx" for o in alternatives
                     if (cache / f"{name}_{o}.onnx").exists()), None)

    files = {o: found(o) for o in opsets}
    missing = [o for o in opsets if files[o] is None]
    if missing:
        import torch
        from make_zoo_fixtures import convert, export_first_working, perturb
        make = input_maker(name)
        torch.manual_seed(0)
        model = build_model(name)
        perturb(model, lambda rng: make(rng, 4), 0)
        x = torch.from_numpy(make(np.random.default_rng(1), 2))
        for opset in sorted(missing, key=lambda o: o == 21):
            path = cache / f"{name}_{opset}.onnx"
            if opset == 21:
                src = found(17) or cache / f"{name}_17.onnx"
                if not src.exists():
                    export_first_working(model, x, src, 17)
                convert(model, x, src, path, 21)
            else:
                got = export_first_working(model, x, path, opset)
                if got != opset:
                    path = path.rename(cache / f"{name}_{got}.onnx")
            files[opset] = path
    return [(int(files[o].stem.rsplit("_", 1)[1]), files[o]) for o in opsets]


def sample_file(name, samples, cache):
    """N seeded inputs: standard-normal images at the model's size (what a normalised image
    holds), shared by the image models of that size, or the sequence model's own inputs."""
    make = input_maker(name)
    key = name if name in SEQUENCE else SIZES.get(name, 224)
    path = cache / f"samples_{key}_{samples}.h5"
    if not path.exists():
        rng = np.random.default_rng(7)
        first = make(rng, 1)
        step = max(1, (64 << 20) // first.nbytes)  # in slices: 1,024 images are 600 MB
        rng = np.random.default_rng(7)
        with h5py.File(path, "w") as h:
            d = h.create_dataset("X", (samples,) + first.shape[1:], dtype=first.dtype)
            for i in range(0, samples, step):
                d[i:i + step] = make(rng, min(step, samples - i))
    return path


# ---- one tool in its own process ----


def run_measured(cmd, env=None):
    """(exit code, stdout, stderr, peak RSS in MiB) of a command. The RSS comes from GNU time,
    which forks the command from its own small process: Linux carries the high-water mark of
    a process across exec, so a child forked from this script (which may hold torch) would
    report at least this script's RSS."""
    r = subprocess.run(["/usr/bin/time", "-f", "PEAK_RSS_KIB %M"] + cmd, capture_output=True,
                       text=True, env=env)
    err, _, tail = r.stderr.rpartition("PEAK_RSS_KIB ")
    return r.returncode, r.stdout, err, int(tail.split()[0]) / 1024


def worker(tool, model, data, batch, scores_path):
    """The --worker side: one Python runtime over the sample file; prints {"rate": images/s}."""
    if tool == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        run = lambda b: session.run(None, {name: b})[0]  # noqa: E731
    else:
        import openvino as ov
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": THREADS,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
        run = lambda b: compiled(b)[0]  # noqa: E731
    with h5py.File(data, "r") as h:
        x = h["X"]
        n = x.shape[0]
        run(x[:batch])
        start = time.perf_counter()
        scores = np.concatenate([run(x[i:i + batch]) for i in range(0, n, batch)])
        rate = n / (time.perf_counter() - start)
    np.save(scores_path, scores)
    print(json.dumps({"rate": rate}))


def run_tool(tool, cleval, model, data, batch, work):
    """(scores or None, images/s or the refusal line, peak RSS MiB)."""
    scores_path = work / f"{tool}_scores.npy"
    if tool == "cleval":
        save, report = work / "pred.h5", work / "report.json"
        for f in (save, report):
            f.unlink(missing_ok=True)
        env = dict(os.environ, POCL_CPU_MAX_CU_COUNT=str(THREADS),
                   POCL_MAX_PTHREAD_COUNT=str(THREADS))
        code, _, err, rss = run_measured(
            [str(cleval), "eval", "--model", str(model), "--data", str(data), "--batch",
             str(batch), "--save", str(save), "--json", str(report), "--quiet"], env)
        if code != 0:
            return None, (err.strip().splitlines() or [f"exit {code}"])[-1], rss
        timing = json.loads(report.read_text())
        seconds = timing["timing"]["total_s"] - timing["timing_breakdown"]["load_model_s"]
        with h5py.File(save, "r") as h:
            scores = h["scores"][:]
        return scores, len(scores) / seconds, rss
    code, out, err, rss = run_measured(
        [sys.executable, __file__, "--worker", tool, str(model), str(data), str(batch),
         str(scores_path)])
    if code != 0:
        return None, (err.strip().splitlines() or [f"exit {code}"])[-1], rss
    return np.load(scores_path), json.loads(out.strip().splitlines()[-1])["rate"], rss


def run_rounds(tools, cleval, model, data, batch, rounds, work):
    """tool -> (scores of the first round, median images/s, largest peak RSS); tool ->
    (None, refusal line, RSS) when a run fails."""
    runs = {t: [] for t in tools}
    for r in range(rounds):
        for tool in tools[r % len(tools):] + tools[:r % len(tools)]:
            runs[tool].append(run_tool(tool, cleval, model, data, batch, work))
    result = {}
    for tool, got in runs.items():
        failed = next((g for g in got if g[0] is None), None)
        result[tool] = failed or (got[0][0], statistics.median(g[1] for g in got),
                                  max(g[2] for g in got))
    return result


# ---- what the machine can do ----


def fma_peak(work):
    """GFLOP/s of the FMA loop above on THREADS threads (best of 5), or None without cc."""
    src, exe = work / "fma_peak.c", work / "fma_peak"
    src.write_text(FMA_PEAK_C)
    r = subprocess.run(["cc", "-O3", "-march=native", "-mprefer-vector-width=512", "-pthread",
                        "-o", str(exe), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    rates = [float(subprocess.run([str(exe), str(THREADS), "20000000"], capture_output=True,
                                  text=True, check=True).stdout.split()[0]) for _ in range(5)]
    return max(rates)


def sgemm_rate():
    """numpy (OpenBLAS) sgemm GFLOP/s at n = 2048 on THREADS threads, best of 5 (as the FMA
    peak: what the machine gives when other work leaves it alone)."""
    code = ("import numpy as np, time\n"
            "a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)\n"
            "a @ a\nt = []\n"
            "for _ in range(5):\n"
            "    s = time.perf_counter(); a @ a; t.append(time.perf_counter() - s)\n"
            "print(2 * 2048 ** 3 / min(t) / 1e9)\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True).stdout)


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def opencl_device(cleval):
    """The name of the device cleval picks first (`cleval devices`), e.g. PoCL's LLVM target."""
    r = subprocess.run([str(cleval), "devices"], capture_output=True, text=True)
    fields = r.stdout.splitlines()[0].split(" | ") if r.returncode == 0 and r.stdout else []
    return fields[1] if len(fields) > 1 else "unknown"


# ---- agreement and the tables ----


def agreement(got, want):
    """(samples within tolerance, argmax equal where decisive, decisive samples, max diff)."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    diff = np.abs(got.astype(np.float64) - want) / np.where(scale > 0, scale, 1)
    within = int((diff <= TOLERANCE).all(axis=1).sum())
    top2 = np.sort(want, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > TOLERANCE * scale[:, 0]
    same = got.argmax(axis=1) == want.argmax(axis=1)
    return within, int((same & decisive).sum()), int(decisive.sum()), float(diff.max())


def model_row(name, opset, result, samples):
    """One Markdown row of the zoo table, and cleval / onnxruntime (None when not comparable)."""
    def rate(tool):
        got = result.get(tool)
        return got[1] if got and got[0] is not None else None

    def cell(value, spec):
        return format(value, spec) if value is not None else "-"

    cl, ort, ov = rate("cleval"), rate("onnxruntime"), rate("openvino")
    rss = {t: cell(result[t][2], ".0f") if t in result else "-" for t in TOOLS}
    if cl is None:
        agree = f"refused: {result['cleval'][1]}"
    elif ort is None:
        agree = "-"
    else:
        within, same, decisive, diff = agreement(result["cleval"][0], result["onnxruntime"][0])
        agree = f"{within}/{samples}, {same}/{decisive}, {diff:.1e}"
    ratio_ort = cl / ort if cl and ort else None
    ratio_ov = cl / ov if cl and ov else None
    return (f"| {name} | {opset} | {cell(cl, '.1f')} | {cell(ort, '.1f')} | {cell(ov, '.1f')} "
            f"| {cell(ratio_ort, '.2f')} | {cell(ratio_ov, '.2f')} | {rss['cleval']} "
            f"| {rss['onnxruntime']} | {rss['openvino']} | {agree} |"), ratio_ort


def layer_rows(build, model, data, batch, work, count, peak, sgemm):
    """Markdown rows of the `count` slowest layers of one `cleval eval --profile` run."""
    from layer_profile import profile_layers
    layers = [runs[0] for runs in profile_layers(build, model, data, batch, work, 1).values()]
    total = sum(layer["seconds"] for layer in layers)
    rows = []
    for layer in sorted(layers, key=lambda item: -item["seconds"])[:count]:
        gflops = layer["gflops_per_s"]
        share_peak = f"{100 * gflops / peak:.1f}" if peak else "-"
        rows.append(f"| {layer['name']} | {layer['op']} | {layer['kernel']} "
                    f"| {layer['seconds']:.3f} | {100 * layer['seconds'] / total:.1f} "
                    f"| {gflops:.1f} | {share_peak} | {100 * gflops / sgemm:.1f} |")
    return rows, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help=f"comma-separated (default: {','.join(ZOO)}); any of "
                        f"{','.join(MODELS)}")
    parser.add_argument("--opsets", default="17", help="comma-separated, of 13, 17, 21")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--profile", help="models to profile (default: the --profile-count "
                        "with the lowest cleval / onnxruntime ratio)")
    parser.add_argument("--profile-count", type=int, default=2)
    parser.add_argument("--layers", type=int, default=8, help="slowest layers shown per model")
    parser.add_argument("--cache", default="/tmp/cleval_zoo_bench", help="exports kept here")
    parser.add_argument("--build", default=str(ROOT / "build"), help="cleval build folder")
    parser.add_argument("--out", help="also write the tables to this Markdown file")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tool, model, data, batch, scores = args.worker
        return worker(tool, model, data, int(batch), scores)
    names = args.models.split(",") if args.models else ZOO
    tools = args.tools.split(",")
    opsets = [int(o) for o in args.opsets.split(",")]
    if unknown := [n for n in names if n not in MODELS]:
        sys.exit(f"unknown models {unknown}; choose from {','.join(MODELS)}")
    if bad := [t for t in tools if t not in TOOLS] + [o for o in opsets if o not in (13, 17, 21)]:
        sys.exit(f"unknown tools or opsets {bad}")
    cleval = Path(args.build) / "src" / "cleval"
    if not cleval.exists():
        sys.exit(f"{cleval} not found: build cleval first (cmake --build {args.build})")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    try:
        import openvino
        ov_note = f"OpenVINO {openvino.__version__.split('-')[0]}"
    except ImportError:
        tools = [t for t in tools if t != "openvino"]
        ov_note = "OpenVINO not installed (pip install openvino): skipped"
    import onnxruntime
    lines = []

    def emit(line=""):
        print(line)
        sys.stdout.flush()
        lines.append(line)

    peak, sgemm = fma_peak(cache), sgemm_rate()
    emit(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs (cleval's OpenCL device: "
         f"{opencl_device(cleval)}); {THREADS} threads per tool; "
         f"onnxruntime {onnxruntime.__version__}, {ov_note}.")
    emit(f"Float FMA peak ({THREADS} threads, AVX loop, best of 5): "
         + (f"{peak:.0f} GFLOP/s" if peak else "not measured (no cc)")
         + f"; numpy OpenBLAS sgemm n = 2048: {sgemm:.0f} GFLOP/s (best of 5).")
    emit(f"{args.samples} samples, batch {args.batch}, {args.rounds} interleaved rounds "
         "(images/s: median; peak RSS: largest, MiB)"
         + "".join(f"; {n} at {COUNTS[n][0]} samples, batch {COUNTS[n][1]}" for n in names
                   if n in COUNTS) + ".")
    emit()
    emit("| model | opset | cleval img/s | onnxruntime | OpenVINO | /ort | /ov | RSS cleval "
         "| RSS ort | RSS ov | agreement (within, argmax, max diff) |")
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios = {}
    for name in names:
        samples, batch = COUNTS.get(name, (args.samples, args.batch))
        data = sample_file(name, samples, cache)
        for opset, path in export_model(name, opsets, cache):
            result = run_rounds(tools, cleval, path, data, batch, args.rounds, cache)
            row, ratio = model_row(name, opset, result, samples)
            emit(row)
            if ratio is not None:
                ratios.setdefault(name, (ratio, path, data, batch))
    profiled = (args.profile.split(",") if args.profile else
                sorted(ratios, key=lambda n: ratios[n][0])[:args.profile_count])
    for name in profiled:
        if name not in ratios:
            continue
        _, path, data, batch = ratios[name]
        rows, total = layer_rows(args.build, path, data, batch, cache, args.layers, peak,
                                 sgemm)
        emit()
        emit(f"{name} ({path.name}): the {len(rows)} slowest layers of one --profile run "
             f"({total:.2f} s of device time in all)")
        emit()
        emit("| layer | op | kernel | seconds | share % | GFLOP/s | % FMA peak | % sgemm |")
        emit("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in rows:
            emit(row)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
