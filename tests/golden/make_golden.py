"""Golden samples: tiny trained runs and their samples under every sampler that applies.

Made once, before the "one path, one pipeline" refactor (issue 20), by the sampling code of that
time (commit 3c749ca, with this script as it was at 6b4651b), and committed with the runs' EMA
weights. Rerunning it now draws the goldens with today's pipeline, for the next refactor. ``tests/test_golden.py`` checks that
today's code draws the same samples from the same checkpoints. Rerun only on purpose:

    .venv/bin/python tests/golden/make_golden.py --train   # the five tiny runs (about a minute)
    .venv/bin/python tests/golden/make_golden.py           # the samples, golden.safetensors

Two deliberate rule changes were recorded with the old code's own pieces (see test_golden.py):
- a flow run's x_0 estimate is never clipped (its ODE solvers never clipped it; the DDPM samplers
  on a flow run used to), so the flow runs' DDPM-sampler goldens were drawn with clip_x0=False;
- guidance combines the raw predictions and clips once (Ho & Salimans); the old rule clipped each
  branch first. "cond-ddpm" goldens follow the new rule; "<sampler>@old-guidance" keep the old one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).parent
RUNS = {
    "ddpm": [],
    "learned": [
        "diffusion.learn_sigma=true",
        "diffusion.loss=hybrid",
        "diffusion.variance=learned",
        "diffusion.schedule=linear",
    ],
    "flow": ["objective=flow", "flow.time_sampling=logit-normal"],
    "cond-ddpm": ["model.class_conditional=true", "sample.guidance=2.0"],
    "cond-flow": [
        "objective=flow",
        "model.class_conditional=true",
        "sample.guidance=2.0",
        "sample.guidance_interval=[0.3,0.8]",
    ],
}
TINY = [
    "model.base_channels=8",
    "train.steps=60",
    "train.warmup_steps=10",
    "train.sample_every=0",
    "train.precision=fp32",
    "train.log_every=20",
]
# (sampler, steps, extra): every sampler, short grids so the test runs in seconds.
DDPM_SAMPLERS = [
    ("ddpm", 20, {}),
    ("ddpm", 20, {"variance": "beta_tilde"}),
    ("ddim", 10, {}),
    ("ddim", 10, {"eta": 1.0}),
    ("dpmpp-2m", 8, {}),
    ("euler", 8, {}),
    ("heun", 4, {}),
    ("fm-euler", 8, {}),
    ("fm-heun", 4, {}),
    ("fm-rk4", 3, {}),
]
N, SEED = 6, 3


def key(run: str, sampler: str, steps: int, extra: dict) -> str:
    tail = "".join(f"-{k}{v}" for k, v in sorted(extra.items()))
    return f"{run}/{sampler}-{steps}{tail}"


def train_runs() -> None:
    import shutil

    from safetensors import safe_open

    from difusion.checkpoint import load_checkpoint
    from difusion.config import load_config
    from difusion.training.loop import CHECKPOINT, train

    for name, overrides in RUNS.items():
        out = HERE / "checkpoints" / name
        cfg = load_config("digits", [*TINY, *overrides])
        train(cfg, out, progress=False, final_samples=False, overwrite=True)
        # keep the EMA weights and the meta only: the checkpoint stays a few hundred kB
        groups, _ = load_checkpoint(out / CHECKPOINT, prefixes=("ema",))
        with safe_open(str(out / CHECKPOINT), "pt") as f:
            metadata = f.metadata()
        save_file(
            {f"ema/{k}": v.contiguous() for k, v in groups["ema"].items()},
            str(out / CHECKPOINT),
            metadata=metadata,
        )
        for extra in out.iterdir():
            if extra.name not in ("config.yaml", CHECKPOINT):
                if extra.is_dir():
                    shutil.rmtree(extra)
                else:
                    extra.unlink()


def samples() -> dict[str, torch.Tensor]:
    """Every sampler on every golden run, with today's pipeline (for the next refactor's goldens).

    The committed golden.safetensors came from the code before the one-path refactor: see this
    file at commit 6b4651b (``git show 6b4651b:tests/golden/make_golden.py``), which drew them with
    the old sampling functions, the two rule changes applied as described above."""
    from difusion.runs import load_run
    from difusion.sampling.pipeline import draw_samples

    out: dict[str, torch.Tensor] = {}
    for name in RUNS:
        run = load_run(HERE / "checkpoints" / name)
        for sampler, steps, extra in DDPM_SAMPLERS:
            if run.config.diffusion.learn_sigma and sampler == "ddpm" and extra:
                continue
            settings = run.settings(n=N, seed=SEED, sampler=sampler, steps=steps, **extra)
            out[key(name, sampler, steps, extra)] = draw_samples(
                run.model, settings, progress=False
            ).x
    return out


if __name__ == "__main__":
    if "--train" in sys.argv:
        train_runs()
    torch.set_num_threads(1)
    golden = samples()
    save_file({k: v.contiguous() for k, v in golden.items()}, str(HERE / "golden.safetensors"))
    print(f"{len(golden)} golden sample sets written to {HERE / 'golden.safetensors'}")
