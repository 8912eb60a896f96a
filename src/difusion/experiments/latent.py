"""Latent against pixel diffusion at equal CPU-minutes (Rombach et al. 2022's argument, on a laptop).

    difusion experiment latent-vs-pixel --budget full

The pixel row is the 10-minute run of the learning curve (`difusion train ddpm-fmnist`). The
latent row spends the same 10 minutes in all: 3 minutes on the first stage (`vae-fmnist-spatial`,
28x28 -> 4x7x7) and 7 on a DDPM over its latents (`ldm-fmnist`). Both are sampled with
DPM-Solver++(2M) in 20 steps and scored on the same number of samples; the sampling time gives
samples per second.
"""

from __future__ import annotations

from pathlib import Path

from difusion.errors import DifusionError
from difusion.experiments.ddpm import LC_10, LC_FULL, TINY
from difusion.experiments.runner import run_experiment
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec
from difusion.experiments.training import train_run


def _settings(budget: str):
    if budget == "small":
        ae = ["train.steps=40", "train.minutes=null", "autoencoder.eval_n=100",
              "autoencoder.iwae_k=2", "autoencoder.channels=[8,16]"]  # fmt: skip
        tiny = [*TINY, "sample.n=8", "sample.steps=5"]
        pixel = RunSpec("pixel DDPM", "ddpm-fmnist", [*tiny, "train.steps=20"],
                        run="latent-vs-pixel-small/pixel")  # fmt: skip
        latent = [*tiny, "train.steps=20"]
        ev = EvalSpec(n=64, steps=10, sampler="dpmpp-2m", features=("domain",), n_reference=300)
        return ae, pixel, latent, ev
    if budget == "full":
        pixel = RunSpec("pixel DDPM, 10 min", "ddpm-fmnist", [*LC_FULL, "train.minutes=10"],
                        run=LC_10)  # fmt: skip
        ev = EvalSpec(n=2000, steps=20, sampler="dpmpp-2m", features=("domain", "inception"))
        return [], pixel, ["train.minutes=7"], ev
    raise DifusionError(f"unknown --budget {budget!r}; choose small or full")


def latent_vs_pixel(budget: str, runs_root: Path, results_root: Path, progress: bool = True):
    ae, pixel, latent, ev = _settings(budget)
    suffix = "-small" if budget == "small" else ""
    first_stage = runs_root / f"latent-vs-pixel{suffix}" / "first-stage"
    train_run("vae-fmnist-spatial", ae, first_stage, progress)
    ldm = RunSpec(
        "latent DDPM, 3 + 7 min" if budget == "full" else "latent DDPM",
        "ldm-fmnist",
        [*latent, f"data.root={first_stage}"],
        run=f"latent-vs-pixel{suffix}/ldm",
    )
    exp = Experiment(
        name="latent-vs-pixel" + suffix,
        title="Latent against pixel diffusion at equal CPU-minutes",
        description="Pixel: a DDPM on 28x28 images trained 10 minutes. Latent: a first stage "
        "(KL-regularized autoencoder, 28x28 -> 4x7x7) trained 3 minutes, then a DDPM on its "
        "latents trained 7 minutes. Both sampled with DPM-Solver++(2M), 20 steps.",
        runs=[pixel, ldm],
        evaluation=ev,
        command=f"difusion experiment latent-vs-pixel --budget {budget}",
    )
    return run_experiment(exp, runs_root, results_root, progress)


CUSTOM = {"latent-vs-pixel": latent_vs_pixel}


def reconstruction_floor(first_stage: str | Path, n: int = 2000) -> dict:
    """FID-FMNIST and precision/recall of the first stage's reconstructions of n training images:
    what a latent model's samples cannot beat, since they pass through the same decoder."""
    from difusion.build import load_first_stage
    from difusion.data import load_dataset
    from difusion.evaluation import evaluate

    codec = load_first_stage(first_stage)
    name = codec.image_dataset
    x = load_dataset(name, split="train").data[:n]
    rec = codec.decode(codec.encode(x))
    result = evaluate(
        rec, None, reference=f"{name}:test", metrics=("fid", "pr"), features="domain",
        progress=False,
    )  # fmt: skip
    return {"n": n, **result.metrics}


if __name__ == "__main__":  # python -m difusion.experiments.latent FIRST_STAGE_RUN
    import sys

    print(reconstruction_floor(sys.argv[1]))
