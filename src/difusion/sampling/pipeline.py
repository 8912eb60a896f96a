"""One sampling pipeline for every model: a model, a settings object, samples and pictures.

A :class:`GenerativeModel` is what sampling needs of a trained network: its path, what it predicts
(eps, x0, v, mu or a flow velocity), its data shape and classes. :class:`SampleSettings` says how to
sample (the run's ``sample:`` section, any field overridable). :func:`draw_samples` builds the one
denoiser (``ModelDenoiser``, wrapped in ``GuidedDenoiser`` when guided), draws x_T per image from
its own seed and runs the named sampler; :func:`write_samples` makes the grid, the trajectory GIF
and the .npz. The CLI, ``eval``, the experiments, the metrics and the explorer all come through here.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from difusion.errors import ConfigError
from difusion.files import atomic_path
from difusion.sampling.denoiser import ModelDenoiser
from difusion.sampling.guidance import GuidedDenoiser, check_interval, interval_suffix
from difusion.sampling.noise import PerImageNoise, seeds_for
from difusion.sampling.samplers import check_sampler, run_sampler, timesteps_for
from difusion.viz import make_grid, plot_points, save_gif, save_grid
from difusion.viz.grid import default_scale
from difusion.viz.plots import points_frame

MAX_SAMPLES = 1_000_000  # more samples than any metric here uses (FID takes 50,000)


@dataclass(frozen=True)
class SampleSettings:
    """How to draw samples. ``steps`` None: the sampler's default; ``variance`` is DDPM's sigma^2
    (beta, beta_tilde or learned); ``guidance`` is w in eps = (1 + w) eps_c - w eps_u (Ho & Salimans
    eq. 6, w = 0 plain conditional), applied at noise fractions in ``guidance_interval``
    (Kynkaanniemi et al. 2024); ``class_id`` None draws one class per grid row."""

    n: int = 64
    seed: int = 0
    sampler: str = "ddpm"
    steps: int | None = None
    eta: float = 0.0
    spacing: str = "trailing"
    variance: str = "beta"
    guidance: float = 0.0
    guidance_rescale: float = 0.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    class_id: int | None = None
    batch_size: int = 256

    @classmethod
    def from_config(cls, cfg, **overrides) -> SampleSettings:
        """A run's own settings (``cfg.sample``, ``cfg.diffusion.variance``), then ``overrides``
        (None values are ignored, so CLI options that were not given keep the run's)."""
        sc = cfg.sample
        base = cls(
            n=sc.n,
            seed=sc.seed,
            sampler=sc.sampler,
            steps=sc.steps,
            eta=sc.eta,
            variance=cfg.diffusion.variance,
            guidance=sc.guidance,
            guidance_rescale=sc.guidance_rescale,
            guidance_interval=tuple(sc.guidance_interval),
            batch_size=sc.batch_size,
        )
        return base.replace(**overrides)

    def check(self) -> SampleSettings:
        """Refuse impossible settings with a one-line ConfigError; returns self."""
        import math

        from difusion.sampling.ddpm import VARIANCES

        check_sampler(self.sampler)
        if not 1 <= self.n <= MAX_SAMPLES or (self.steps is not None and self.steps < 1):
            raise ConfigError(
                f"--n must be in 1..{MAX_SAMPLES:,} and --steps positive, got {self.n} and "
                f"{self.steps}"
            )
        if self.variance not in VARIANCES:
            raise ConfigError(f"the variance must be one of: {', '.join(VARIANCES)}")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"eta must be in [0, 1], got {self.eta}")
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise ConfigError(f"the guidance scale must be a finite w >= 0, got {self.guidance}")
        if not 0.0 <= self.guidance_rescale <= 1.0:
            raise ConfigError(
                f"the guidance rescale must be in [0, 1], got {self.guidance_rescale}"
            )
        check_interval(self.guidance_interval)
        return self

    def folder_name(
        self, prefix: str, steps: int | None = None, variance: str | None = None
    ) -> str:
        """PREFIX-seedS-nN[-stepsK][-SAMPLER[-etaE]][-classC][-wG[-iLO-HI]][-VARIANCE]: a folder
        name that says how the samples were drawn (``steps``, ``variance``: when asked for)."""
        name = f"{prefix}-seed{self.seed}-n{self.n}" + ("" if steps is None else f"-steps{steps}")
        if self.sampler != "ddpm":
            name += f"-{self.sampler}" + (f"-eta{self.eta:g}" if self.sampler == "ddim" else "")
        name += "" if self.class_id is None else f"-class{self.class_id}"
        if self.guidance:
            name += f"-w{self.guidance:g}" + interval_suffix(self.guidance, self.guidance_interval)
        return name + (f"-{variance}" if variance is not None and self.sampler == "ddpm" else "")

    def replace(self, **changes) -> SampleSettings:
        """A copy with the given fields changed; None leaves a field as it is."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "guidance_interval" in changes:
            changes["guidance_interval"] = tuple(changes["guidance_interval"])
        return dataclasses.replace(self, **changes)


@dataclass
class GenerativeModel:
    """A trained network with what sampling needs to know of it."""

    network: torch.nn.Module
    path: object  # a GaussianPath
    shape: tuple[int, ...]
    prediction: str = "eps"  # eps, x0, v, mu or velocity (flow matching)
    learn_sigma: bool = False
    clip_x0: bool = True  # clamp x_0 estimates of images to [-1, 1]
    num_classes: int | None = None  # set for class-conditional models only
    grid_path: object | None = None  # the DDPM grid a continuous path borrows (samplers.py)
    decode: object | None = None  # latent diffusion: latents -> images
    autocast_dtype: torch.dtype | None = None

    @property
    def images(self) -> bool:
        return len(self.shape) == 3

    def denoiser(self, settings: SampleSettings | None = None, *, differentiable: bool = False):
        """The model's denoiser, guided when ``settings`` ask for it (guidance clips once, after
        combining the raw predictions)."""
        s = settings or SampleSettings()
        guided = bool(s.guidance or s.guidance_rescale)
        clip = self.clip_x0 and self.images
        den = ModelDenoiser(
            self.network,
            self.path,
            self.prediction,
            clip_x0=clip and not guided,
            autocast_dtype=self.autocast_dtype,
            learn_sigma=self.learn_sigma,
            differentiable=differentiable,
        )
        if not guided:
            return den
        if self.num_classes is None:
            raise ConfigError("guidance needs a class-conditional model (model.class_conditional)")
        return GuidedDenoiser(
            den,
            self.path,
            s.guidance,
            self.num_classes,
            rescale=s.guidance_rescale,
            clip_x0=clip,
            interval=check_interval(s.guidance_interval),
        )

    def labels(self, n: int, class_id: int | None = None) -> torch.Tensor | None:
        """For a class-conditional model: ``class_id`` for every image; else, when n is a multiple
        of the K classes, one class per grid row (n / K images each); else 0, 1, ... in turn."""
        return labels_for(self.num_classes, n, class_id)

    def timesteps(self, settings: SampleSettings) -> list:
        return timesteps_for(
            settings.sampler, self.path, settings.steps, settings.spacing, self.grid_path
        )


def labels_for(num_classes: int | None, n: int, class_id: int | None = None):
    """See :meth:`GenerativeModel.labels`; ``num_classes`` None: an unconditional model."""
    if not num_classes:
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


def grid_columns(n: int, num_classes: int | None) -> int | None:
    """Images per grid row: n / K when each class has a row, else the grid's default."""
    return n // num_classes if num_classes and n % num_classes == 0 else None


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
    model: GenerativeModel,
    settings: SampleSettings | None = None,
    *,
    device: torch.device | str = "cpu",
    trajectory: int = 0,
    progress: bool = True,
    data_for_frames: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    on_step=None,
) -> Samples:
    """``settings.n`` samples of ``model``; image i starts from seed + i whatever the batch size.

    x_T = prior_std * N(0, I) at the grid's first time (N(0, I) on DDPM and the rectified flow).
    ``trajectory`` > 0 records that many frames of the first batch's reverse process (x_t beside the
    x_0 estimate for images, the point cloud for 2-D data). ``labels`` overrides the class layout.
    ``on_step(start, step)`` sees every step of the batch that begins at sample ``start``.
    """
    s = (settings or SampleSettings()).check()
    model.network.eval()
    denoiser = model.denoiser(s)
    if labels is None:
        labels = model.labels(s.n, s.class_id)
    ts = model.timesteps(s)
    prior = model.path.prior_std(ts[0])
    seeds = seeds_for(s.n, s.seed)
    record = set(np.linspace(0, len(ts) - 2, trajectory).round().astype(int).tolist())
    frames: list[np.ndarray] = []
    out = []
    bar = tqdm(
        total=s.n * (len(ts) - 1),
        desc="sampling",
        unit="step",
        unit_scale=1 / max(1, s.n),
        disable=not progress,
        mininterval=bar_interval(),
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} steps [{elapsed}<{remaining}]",
    )
    lim = float(data_for_frames.abs().max()) * 1.3 if data_for_frames is not None else 3.0
    for start in range(0, s.n, s.batch_size):
        chunk = seeds[start : start + s.batch_size]
        noise = PerImageNoise(chunk, device)
        x_T = noise.randn((len(chunk), *model.shape))
        if abs(prior - 1.0) > 1e-12:  # DDPM and the rectified flow start from N(0, I)
            x_T = prior * x_T
        y = labels[start : start + len(chunk)].to(device) if labels is not None else None

        k = len(chunk)

        def callback(step, first=(start == 0), k=k, start=start):
            bar.update(k)
            if on_step is not None:
                on_step(start, step)
            if first and trajectory and step.index in record:
                frames.append(_frame(step, lim, data_for_frames, model.decode))

        x = run_sampler(
            s.sampler,
            denoiser,
            model.path,
            x_T,
            ts,
            eta=s.eta,
            variance=s.variance,
            y=y,
            noise=noise.randn,
            callback=callback,
        )
        out.append(x if model.decode is None else model.decode(x))
    bar.close()
    return Samples(torch.cat(out).cpu(), labels, frames, seeds)


def _frame(step, lim: float, data: torch.Tensor | None, decode=None) -> np.ndarray:
    if step.x.dim() == 2:
        return points_frame(
            step.x[:2000], data if data is not None else step.x, lim, f"t = {step.s:g}"
        )
    k = min(16, step.x.shape[0])
    if decode is not None:  # latent diffusion: show the decoded x_t and x_0 estimate
        pair = torch.cat([decode(step.x[:k]), decode(step.x0[:k])])
        return make_grid(pair, nrow=min(8, k), scale=default_scale(pair))
    pair = torch.cat([step.x[:k].clamp(-1, 1), step.x0[:k]])  # top rows x_t, bottom x_0 estimate
    return make_grid(pair, nrow=min(8, k), scale=default_scale(step.x))


def write_samples(
    samples: Samples, out_dir: Path, data: torch.Tensor | None = None, nrow: int | None = None
) -> dict[str, Path]:
    """samples.png (or samples_scatter.png for points), trajectory.gif and samples.npz in ``out_dir``,
    each written atomically (a reader, a kill or a full disk never sees half a file)."""
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
    if samples.frames:
        written["gif"] = save_gif(samples.frames, out_dir / "trajectory.gif")
    # last: a samples.npz says the folder is complete (eval reuses it, experiments look for it)
    with atomic_path(out_dir / "samples.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # to a file object: no .npz appended to the name
    written["npz"] = out_dir / "samples.npz"
    return written


def sample_to_folder(
    model: GenerativeModel,
    settings: SampleSettings,
    out_dir: Path,
    *,
    device: torch.device | str = "cpu",
    points: torch.Tensor | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """A run's pictures: the samples (one class per grid row for a class-conditional model unless
    ``settings.class_id``), a 40-frame trajectory GIF and the .npz, written to ``out_dir``.
    ``points`` is the 2-D training data, drawn under 2-D samples."""
    samples = draw_samples(
        model,
        settings,
        device=device,
        trajectory=40,
        progress=progress,
        data_for_frames=points[:2000] if points is not None else None,
    )
    by_class = samples.labels is not None and settings.class_id is None
    nrow = grid_columns(settings.n, model.num_classes) if by_class else None
    return write_samples(samples, Path(out_dir), points, nrow=nrow)
