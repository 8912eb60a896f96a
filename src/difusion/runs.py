"""Reading a finished (or interrupted) run folder back: its config, its EMA network and the model
that sampling sees, for the CLI, ``eval``, the experiments, the metrics and the explorer.

Below training in the layers: it reads checkpoints through :mod:`difusion.checkpoint`, so a training
objective can read a finished run too (reflow trains on a teacher run's samples)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from difusion.build import build_model, build_network
from difusion.checkpoint import CHECKPOINT, load_checkpoint, load_module
from difusion.config import Config, load_run_config
from difusion.errors import CheckpointError
from difusion.files import write_text
from difusion.precision import autocast_dtype
from difusion.sampling.diffusers_bridge import imported_network
from difusion.sampling.pipeline import GenerativeModel, SampleSettings, sample_to_folder


@dataclass
class TrainedRun:
    run_dir: Path
    config: Config
    model: GenerativeModel  # the EMA network, its path, prediction, shape and classes
    num_classes: int | None  # the data's classes (the model uses them if class-conditional)
    step: int

    @property
    def network(self) -> torch.nn.Module:
        return self.model.network

    @property
    def path(self):
        return self.model.path

    @property
    def shape(self) -> tuple[int, ...]:
        return self.model.shape

    def settings(self, **overrides) -> SampleSettings:
        """The run's own sampling settings (``sample:``), with ``overrides`` (None: keep)."""
        return SampleSettings.from_config(self.config, **overrides)


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
    # a run made by `difusion import` holds a diffusers UNet2DModel (sampling/diffusers_bridge.py)
    network = imported_network(run_dir)
    if network is None:
        network = build_network(cfg, shape, meta.get("num_classes"))
    load_module(network, groups["ema"], run_dir / CHECKPOINT)
    network.to(device).eval()
    amp = autocast_dtype(cfg.train.precision, torch.device(device))
    model = build_model(
        cfg, network, shape, meta.get("num_classes"), autocast_dtype=amp, device=device
    )
    return TrainedRun(run_dir, cfg, model, meta.get("num_classes"), int(meta["step"]))


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
    The wall time of the drawing is kept beside the samples in ``sampling_seconds.txt``. Cached
    samples are reused only if :func:`cached_samples_fit` (else they are drawn again)."""
    run = load_run(run_dir, device)
    if len(run.shape) != 3:
        raise CheckpointError(f"{run_dir} is a run on 2-D points; evaluation scores images")
    settings = run.settings(
        n=n,
        seed=seed,
        steps=steps,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        guidance_interval=guidance_interval,
        variance=variance if sampler == "ddpm" else None,
    )
    folder = Path(run_dir) / settings.folder_name("eval", steps, variance)
    if not cached_samples_fit(folder / "samples.npz", n, run.shape, Path(run_dir) / CHECKPOINT):
        started = time.perf_counter()
        sample_to_folder(run.model, settings, folder, device=device, progress=progress)
        write_text(folder / "sampling_seconds.txt", f"{time.perf_counter() - started:.1f}\n")
    return folder / "samples.npz", run


def cached_samples_fit(path: Path, n: int, shape: tuple[int, ...], checkpoint: Path) -> bool:
    """Whether ``path`` is a samples.npz to reuse: it loads, holds ``n`` finite ``images`` of
    ``shape``, and was drawn after ``checkpoint`` was written (not from an earlier model of a
    resumed or overwritten run)."""
    try:
        if path.stat().st_mtime < checkpoint.stat().st_mtime:
            return False
        with np.load(path) as f:
            images = f["images"]
    except Exception:  # missing, truncated, not a zip, no images: draw them again
        return False
    return images.shape == (n, *shape) and bool(np.isfinite(images).all())
