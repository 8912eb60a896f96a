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
from difusion.sampling import GuidedDenoiser, ModelDenoiser, PerImageNoise, seeds_for
from difusion.sampling.samplers import check_sampler, run_sampler, timesteps_for
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
    guidance: float = 0.0,
    guidance_rescale: float = 0.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    learn_sigma: bool = False,
    decode=None,
) -> Samples:
    """n samples from ``network``; image i uses seed + i, whatever the batch size.

    ``sampler`` names one of ``difusion.sampling.SAMPLERS`` (ddpm: Algorithm 2 of Ho et al. with
    ``steps`` respaced evenly; ddim: Song et al. eq. 12 with ``eta`` on a ``spacing`` grid; dpmpp-2m;
    euler and heun on the Karras grid). With ``labels`` and ``guidance`` w > 0 the denoiser is
    guided: eps = (1 + w) eps_c - w eps_u (Ho & Salimans eq. 6), at the noise fractions inside
    ``guidance_interval`` (Kynkaanniemi et al. 2024; default: all). ``trajectory`` > 0 records that
    many frames of the first batch's reverse process (x_t beside the x_0 estimate for images, the
    point cloud for 2-D data). ``decode`` maps latents to images (latent diffusion): the samples and
    the frames are decoded.
    """
    network.eval()
    check_sampler(sampler)
    images = len(shape) == 3
    denoiser = ModelDenoiser(
        network,
        path,
        prediction,
        clip_x0=clip_x0 and images,
        autocast_dtype=autocast_dtype,
        learn_sigma=learn_sigma,
    )
    if guidance or guidance_rescale:
        null = getattr(network, "num_classes", None)
        if labels is None or null is None:
            raise ConfigError("guidance needs a class-conditional model (model.class_conditional)")
        denoiser = GuidedDenoiser(
            denoiser,
            path,
            guidance,
            null,
            rescale=guidance_rescale,
            clip_x0=clip_x0 and images,
            interval=guidance_interval,
        )
    ts = timesteps_for(sampler, path, steps, spacing)
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
                frames.append(_frame(step, lim, data_for_frames, decode))

        x = run_sampler(
            sampler,
            denoiser,
            path,
            x_T,
            ts,
            eta=eta,
            variance=variance,
            y=y,
            noise=noise.randn,
            callback=callback,
        )
        out.append(x if decode is None else decode(x))
    bar.close()
    return Samples(torch.cat(out).cpu(), labels, frames, seeds)


def _frame(step, lim: float, data: torch.Tensor | None, decode=None) -> np.ndarray:
    if step.x.dim() == 2:
        return points_frame(
            step.x[:2000], data if data is not None else step.x, lim, f"t = {step.s}"
        )
    k = min(16, step.x.shape[0])
    if decode is not None:  # latent diffusion: show the decoded x_t and x_0 estimate
        pair = torch.cat([decode(step.x[:k]), decode(step.x0[:k])])
        return make_grid(pair, nrow=min(8, k), scale=default_scale(pair))
    pair = torch.cat(
        [step.x[:k].clamp(-1, 1), step.x0[:k]]
    )  # top rows x_t, bottom rows x_0 estimate
    return make_grid(pair, nrow=min(8, k), scale=default_scale(step.x))


def write_samples(
    samples: Samples, out_dir: Path, data: torch.Tensor | None = None, nrow: int | None = None
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
        written["grid"] = save_grid(samples.x, out_dir / "samples.png", nrow=nrow)
    np.savez_compressed(out_dir / "samples.npz", **arrays)
    written["npz"] = out_dir / "samples.npz"
    if samples.frames:
        written["gif"] = save_gif(samples.frames, out_dir / "trajectory.gif")
    return written


def latent_decoder(cfg: Config, device):
    """For a model of an autoencoder's latents (``data.name=latents``), the first stage's decoder."""
    if cfg.data.name != "latents":
        return None
    from difusion.data.latents import LatentCodec

    return LatentCodec(cfg.data.root, device).decode


def labels_for(
    cfg: Config, num_classes: int | None, n: int, class_id: int | None = None
) -> torch.Tensor | None:
    """For a class-conditional model: ``class_id`` for every image; else, when n is a multiple of
    the K classes, one class per grid row (n / K images each); else classes 0, 1, ... in turn."""
    if not (cfg.model.class_conditional and num_classes):
        if class_id is not None:
            raise ConfigError("--class needs a class-conditional model (model.class_conditional)")
        return None
    if class_id is not None:
        if not 0 <= class_id < num_classes:
            raise ConfigError(f"--class must be in 0..{num_classes - 1}, got {class_id}")
        return torch.full((n,), class_id, dtype=torch.long)
    if n % num_classes == 0:
        return torch.arange(n) // (n // num_classes)
    return torch.arange(n) % num_classes


def grid_columns(n: int, num_classes: int) -> int | None:
    """Images per grid row: n / K when each class has a row, else the grid's default."""
    return n // num_classes if n % num_classes == 0 else None


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
    sampler: str | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    guidance_rescale: float | None = None,
    class_id: int | None = None,
) -> dict[str, Path]:
    """A run's pictures: n samples (default ``cfg.sample.n``) with the run's sampling settings
    (``cfg.sample``; any argument given here overrides its namesake), a 40-frame trajectory GIF
    and an .npz, written to ``out_dir``. ``points`` is the 2-D training data, drawn under 2-D
    samples. A class-conditional model draws one class per grid row unless ``class_id`` is given."""
    sc = cfg.sample
    n = n or sc.n
    labels = labels_for(cfg, num_classes, n, class_id)
    samples = draw_samples(
        model,
        path,
        shape,
        n=n,
        seed=sc.seed if seed is None else seed,
        steps=steps or sc.steps,
        prediction=cfg.diffusion.prediction,
        variance=cfg.diffusion.variance,
        clip_x0=cfg.diffusion.clip_x0,
        labels=labels,
        batch_size=sc.batch_size,
        autocast_dtype=amp,
        device=device,
        trajectory=40,
        progress=progress,
        data_for_frames=points[:2000] if points is not None else None,
        sampler=sc.sampler if sampler is None else sampler,
        eta=sc.eta if eta is None else eta,
        guidance=sc.guidance if guidance is None else guidance,
        guidance_rescale=sc.guidance_rescale if guidance_rescale is None else guidance_rescale,
        guidance_interval=tuple(sc.guidance_interval),
        learn_sigma=cfg.diffusion.learn_sigma,
        decode=latent_decoder(cfg, device),
    )
    nrow = grid_columns(n, num_classes) if labels is not None and class_id is None else None
    return write_samples(samples, out_dir, points, nrow=nrow)
