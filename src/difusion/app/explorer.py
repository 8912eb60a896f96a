"""The functions behind the explorer's tabs: forward process, reverse process, compare, latent space.

Each takes plain values (a run name, a sampler, a step count, a seed) and returns pictures as uint8
arrays (H, W, 3) plus numbers, so they can be tested without a browser. Inputs from the page are
bounded here (``LIMITS``) and a bad one raises :class:`difusion.errors.DifusionError` with a
one-line message that the page shows. Only run folders the explorer was started with (or folders
under its ``root``) can be opened: :class:`RunRegistry` refuses any other path.
"""

from __future__ import annotations

import functools
import math
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import yaml

from difusion.diffusion import SCHEDULES, DDPMPath
from difusion.errors import DifusionError
from difusion.generate import latent_decoder
from difusion.sampling import GuidedDenoiser, ModelDenoiser, PerImageNoise, seeds_for
from difusion.sampling.samplers import (
    SAMPLERS,
    check_sampler,
    network_evaluations,
    run_sampler,
    timesteps_for,
)

if TYPE_CHECKING:  # difusion.runs and difusion.viz pull in matplotlib: imported when first used
    from difusion.runs import TrainedRun


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1):
    """:func:`difusion.viz.grid.make_grid`, imported on first use (keeps start-up quick)."""
    from difusion.viz.grid import make_grid as grid

    return grid(images, nrow=nrow, pad=pad, scale=scale)


def default_scale(images: torch.Tensor) -> int:
    """An upscale that makes small images readable (:func:`difusion.viz.grid.default_scale`)."""
    return max(1, 96 // images.shape[-1]) if images.shape[-1] < 96 else 1


@dataclass(frozen=True)
class Limits:
    """Bounds on what the page may ask for, so one click cannot tie up the machine for hours."""

    max_steps: int = 1000  # sampling steps
    max_n: int = 64  # images (or 2-D point clouds of up to max_points) per request
    max_points: int = 4000  # 2-D samples per request
    max_T: int = 4000  # forward-process tab: length of the schedule
    max_side: int = 128  # uploaded images are shrunk to at most this many pixels a side
    max_upload_side: int = 4096  # larger uploads are refused
    max_guidance: float = 20.0
    max_sweep: int = 8  # guidance scales in one sweep
    max_toy_steps: int = 5000  # training steps of the 2-D model trained on the fly


LIMITS = Limits()
FORWARD_DATASETS = ("fashion-mnist", "digits", "toy2d")


class RunRefused(DifusionError):
    """A run the explorer was not started with: the page may not open arbitrary paths."""


def _check_int(name: str, value, low: int, high: int) -> int:
    """``value`` as an int in [low, high], or a one-line error naming the field and its bounds."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DifusionError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != round(number):
        raise DifusionError(f"{name} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise DifusionError(f"{name} must be between {low} and {high}, got {int(number)}")
    return int(number)


def _check_float(name: str, value, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DifusionError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise DifusionError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


# -- which runs the page may open -------------------------------------------------------------------


def run_objective(run_dir: Path) -> str:
    """What a run folder trained, read from its config.yaml: ``diffusion`` (the default),
    ``autoencoder``, ...; ``missing`` when there is no readable config.yaml."""
    try:
        values = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "missing"
    return str(values.get("objective", "diffusion")) if isinstance(values, dict) else "missing"


class RunRegistry:
    """The run folders the page may open: those named on the command line, folders under
    ``root``, and models trained from the page. Anything else is refused, whatever its path."""

    def __init__(self, run_dirs: Sequence[str | Path] = (), root: str | Path | None = None):
        self.root = Path(root).resolve() if root is not None else None
        self._runs: dict[str, Path] = {}
        for d in run_dirs:
            self.add(str(d), Path(d))
        if self.root is not None and self.root.is_dir():
            for cfg in sorted(self.root.glob("**/config.yaml")):
                rel = cfg.parent.relative_to(self.root)
                if len(rel.parts) <= 3 and not any(p.startswith("eval-") for p in rel.parts):
                    self.add(str(rel), cfg.parent)
        self._loaded: dict[Path, tuple[float, TrainedRun]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, run_dir: Path) -> str:
        """Allow ``run_dir`` under the label ``name`` (what the page's run menu shows)."""
        self._runs[name] = Path(run_dir).resolve()
        return name

    def names(self, objective: str | None = None) -> list[str]:
        """The labels of the allowed runs (only those of one ``objective`` if given)."""
        return [n for n, p in self._runs.items() if objective in (None, run_objective(p))]

    def resolve(self, name: str | None) -> Path:
        """The folder of an allowed run; :class:`RunRefused` for any other name or path."""
        if not name:
            raise DifusionError(
                "no run chosen: start the explorer with run folders (`difusion explore RUN_DIR`) "
                "or train the tiny 2-D model on the Reverse process tab"
            )
        name = str(name).strip()
        if name in self._runs:
            return self._runs[name]
        if self.root is not None and not Path(name).is_absolute():
            candidate = (self.root / name).resolve()  # resolves '..' and symlinks before the check
            if candidate.is_relative_to(self.root) and (candidate / "config.yaml").is_file():
                return candidate
        where = f" or folders under {self.root}" if self.root is not None else ""
        raise RunRefused(
            f"refused: {name!r} is not one of the runs this explorer was started with{where}; "
            "restart it with `difusion explore RUN_DIR` (or --root DIR) to open another"
        )

    def load(self, name: str | None) -> TrainedRun:
        """The allowed run ``name``, loaded once (again if its checkpoint changed). A missing or
        broken run raises a one-line :class:`DifusionError` for the page to show."""
        run_dir = self.resolve(name)
        objective = run_objective(run_dir)
        if objective == "missing":
            raise DifusionError(
                f"{name}: no readable config.yaml in {run_dir} (missing, or not a run folder)"
            )
        if objective != "diffusion":
            raise DifusionError(
                f"{name} is a {objective} run, not a diffusion model; see the Latent space tab"
            )
        ckpt = run_dir / "checkpoint.safetensors"
        if not ckpt.is_file():
            raise DifusionError(f"{name}: no checkpoint.safetensors yet (is it still training?)")
        with self._lock:
            stamp = ckpt.stat().st_mtime
            cached = self._loaded.get(run_dir)
            if cached is None or cached[0] != stamp:
                from difusion.runs import load_run

                try:
                    run = load_run(run_dir, "cpu")
                except DifusionError as e:
                    raise DifusionError(f"{name}: {e}") from None
                except Exception as e:  # a torn or foreign file: say so on the page, do not crash
                    raise DifusionError(
                        f"{name}: could not read the run ({type(e).__name__}: {e})"
                    ) from None
                self._loaded[run_dir] = cached = (stamp, run)
            return cached[1]


# -- tab 1: the forward process ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _dataset(name: str) -> tuple[torch.Tensor, list[str] | None]:
    from difusion.data import load_dataset

    if name == "toy2d":
        ds = load_dataset("toy2d", n=2000, seed=0)
    else:
        ds = load_dataset(name, split="test")  # the smaller split: quick to load, enough to browse
    return ds.data, ds.class_names


def dataset_example(name: str, index: int) -> torch.Tensor:
    """Image ``index`` of a dataset's test split as (C, H, W) in [-1, 1]; for ``toy2d`` the whole
    cloud of 2,000 points (N, 2), which is the 'example' whose diffusion is worth watching."""
    if name not in FORWARD_DATASETS:
        raise DifusionError(
            f"unknown dataset {name!r}; choose one of: {', '.join(FORWARD_DATASETS)}"
        )
    data, _ = _dataset(name)
    if name == "toy2d":
        return data
    index = _check_int("image index", index, 0, data.shape[0] - 1)
    return data[index]


def image_from_upload(array: np.ndarray, max_side: int = LIMITS.max_side) -> torch.Tensor:
    """An uploaded picture (H, W[, C]) uint8 as (C, H', W') in [-1, 1]: center-cropped to a square
    and shrunk to at most ``max_side`` pixels a side; grayscale stays one channel."""
    array = np.asarray(array)
    if array.ndim not in (2, 3) or array.shape[0] < 2 or array.shape[1] < 2:
        raise DifusionError(f"the upload is not an image (array of shape {array.shape})")
    h, w = array.shape[:2]
    if max(h, w) > LIMITS.max_upload_side:
        raise DifusionError(
            f"the upload is {w}x{h} pixels; give an image of at most "
            f"{LIMITS.max_upload_side} pixels a side"
        )
    x = torch.from_numpy(array.astype(np.float32) / 127.5 - 1.0)
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)[:3]  # drop an alpha channel
    if x.shape[0] == 3 and bool((x[0] == x[1]).all() and (x[1] == x[2]).all()):
        x = x[:1]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top : top + side, left : left + side]
    if side > max_side:
        x = torch.nn.functional.interpolate(
            x[None], size=(max_side, max_side), mode="bilinear", antialias=True
        )[0]
    return x.clamp(-1, 1).contiguous()


@functools.lru_cache(maxsize=16)
def _path(schedule: str, T: int) -> DDPMPath:
    return DDPMPath.from_schedule(schedule, T)


def schedule_path(schedule: str, T) -> DDPMPath:
    """The DDPM path of a named schedule with T steps, with T bounded for the page."""
    if schedule not in SCHEDULES:
        raise DifusionError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return _path(schedule, _check_int("T", T, 2, LIMITS.max_T))


def noise_level(path: DDPMPath, t: int) -> dict[str, float]:
    """alpha_bar_t, SNR_t = alpha_bar_t / (1 - alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t)
    (Ho et al. eq. 4; Kingma et al. 2021 for the SNR) at one integer time t (SNR = inf at t = 0)."""
    a = float(path.alpha_bar[t])
    snr = math.inf if t == 0 else a / (1.0 - a)
    return {"t": t, "alpha_bar": a, "snr": snr, "sigma": math.sqrt(max(0.0, 1.0 - a))}


def forward_sample(path: DDPMPath, x0: torch.Tensor, t: int, seed: int = 0) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) (Ho et al. eq. 4): sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
    with eps drawn from ``seed``, so moving t with a fixed seed shows one noise being scaled in."""
    t = _check_int("t", t, 0, path.T)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(seed)))
    x0 = x0.to(torch.float32)
    return path.q_sample(x0[None], t, eps[None])[0]


def picture(x: torch.Tensor, data: torch.Tensor | None = None, label: str = "") -> np.ndarray:
    """What a person sees of one example: a (C, H, W) image enlarged, or a 2-D cloud (N, 2) drawn
    over ``data`` in grey."""
    if x.dim() == 2:
        from difusion.viz.plots import points_frame

        ref = data if data is not None else x
        return points_frame(
            x, ref, float(ref.abs().max()) * 1.3 if data is not None else 3.5, label
        )
    scale = max(1, 192 // x.shape[-1])
    return make_grid(x[None], nrow=1, pad=0, scale=scale)


def schedule_curves(T: int, t: int, chosen: str = "linear") -> np.ndarray:
    """alpha_bar_t, SNR_t (log scale) and sigma_t against t for the linear, cosine and sigmoid
    schedules at this T (Ho et al. eq. 4; Nichol & Dhariwal eq. 17), with the chosen t marked."""
    import matplotlib.pyplot as plt

    T = _check_int("T", T, 2, LIMITS.max_T)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.8), dpi=90)
    ts = np.arange(1, T + 1)
    for name in SCHEDULES:
        try:
            path = schedule_path(name, T)
        except DifusionError:  # linear/sigmoid are not defined for tiny T: leave them out
            continue
        a = path.alpha_bar.numpy()[1:]
        lw, alpha = (2.4, 1.0) if name == chosen else (1.2, 0.6)
        axes[0].plot(ts, a, lw=lw, alpha=alpha, label=name)
        axes[1].plot(ts, a / np.maximum(1 - a, 1e-300), lw=lw, alpha=alpha, label=name)
        axes[2].plot(ts, np.sqrt(1 - a), lw=lw, alpha=alpha, label=name)
    for ax, title in zip(
        axes, ("alpha_bar_t", "SNR_t (log scale)", "noise level sigma_t"), strict=True
    ):
        ax.axvline(t, color="k", lw=1, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


@dataclass
class ForwardView:
    x_t: np.ndarray  # the picture of x_t
    strip: np.ndarray  # x_t at 8 times from 0 to T with the same noise
    curves: np.ndarray
    level: dict[str, float]


def forward_view(
    x0: torch.Tensor, schedule: str, T, t, seed=0, data: torch.Tensor | None = None
) -> ForwardView:
    """Everything the forward-process tab shows for one example x_0 at time t."""
    path = schedule_path(schedule, T)
    t = _check_int("t", t, 0, path.T)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    x_t = forward_sample(path, x0, t, seed)
    times = np.linspace(0, path.T, 8).round().astype(int).tolist()
    if x0.dim() == 2:
        frames = [picture(forward_sample(path, x0, s, seed), data, f"t = {s}") for s in times]
        strip = np.concatenate(frames, axis=1)
    else:
        column = torch.stack([forward_sample(path, x0, s, seed) for s in times])
        strip = make_grid(column, nrow=len(times), scale=max(1, 96 // x0.shape[-1]))
    return ForwardView(
        picture(x_t, data, f"t = {t}"),
        strip,
        schedule_curves(path.T, t, schedule),
        noise_level(path, t),
    )


# -- tab 2: the reverse process ---------------------------------------------------------------------


@dataclass
class Trajectory:
    """A reverse process: the samples, and x_t and the x_0 estimate of the first samples (images)
    or of the whole cloud (2-D) at up to ``frames`` steps, with the times visited."""

    samples: torch.Tensor
    labels: torch.Tensor | None
    times: list[float] = field(default_factory=list)  # the time s reached after each recorded step
    x_t: list[torch.Tensor] = field(default_factory=list)
    x0: list[torch.Tensor] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the sampler alone
    nfe: int = 0  # network evaluations per sample


def class_labels(run: TrainedRun, n: int, class_id) -> torch.Tensor | None:
    """Labels for a class-conditional run: ``class_id`` for all n samples, or classes 0, 1, ... in
    turn when it is None or -1; None for an unconditional run (where a class is an error)."""
    conditional = bool(run.config.model.class_conditional and run.num_classes)
    if class_id in (None, "", -1):
        return torch.arange(n) % run.num_classes if conditional else None
    class_id = _check_int("class", class_id, 0, (run.num_classes or 1) - 1)
    if not conditional:
        raise DifusionError(f"{run.run_dir.name} is not class-conditional; leave the class empty")
    return torch.full((n,), class_id, dtype=torch.long)


@torch.no_grad()
def reverse_process(
    run: TrainedRun,
    *,
    sampler: str = "dpmpp-2m",
    steps=20,
    seed=0,
    n=16,
    class_id=None,
    guidance=0.0,
    eta=0.0,
    frames: int = 40,
    keep: int = 16,
    interval: tuple[float, float] | None = None,
) -> Trajectory:
    """Sample ``run`` from x_T ~ N(0, I) down to t = 0 with a named sampler (see
    ``difusion.sampling.samplers``), guided by eps = (1 + w) eps_c - w eps_u (Ho & Salimans eq. 6)
    when ``guidance`` w > 0, recording x_t and the x_0 estimate of the first ``keep`` samples at
    ``frames`` evenly spaced steps. Sample i uses seed + i, as ``difusion sample`` does.

    Guidance acts only at noise fractions in ``interval`` (Kynkaanniemi et al. 2024); None means
    the run's ``sample.guidance_interval``, as ``difusion sample`` does."""
    check_sampler(sampler)
    steps = _check_int("steps", steps, 1, LIMITS.max_steps)
    images = len(run.shape) == 3
    n = _check_int("samples", n, 1, LIMITS.max_n if images else LIMITS.max_points)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    guidance = _check_float("guidance", guidance, 0.0, LIMITS.max_guidance)
    eta = _check_float("eta", eta, 0.0, 1.0)
    labels = class_labels(run, n, class_id)
    cfg = run.config
    clip = cfg.diffusion.clip_x0 and images
    denoiser = ModelDenoiser(
        run.network, run.path, cfg.diffusion.prediction, clip_x0=clip,
        learn_sigma=cfg.diffusion.learn_sigma,
    )  # fmt: skip
    decode = latent_decoder(cfg, "cpu")  # a model of latents: show decoded images
    if guidance > 0:
        if labels is None:
            raise DifusionError(
                f"{run.run_dir.name} is not class-conditional, so guidance must be 0"
            )
        if interval is None:
            interval = tuple(cfg.sample.guidance_interval)
        denoiser = GuidedDenoiser(
            denoiser, run.path, guidance, run.num_classes, clip_x0=clip, interval=interval
        )
    ts = timesteps_for(sampler, run.path, steps)
    record = set(np.linspace(0, len(ts) - 2, min(frames, len(ts) - 1)).round().astype(int).tolist())
    out = Trajectory(samples=torch.empty(0), labels=labels, nfe=network_evaluations(sampler, ts))
    k = keep if images else n

    def callback(step) -> None:
        if step.index in record:
            out.times.append(float(step.s))
            x_t, x0 = step.x[:k].clone(), step.x0[:k].clone()
            out.x_t.append(x_t if decode is None else decode(x_t))
            out.x0.append(x0 if decode is None else decode(x0))

    noise = PerImageNoise(seeds_for(n, seed))
    x_T = noise.randn((n, *run.shape))
    started = time.perf_counter()
    x = run_sampler(
        sampler,
        denoiser,
        run.path,
        x_T,
        ts,
        eta=eta,
        variance=cfg.diffusion.variance,
        y=labels,
        noise=noise.randn,
        callback=callback,
    )
    out.seconds = time.perf_counter() - started
    out.samples = x if decode is None else decode(x)
    return out


def samples_picture(x: torch.Tensor, data: torch.Tensor | None = None, nrow=None) -> np.ndarray:
    """A grid of (N, C, H, W) samples, or the 2-D samples over the data."""
    if x.dim() == 2:
        return picture(x, data, "samples")
    return make_grid(x, nrow=nrow, scale=default_scale(x))


def trajectory_strip(traj: Trajectory, columns: int = 10, data=None) -> np.ndarray:
    """The first sample's reverse process as a strip: x_t on top, the x_0 estimate below, at
    ``columns`` evenly spaced recorded steps (2-D: the cloud x_t at those steps)."""
    picks = np.linspace(0, len(traj.times) - 1, min(columns, len(traj.times))).round().astype(int)
    if traj.samples.dim() == 2:
        return np.concatenate(
            [picture(traj.x_t[i], data, f"t = {traj.times[i]:.4g}") for i in picks], axis=1
        )
    top = torch.stack([traj.x_t[i][0].clamp(-1, 1) for i in picks])
    bottom = torch.stack([traj.x0[i][0] for i in picks])
    return make_grid(torch.cat([top, bottom]), nrow=len(picks), scale=default_scale(top))


def trajectory_frames(traj: Trajectory, data=None) -> list[np.ndarray]:
    """One picture per recorded step for the animation: the first samples' x_t above their x_0
    estimates (as in a run's trajectory.gif), or the 2-D cloud."""
    if traj.samples.dim() == 2:
        return [picture(x, data, f"t = {s:.4g}") for x, s in zip(traj.x_t, traj.times, strict=True)]
    frames = []
    for x, x0 in zip(traj.x_t, traj.x0, strict=True):
        k = min(8, x.shape[0])
        frames.append(
            make_grid(torch.cat([x[:k].clamp(-1, 1), x0[:k]]), nrow=k, scale=default_scale(x))
        )
    return frames


def save_animation(frames: list[np.ndarray], folder: str | Path | None = None) -> Path:
    """The frames as a looping GIF in ``folder`` (default: a fresh temporary folder)."""
    from difusion.viz import save_gif

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="difusion-"))
    return save_gif(frames, folder / "trajectory.gif")


def run_data(run: TrainedRun) -> torch.Tensor | None:
    """The 2-D training data of a point run (drawn under its samples); None for image runs."""
    if len(run.shape) != 1:
        return None
    from difusion.build import build_dataset

    return build_dataset(run.config).data[:2000]


def run_summary(run: TrainedRun) -> str:
    """One line about a run: data, shape, step, schedule, prediction and whether it has classes."""
    cfg = run.config
    classes = f", {run.num_classes} classes" if cfg.model.class_conditional else ""
    return (
        f"{cfg.data.name} {'x'.join(map(str, run.shape))}, step {run.step}, "
        f"{cfg.diffusion.schedule} schedule T = {run.path.T}, predicts {cfg.diffusion.prediction}"
        f"{classes}"
    )


# -- tab 3: compare ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    left: Trajectory
    right: Trajectory
    mean_abs_difference: float  # mean |x_left - x_right| over all pixels / coordinates


def compare_samplers(
    run: TrainedRun,
    a: tuple[str, int],
    b: tuple[str, int],
    *,
    seed=0,
    n=16,
    class_id=None,
    guidance=0.0,
    eta=0.0,
) -> Comparison:
    """The same seeds (hence the same x_T) under two (sampler, steps) settings, side by side."""
    left = reverse_process(
        run,
        sampler=a[0],
        steps=a[1],
        seed=seed,
        n=n,
        class_id=class_id,
        guidance=guidance,
        eta=eta,
        frames=1,
    )
    right = reverse_process(
        run,
        sampler=b[0],
        steps=b[1],
        seed=seed,
        n=n,
        class_id=class_id,
        guidance=guidance,
        eta=eta,
        frames=1,
    )
    diff = float((left.samples - right.samples).abs().mean())
    return Comparison(left, right, diff)


def parse_scales(text: str) -> list[float]:
    """Guidance scales typed as '0, 1, 2, 4': each in [0, max_guidance], at most max_sweep."""
    parts = [p for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise DifusionError("give guidance scales separated by commas, e.g. 0, 1, 2, 4")
    if len(parts) > LIMITS.max_sweep:
        raise DifusionError(f"at most {LIMITS.max_sweep} guidance scales, got {len(parts)}")
    return [_check_float("guidance", p, 0.0, LIMITS.max_guidance) for p in parts]


def guidance_sweep(
    run: TrainedRun,
    scales: Sequence[float],
    *,
    class_id=0,
    n_per_scale=8,
    seed=0,
    sampler: str = "dpmpp-2m",
    steps=20,
) -> tuple[np.ndarray, list[Trajectory]]:
    """One row per guidance scale w, each from the same seeds (the same x_T) and class: how
    eps = (1 + w) eps_c - w eps_u (Ho & Salimans eq. 6) pulls the samples toward the class."""
    if not (run.config.model.class_conditional and run.num_classes):
        raise DifusionError(
            f"{run.run_dir.name} is not class-conditional; a guidance sweep needs a run trained "
            "with model.class_conditional=true (e.g. the fashion-mnist-cond preset)"
        )
    if len(run.shape) != 3:
        raise DifusionError("the guidance sweep draws images; this run holds 2-D points")
    n_per_scale = _check_int("samples per scale", n_per_scale, 1, 16)
    if len(scales) * n_per_scale > LIMITS.max_n:
        raise DifusionError(
            f"{len(scales)} scales x {n_per_scale} samples is more than {LIMITS.max_n} images; "
            "use fewer of either"
        )
    rows = [
        reverse_process(
            run,
            sampler=sampler,
            steps=steps,
            seed=seed,
            n=n_per_scale,
            class_id=class_id,
            guidance=w,
            frames=1,
        )
        for w in scales
    ]
    grid = torch.cat([r.samples for r in rows])
    return make_grid(grid, nrow=n_per_scale, scale=default_scale(grid)), rows


# -- tab 4: latent space ----------------------------------------------------------------------------

NO_AUTOENCODER = (
    "No autoencoder run given. Start the explorer with one, e.g. `difusion explore "
    "runs/my-autoencoder` (a run whose config.yaml says `objective: autoencoder`), to see its "
    "reconstructions and interpolations here."
)


def latent_status(registry: RunRegistry) -> str:
    """What the latent-space tab can show: the autoencoder runs given, or why there are none.

    Kept in one place on purpose: the autoencoder models (``difusion.autoencoders``) are wired here,
    imported only when an autoencoder run is actually given."""
    runs = registry.names("autoencoder")
    if not runs:
        return NO_AUTOENCODER
    import importlib.util

    if importlib.util.find_spec("difusion.autoencoders") is None:
        return (
            f"Autoencoder run(s) given ({', '.join(runs)}), but this version of difusion has no "
            "autoencoder models (difusion.autoencoders) to load them with."
        )
    return f"Autoencoder run(s) given: {', '.join(runs)}. Pick one and press Show."


def latent_space(
    registry: RunRegistry, name: str | None, *, index_a=0, index_b=1, n=8, steps=10
) -> tuple[np.ndarray, np.ndarray, str]:
    """An autoencoder run's reconstructions decode(encode(x)) of its first ``n`` test images
    (inputs on top, reconstructions below) and the decoded straight line between the codes of test
    images a and b, decode((1 - s) encode(a) + s encode(b)) for s from 0 to 1 (Kingma & Welling's
    latent-space pictures). The autoencoder models are imported only here."""
    run_dir = registry.resolve(name)
    if run_objective(run_dir) != "autoencoder":
        raise DifusionError(f"{name} is not an autoencoder run (objective: autoencoder)")
    n = _check_int("images", n, 1, 16)
    steps = _check_int("interpolation steps", steps, 2, 16)
    from difusion.autoencoders.pictures import interpolate, reconstruct
    from difusion.autoencoders.run import load_autoencoder
    from difusion.autoencoders.scoring import test_images

    try:
        model = load_autoencoder(run_dir)
    except DifusionError as e:
        raise DifusionError(f"{name}: {e}") from None
    except Exception as e:  # a torn or foreign file: a message, not a crash
        raise DifusionError(f"{name}: could not read the run ({type(e).__name__}: {e})") from None
    x, _ = test_images(model.config, 64)
    a = _check_int("image a", index_a, 0, len(x) - 1)
    b = _check_int("image b", index_b, 0, len(x) - 1)
    pair = torch.cat([x[:n], reconstruct(model, x[:n])])
    path = interpolate(model, x[a], x[b], steps)
    summary = (
        f"{model.config.autoencoder.kind} on {model.config.data.name}, step {model.step}, "
        f"code {'x'.join(map(str, model.latent_shape))}"
    )
    return (
        make_grid(pair, nrow=n, scale=default_scale(x)),
        make_grid(
            torch.cat([x[a][None], path, x[b][None]]), nrow=steps + 2, scale=default_scale(x)
        ),
        summary,
    )


# -- no trained model at all: a tiny 2-D one, trained here ------------------------------------------


def train_toy_model(
    folder: str | Path, *, steps=1500, distribution: str = "moons"
) -> tuple[Path, float]:
    """Train the toy2d preset's MLP denoiser on 2-D points for ``steps`` steps into ``folder``
    (Ho et al. Algorithm 1); returns the run folder and the seconds it took."""
    from difusion.config import load_config
    from difusion.data.toy2d import DISTRIBUTIONS
    from difusion.training.loop import train

    steps = _check_int("training steps", steps, 10, LIMITS.max_toy_steps)
    if distribution not in DISTRIBUTIONS:
        raise DifusionError(
            f"unknown distribution {distribution!r}; choose one of: {', '.join(DISTRIBUTIONS)}"
        )
    cfg = load_config("toy2d", [f"train.steps={steps}", f"data.distribution={distribution}"])
    started = time.perf_counter()
    result = train(cfg, Path(folder), progress=False, final_samples=False)
    return result.run_dir, time.perf_counter() - started


__all__ = [
    "FORWARD_DATASETS",
    "LIMITS",
    "NO_AUTOENCODER",
    "SAMPLERS",
    "RunRefused",
    "RunRegistry",
    "compare_samplers",
    "dataset_example",
    "forward_sample",
    "forward_view",
    "guidance_sweep",
    "image_from_upload",
    "latent_space",
    "latent_status",
    "noise_level",
    "reverse_process",
    "schedule_curves",
    "train_toy_model",
    "trajectory_frames",
    "trajectory_strip",
]
