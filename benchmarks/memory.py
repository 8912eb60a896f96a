"""Peak memory (resident set size) of training and of sampling, each in a fresh process.

The parent starts ``python benchmarks/memory.py --child train|sample ...``; the child sets up
(imports, data, network), records its peak RSS so far (``setup_mb``), does the work, and prints its
final peak RSS as one JSON line. So each number belongs to one job alone, and ``work_mb`` =
peak - setup is what the work itself added.

The peak is ``VmHWM`` of /proc/self/status on Linux: the high-water mark of this process's own
address space, which starts fresh at exec. ``getrusage(RUSAGE_SELF).ru_maxrss`` does not: Linux
carries the pre-exec peak over, so a child started by a parent holding 3.8 GB reports 3.8 GB (the
first run of this suite read "peak 3862 MiB, added 0" for every job). ru_maxrss stays the fallback
elsewhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def _peak_mb() -> float:
    """This process's peak resident set size in MiB (VmHWM where /proc exists)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child_train(preset: str, overrides: list[str], steps: int) -> dict:
    import torch

    from difusion.config import load_config
    from difusion.training.loop import train
    from difusion.training.objectives import build_objective

    cfg = load_config(preset, [*overrides, f"train.steps={steps}", "train.sample_every=0"])
    cfg.train.minutes = None
    build_objective(cfg, torch.device("cpu"))  # data and network once: the setup's share
    setup = _peak_mb()
    with tempfile.TemporaryDirectory() as d:
        train(cfg, d, progress=False, final_samples=False)
    return {"job": "train", "batch": cfg.train.batch_size, "setup_mb": setup}


def _child_sample(preset: str, overrides: list[str], n: int, steps: int, sampler: str) -> dict:
    import torch

    from difusion.build import build_model, build_network
    from difusion.config import load_config
    from difusion.precision import autocast_dtype
    from difusion.sampling.pipeline import SampleSettings, draw_samples

    cfg = load_config(preset, overrides)
    shape = (1, 8, 8) if cfg.data.name == "digits" else (1, 28, 28)
    net = build_network(cfg, shape, None)
    amp = autocast_dtype(cfg.train.precision, torch.device("cpu"))
    model = build_model(cfg, net, shape, None, autocast_dtype=amp)
    setup = _peak_mb()
    settings = SampleSettings.from_config(cfg, n=n, steps=steps, sampler=sampler, guidance=0.0)
    draw_samples(model, settings, progress=False)
    return {"job": f"sample {sampler}", "batch": min(n, cfg.sample.batch_size), "setup_mb": setup}


def peak_rss(job: str, preset: str, overrides: list[str], **kw) -> dict:
    """Run ``job`` (train or sample) in a fresh Python process; its peak RSS in MiB."""
    cmd = [sys.executable, str(Path(__file__)), "--child", job, "--preset", preset]
    for o in overrides:
        cmd += ["--set", o]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["work_mb"] = row["peak_mb"] - row["setup_mb"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["train", "sample"], required=True)
    ap.add_argument("--preset", default="ddpm-fmnist")
    ap.add_argument("--set", action="append", default=[], help="a config override KEY=VALUE")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--sampler", default="dpmpp-2m")
    args = ap.parse_args()
    if args.child == "train":
        row = _child_train(args.preset, args.set, args.steps)
    else:
        row = _child_sample(args.preset, args.set, args.n, args.steps, args.sampler)
    row["peak_mb"] = _peak_mb()
    print(json.dumps(row))


if __name__ == "__main__":
    main()
