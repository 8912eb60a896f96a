"""Drawing samples from a trained network and writing the pictures: grid, GIF, scatter, .npz."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from difusion.config import Config
from difusion.errors import ConfigError
from difusion.sampling import (
    ModelDenoiser,
    PerImageNoise,
    respaced_timesteps,
    sample_ddpm,
    seeds_for,
)
from difusion.sampling.ddim import ddim_timesteps, sample_ddim
from difusion.viz import make_grid, plot_points, save_gif, save_grid
from difusion.viz.grid import default_scale
from difusion.viz.plots import points_frame


def bar_interval() -> float:
    """Seconds between progress-bar refreshes: live on a terminal, sparse in a log file."""
    return 0.2 if sys.stderr.isatty() else 15.0


@dataclass
class Samples:
    x: torch.Tensor  # (N, C, H, W) images in [-1, 1] or (N, D) points
    labels: torch.Tensor | None
    frames: list[np.ndarray]  # the trajectory of the first images, as pictures
    seeds: list[int]


@torch.no_grad()
def draw_samples(
    network: torch.nn.Module,
    path,
    shape: tuple[int, ...],
    *,
    n: int = 64,
    seed: int = 0,
    steps: int | None = None,
    prediction: str = "eps",
    variance: str = "beta",
    clip_x0: bool = True,
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    trajectory: int = 0,
    progress: bool = True,
    data_for_frames: torch.Tensor | None = None,
    sampler: str = "ddpm",
    eta: float = 0.0,
    spacing: str = "trailing",
) -> Samples:
    """n samples with DDPM ancestral sampling; image i uses seed + i, whatever the batch size.

    ``sampler`` is ``ddpm`` (Algorithm 2; ``steps`` respaced evenly) or ``ddim`` (Song et al. eq. 12
    with ``eta`` and a ``spacing`` of its time grid). ``trajectory`` > 0 records that many frames of the first batch's reverse process (x_t beside the
    x_0 estimate for images, the point cloud for 2-D data).
    """
    network.eval()
    denoiser = ModelDenoiser(
        network,
        path,
        prediction,
        clip_x0=clip_x0 and len(shape) == 3,
        autocast_dtype=autocast_dtype,
    )
    if sampler == "ddpm":
        ts = respaced_timesteps(path.T, steps or path.T)
    elif sampler == "ddim":
        ts = ddim_timesteps(path.T, min(steps or 50, path.T), spacing)
    else:
        raise ConfigError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
    seeds = seeds_for(n, seed)
    record = (
        set(np.linspace(0, len(ts) - 2, trajectory).round().astype(int).tolist())
        if trajectory
        else set()
    )
    frames: list[np.ndarray] = []
    out = []
    bar = tqdm(
        total=n * (len(ts) - 1),
        desc="sampling",
        unit="step",
        unit_scale=1 / max(1, n),
        disable=not progress,
        mininterval=bar_interval(),
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} steps [{elapsed}<{remaining}]",
    )
    for start in range(0, n, batch_size):
        chunk = seeds[start : start + batch_size]
        noise = PerImageNoise(chunk, device)
        x_T = noise.randn((len(chunk), *shape))
        y = labels[start : start + len(chunk)].to(device) if labels is not None else None
        lim = float(data_for_frames.abs().max()) * 1.3 if data_for_frames is not None else 3.0

        k = len(chunk)

        def callback(step, first=(start == 0), k=k, lim=lim):
            bar.update(k)
            if first and step.index in record:
                frames.append(_frame(step, lim, data_for_frames))

        if sampler == "ddpm":
            x = sample_ddpm(
                denoiser,
                path,
                x_T,
                timesteps=ts,
                variance=variance,
                y=y,
                noise=noise.randn,
                callback=callback,
            )
        else:
            x = sample_ddim(
                denoiser, path, x_T, ts, eta=eta, y=y, noise=noise.randn, callback=callback
            )
        out.append(x)
    bar.close()
    return Samples(torch.cat(out).cpu(), labels, frames, seeds)


def _frame(step, lim: float, data: torch.Tensor | None) -> np.ndarray:
    if step.x.dim() == 2:
        return points_frame(
            step.x[:2000], data if data is not None else step.x, lim, f"t = {step.s}"
        )
    k = min(16, step.x.shape[0])
    pair = torch.cat(
        [step.x[:k].clamp(-1, 1), step.x0[:k]]
    )  # top rows x_t, bottom rows x_0 estimate
    return make_grid(pair, nrow=min(8, k), scale=default_scale(step.x))


def write_samples(
    samples: Samples, out_dir: Path, data: torch.Tensor | None = None
) -> dict[str, Path]:
    """samples.png (or samples_scatter.png for points), trajectory.gif and samples.npz in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    arrays = {"seeds": np.asarray(samples.seeds)}
    if samples.labels is not None:
        arrays["labels"] = samples.labels.numpy()
    if samples.x.dim() == 2:
        arrays["points"] = samples.x.float().numpy()
        written["scatter"] = plot_points(
            samples.x, data if data is not None else samples.x, out_dir / "samples_scatter.png"
        )
    else:
        arrays["images"] = samples.x.float().clamp(-1, 1).numpy()
        written["grid"] = save_grid(samples.x, out_dir / "samples.png")
    np.savez_compressed(out_dir / "samples.npz", **arrays)
    written["npz"] = out_dir / "samples.npz"
    if samples.frames:
        written["gif"] = save_gif(samples.frames, out_dir / "trajectory.gif")
    return written


def labels_for(cfg: Config, num_classes: int | None, n: int) -> torch.Tensor | None:
    """For a class-conditional model: classes 0, 1, 2, ... in turn, one row per class."""
    if not (cfg.model.class_conditional and num_classes):
        return None
    return torch.arange(n) % num_classes


def sample_run(
    cfg: Config,
    model: torch.nn.Module,
    path,
    shape: tuple[int, ...],
    out_dir: Path,
    amp: torch.dtype | None,
    device,
    *,
    num_classes: int | None = None,
    points: torch.Tensor | None = None,
    progress: bool = True,
    n: int | None = None,
    seed: int | None = None,
    steps: int | None = None,
    sampler: str = "ddpm",
    eta: float = 0.0,
) -> dict[str, Path]:
    """A run's pictures: n samples (default ``cfg.sample.n``) with the run's sampling settings,
    a 40-frame trajectory GIF and an .npz, written to ``out_dir``. ``points`` is the 2-D
    training data, drawn under 2-D samples."""
    n = n or cfg.sample.n
    samples = draw_samples(
        model,
        path,
        shape,
        n=n,
        seed=cfg.sample.seed if seed is None else seed,
        steps=steps or cfg.sample.steps,
        prediction=cfg.diffusion.prediction,
        variance=cfg.diffusion.variance,
        clip_x0=cfg.diffusion.clip_x0,
        labels=labels_for(cfg, num_classes, n),
        batch_size=cfg.sample.batch_size,
        autocast_dtype=amp,
        device=device,
        trajectory=40,
        progress=progress,
        data_for_frames=points[:2000] if points is not None else None,
        sampler=sampler,
        eta=eta,
    )
    return write_samples(samples, out_dir, points)
