"""Reading a finished (or interrupted) run folder back: its config and its EMA network."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from difusion.build import build_network, build_path
from difusion.config import Config
from difusion.diffusion import DDPMPath
from difusion.errors import CheckpointError
from difusion.sampling.guidance import interval_suffix
from difusion.training.checkpoint import load_checkpoint, load_module
from difusion.training.loop import CHECKPOINT, load_run_config


@dataclass
class TrainedRun:
    run_dir: Path
    config: Config
    network: torch.nn.Module  # the EMA weights, in eval mode
    path: DDPMPath
    shape: tuple[int, ...]
    num_classes: int | None
    step: int


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> TrainedRun:
    """Load ``run_dir``'s config and the EMA weights of its checkpoint: all that sampling needs."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    groups, info = load_checkpoint(run_dir / CHECKPOINT, prefixes=("ema",))
    meta = info["meta"]
    if "shape" not in meta or "ema" not in groups:
        raise CheckpointError(
            f"{run_dir / CHECKPOINT} lacks the data shape or EMA weights (an older or partial "
            "checkpoint); retrain it with this version of difusion"
        )
    shape = tuple(meta["shape"])
    network = build_network(cfg, shape, meta.get("num_classes"))
    load_module(network, groups["ema"], run_dir / CHECKPOINT)
    network.to(device).eval()
    return TrainedRun(
        run_dir, cfg, network, build_path(cfg), shape, meta.get("num_classes"), int(meta["step"])
    )


def sample_trained_run(
    run: TrainedRun,
    folder: Path,
    *,
    n: int,
    seed: int = 0,
    steps: int | None = None,
    device: torch.device | str = "cpu",
    points: torch.Tensor | None = None,
    progress: bool = True,
    sampler: str | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    guidance_rescale: float | None = None,
    class_id: int | None = None,
) -> dict[str, Path]:
    """Draw n samples from a loaded run into ``folder``, with its own sampling settings unless
    an argument overrides one (see :func:`difusion.generate.sample_run`)."""
    from difusion.generate import sample_run
    from difusion.training.precision import autocast_dtype

    amp = autocast_dtype(run.config.train.precision, torch.device(device))
    if run.config.objective == "flow":  # a velocity network: its own ODE solvers or an adapter
        from difusion.sampling.flow_sample import sample_flow_run

        if guidance_rescale:
            run.config.sample.guidance_rescale = guidance_rescale
        return sample_flow_run(
            run.config, run.network, run.shape, folder, amp, device,
            num_classes=run.num_classes, points=points, progress=progress, n=n, seed=seed,
            steps=steps, sampler=sampler, eta=eta, guidance=guidance, class_id=class_id,
        )  # fmt: skip
    return sample_run(
        run.config,
        run.network,
        run.path,
        run.shape,
        folder,
        amp,
        device,
        num_classes=run.num_classes,
        points=points,
        progress=progress,
        n=n,
        seed=seed,
        steps=steps,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        guidance_rescale=guidance_rescale,
        class_id=class_id,
    )


def samples_for_eval(
    run_dir: str | Path,
    *,
    n: int,
    seed: int = 0,
    steps: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    sampler: str = "ddpm",
    eta: float = 0.0,
    guidance: float | None = None,
    variance: str | None = None,
    guidance_interval: list[float] | None = None,
) -> tuple[Path, TrainedRun]:
    """RUN_DIR/eval-seedS-nN[-stepsK][-SAMPLER[-etaE]][-wG]/samples.npz, drawn once and reused.

    Evaluation fixes the sampler (default: ancestral DDPM) rather than taking the run's own
    ``sample.sampler``, so a number's folder name says how it was drawn. ``guidance`` None takes
    the run's ``sample.guidance``, ``guidance_interval`` None its ``sample.guidance_interval``;
    ``variance`` None the run's ``diffusion.variance`` (ddpm only).
    The wall time of the drawing is kept beside the samples in ``sampling_seconds.txt``."""
    run = load_run(run_dir, device)
    if len(run.shape) != 3:
        raise CheckpointError(f"{run_dir} is a run on 2-D points; evaluation scores images")
    suffix = "" if steps is None else f"-steps{steps}"
    if sampler != "ddpm":
        suffix += f"-{sampler}" + (f"-eta{eta:g}" if sampler == "ddim" else "")
    if guidance is None:
        guidance = run.config.sample.guidance
    if guidance_interval is not None:
        run.config.sample.guidance_interval = list(guidance_interval)
    if guidance:
        suffix += f"-w{guidance:g}"
        suffix += interval_suffix(guidance, run.config.sample.guidance_interval)
    if variance is not None and sampler == "ddpm":
        run.config.diffusion.variance = variance
        suffix += f"-{variance}"
    folder = Path(run_dir) / f"eval-seed{seed}-n{n}{suffix}"
    if not (folder / "samples.npz").exists():
        started = time.perf_counter()
        sample_trained_run(
            run,
            folder,
            n=n,
            seed=seed,
            steps=steps,
            device=device,
            progress=progress,
            sampler=sampler,
            eta=eta,
            guidance=guidance,
        )
        (folder / "sampling_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return folder / "samples.npz", run
