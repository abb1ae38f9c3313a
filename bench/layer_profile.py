"""What the one-layer benchmarks (bench_add.py, bench_pool.py, bench_conv_shapes.py) share: a
seeded sample file, and `cleval eval --profile` run a few times with its layers collected."""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

THREADS = 2


def sample_file(work, samples, shape):
    """work/samples_N.h5 with X: N seeded standard-normal float32 samples of `shape` (kept and
    reused when it exists)."""
    data = Path(work) / f"samples_{samples}.h5"
    if not data.exists():
        with h5py.File(data, "w") as h:
            h["X"] = np.random.default_rng(7).standard_normal((samples, *shape),
                                                              dtype=np.float32)
    return data


def pocl_env():
    """The environment that gives PoCL the same thread count as the other tools."""
    return dict(os.environ, POCL_CPU_MAX_CU_COUNT=str(THREADS),
                POCL_MAX_PTHREAD_COUNT=str(THREADS))


def profile_layers(build, model, data, batch, work, repeat):
    """Runs `cleval eval --profile` `repeat` times; returns layer name -> its report entries."""
    report = Path(work) / "report.json"
    cmd = [str(Path(build) / "src" / "cleval"), "eval", "--model", str(model), "--data",
           str(data), "--batch", str(batch), "--json", str(report), "--quiet", "--profile"]
    layers = {}
    for _ in range(repeat):
        r = subprocess.run(cmd, capture_output=True, text=True, env=pocl_env())
        if r.returncode != 0:
            sys.exit(f"cleval failed: {r.stderr.strip()}")
        for layer in json.loads(report.read_text()).get("layers", []):
            layers.setdefault(layer["name"], []).append(layer)
    return layers


def median_seconds(runs):
    return statistics.median(layer["seconds"] for layer in runs)
