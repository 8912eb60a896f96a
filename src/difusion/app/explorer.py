"""The functions behind the explorer's tabs: forward process, reverse process, compare, latent
space, segmentation (the U-Net chapter).

Each takes plain values (a run name, a sampler, a step count, a seed) and returns pictures as uint8
arrays (H, W, 3) plus numbers, so they can be tested without a browser. Inputs from the page are
bounded here (``LIMITS``) and a bad one raises :class:`difusion.errors.DifusionError` with a
one-line message that the page shows. Only run folders the explorer was started with (or folders
under its ``root``) can be opened: :class:`RunRegistry` refuses any other path.

Every generative run (DDPM with fixed or learned variance, flow matching, latent diffusion,
class-conditional with guidance) is sampled through the lab's one pipeline: the run's
``GenerativeModel`` (``run.model``) knows its path, what its network predicts and how to decode, and
a ``SampleSettings`` says how to sample, as for ``difusion sample``. The forward tab draws any
Gaussian path (a run's own, or a DDPM schedule) through the path interface: x_t = alpha_t x_0 +
sigma_t eps.
"""

from __future__ import annotations

import contextlib
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
from difusion.diffusion.path import GaussianPath, as_time
from difusion.errors import DifusionError
from difusion.sampling.pipeline import SampleSettings, draw_samples, grid_columns
from difusion.sampling.samplers import SAMPLERS, network_evaluations
from difusion.viz import save_gif
from difusion.viz.grid import default_scale, make_grid
from difusion.viz.plots import points_frame

if TYPE_CHECKING:  # difusion.runs builds networks: imported where a run is first loaded
    from difusion.runs import TrainedRun


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
    max_cells_side: int = 512  # segmentation tab: synthetic images, and uploads shrunk to this


LIMITS = Limits()
FORWARD_DATASETS = ("fashion-mnist", "digits", "toy2d")
# The objectives whose runs are generative models the Reverse and Compare tabs sample (a diffusion
# model or a flow, each on its own Gaussian path); autoencoder runs go to the Latent space tab.
GENERATIVE = ("diffusion", "flow")
# the tab that shows the runs of each other objective (families.py: the flows and energies on 2-D)
OTHER_TABS = {"autoencoder": "Latent space", "nflow": "Normalizing flow", "ebm": "Langevin (EBM)"}
SCHEDULE_CHOICE = "a DDPM schedule (below)"  # the forward tab's path menu: no run, a schedule


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


@contextlib.contextmanager
def _reading(name):
    """A failure to read the run ``name`` as one line naming it: a torn or foreign file is a
    message on the page, not a crash."""
    try:
        yield
    except DifusionError as e:
        raise DifusionError(f"{name}: {e}") from None
    except Exception as e:
        raise DifusionError(f"{name}: could not read the run ({type(e).__name__}: {e})") from None


def check_address(host: str, port: int | None) -> None:
    """Refuse, before serving, an address this machine cannot serve on: a host that is not one of
    its addresses, or a port that is taken (``port`` None: only the host is checked)."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port or 0, 0, socket.SOCK_STREAM
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        raise DifusionError(f"--host {host!r} is not an address ({e}); try 127.0.0.1") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(address)
        except OSError as e:
            where = f"port {port} on {host}" if port else f"{host}"
            fix = "choose another --port, or leave it out for the first free one from 7860"
            raise DifusionError(
                f"cannot serve on {where} ({e.strerror or e}); "
                + (fix if port else "give an address of this machine, e.g. 127.0.0.1")
            ) from None


# -- which runs the page may open -------------------------------------------------------------------


def run_objective(run_dir: Path) -> str:
    """What a run folder trained, read from its config.yaml: ``diffusion`` (the default),
    ``autoencoder``, ...; ``missing`` when there is no readable config.yaml."""
    try:
        values = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
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
        self._segmentation: dict[Path, tuple[float, tuple]] = {}  # (config, network, step)
        self._modules: dict[Path, tuple[float, torch.nn.Module]] = {}  # flows, energies (families)
        self._lock = threading.Lock()

    def add(self, name: str, run_dir: Path) -> str:
        """Allow ``run_dir`` under the label ``name`` (what the page's run menu shows)."""
        self._runs[name] = Path(run_dir).resolve()
        return name

    def names(self, objective: str | Sequence[str] | None = None) -> list[str]:
        """The labels of the allowed runs (only those of ``objective``, one name or several)."""
        wanted = (objective,) if isinstance(objective, str) else objective
        return [n for n, p in self._runs.items() if wanted is None or run_objective(p) in wanted]

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

    def _generative_dir(self, name: str | None) -> Path:
        """The folder of the allowed run ``name`` if it is a generative model (diffusion or flow);
        else a one-line :class:`DifusionError` saying what it is, for the page to show."""
        run_dir = self.resolve(name)
        objective = run_objective(run_dir)
        if objective == "missing":
            raise DifusionError(
                f"{name}: no readable config.yaml in {run_dir} (missing, or not a run folder)"
            )
        if objective not in GENERATIVE:
            tab = OTHER_TABS.get(objective)
            where = f"; see the {tab} tab" if tab else ""
            raise DifusionError(
                f"{name} is a {objective} run, not a generative model (diffusion or flow){where}"
            )
        return run_dir

    def load(self, name: str | None) -> TrainedRun:
        """The allowed generative run ``name``, loaded once (again if its checkpoint changed)."""
        from difusion.runs import load_run

        run_dir = self._generative_dir(name)
        return self._cached(self._loaded, name, run_dir, lambda: load_run(run_dir, "cpu"))

    def load_segmentation(self, name: str | None):
        """``(config, EMA network, step)`` of the allowed segmentation run ``name``, loaded once
        (again if its checkpoint changed); a one-line message for any other run."""
        run_dir = self.resolve(name)
        objective = run_objective(run_dir)
        if objective != "segmentation":
            raise DifusionError(f"{name} is not a segmentation run (objective: {objective})")
        from difusion.segmentation.objective import load_segmentation_run

        return self._cached(
            self._segmentation, name, run_dir, lambda: load_segmentation_run(run_dir)
        )

    def load_module(self, name: str | None, objective: str, load) -> torch.nn.Module:
        """``load(run_dir)`` of the allowed run ``name`` whose config.yaml says ``objective`` (a
        normalizing flow, an energy, ...), loaded once (again if its checkpoint changed); a one-line
        message for any other run."""
        run_dir = self.resolve(name)
        found = run_objective(run_dir)
        if found != objective:
            raise DifusionError(f"{name} is not an {objective} run (objective: {found})")
        return self._cached(self._modules, name, run_dir, lambda: load(run_dir))

    def _cached(self, cache: dict, name: str | None, run_dir: Path, load):
        """``load()``, kept in ``cache`` until the run's checkpoint changes (a run still training)."""
        ckpt = run_dir / "checkpoint.safetensors"
        if not ckpt.is_file():
            raise DifusionError(f"{name}: no checkpoint.safetensors yet (is it still training?)")
        with self._lock:
            stamp = ckpt.stat().st_mtime
            cached = cache.get(run_dir)
            if cached is None or cached[0] != stamp:
                with _reading(name):
                    cache[run_dir] = cached = (stamp, load())
            return cached[1]

    def path(self, name: str | None) -> GaussianPath:
        """The Gaussian path of the allowed generative run ``name``, built from its config.yaml as
        training built it (``difusion.build.build_path``): no checkpoint needed."""
        run_dir = self._generative_dir(name)
        from difusion.build import build_path
        from difusion.config import config_from_dict, load_yaml

        with _reading(name):
            return build_path(config_from_dict(load_yaml(run_dir / "config.yaml")))


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


def forward_path(
    registry: RunRegistry | None, choice: str | None, schedule: str = "linear", T=1000
) -> tuple[GaussianPath, str]:
    """The path the forward tab draws, and its label: the allowed run ``choice``'s own path (a flow
    run's rectified flow, a DDPM run's schedule), or with no run (``choice`` empty or
    ``SCHEDULE_CHOICE``) the DDPM path of ``schedule`` with T steps."""
    if choice in (None, "", SCHEDULE_CHOICE):
        return schedule_path(schedule, T), str(schedule)
    if registry is None:
        raise DifusionError("no runs were given: pick a schedule")
    return registry.path(choice), f"run {choice}"


def check_time(path: GaussianPath, t) -> int | float:
    """``t`` as a time of ``path``: a whole number in 0..T on a discrete (DDPM) path, a number in
    [0, t_max] on a continuous one (a flow's [0, 1])."""
    if path.discrete:
        return _check_int("t", t, 0, path.T)
    return _check_float("t", t, 0.0, path.t_max)


def noise_level(path: GaussianPath, t) -> dict[str, float]:
    """The scales of x_t = alpha_t x_0 + sigma_t eps at one time t of any path: alpha_t, sigma_t,
    alpha_t^2 (DDPM's alpha_bar_t, Ho et al. eq. 4), the signal-to-noise ratio SNR_t = alpha_t^2 /
    sigma_t^2 = exp(lambda_t) with lambda_t the path's log-SNR (Kingma et al. 2021), and the noise
    fraction tau_t = sigma_t / (alpha_t + sigma_t) that guidance intervals are given in."""
    t = check_time(path, t)
    alpha, sigma = path.alpha_sigma(t)
    lam = float(path.log_snr(as_time(t)))  # +inf at clean data, -inf where alpha = 0
    return {
        "t": t,
        "alpha": alpha,
        "sigma": sigma,
        "alpha_bar": alpha * alpha,
        "snr": math.exp(lam) if lam < 700 else math.inf,
        "log_snr": lam,
        "tau": path.noise_fraction(t),
    }


def forward_sample(path: GaussianPath, x0: torch.Tensor, t, seed: int = 0) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) on any path (Ho et al. eq. 4 on DDPM:
    sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps; the rectified flow: (1 - t) x_0 + t eps),
    with eps drawn from ``seed``, so moving t with a fixed seed shows one noise being scaled in."""
    t = check_time(path, t)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(seed)))
    x0 = x0.to(torch.float32)
    return path.q_sample(x0[None], t, eps[None])[0]


def picture(x: torch.Tensor, data: torch.Tensor | None = None, label: str = "") -> np.ndarray:
    """What a person sees of one example: a (C, H, W) image enlarged, or a 2-D cloud (N, 2) drawn
    over ``data`` in grey."""
    if x.dim() == 2:
        ref = data if data is not None else x
        return points_frame(
            x, ref, float(ref.abs().max()) * 1.3 if data is not None else 3.5, label
        )
    scale = max(1, 192 // x.shape[-1])
    return make_grid(x[None], nrow=1, pad=0, scale=scale)


def path_curves(path: GaussianPath, t, label: str = "") -> np.ndarray:
    """alpha_t, sigma_t, the log-SNR lambda_t = log(alpha_t^2 / sigma_t^2) and the noise fraction
    tau_t = sigma_t / (alpha_t + sigma_t) against t for ``path`` (thick, black) and, thin, the
    linear, cosine and sigmoid DDPM schedules (Ho et al. eq. 4 and Nichol & Dhariwal eq. 17) at
    ``path``'s T (T = 1000 beside a continuous path; the one named ``label`` left out), each
    stretched over ``path``'s span 0..t_max; t is marked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(12.5, 2.8), dpi=90)
    curves = [(label or path.describe(), path, {"color": "k", "lw": 2.4})]
    for name in SCHEDULES:
        try:
            ref = schedule_path(name, path.T if path.discrete else 1000)
        except DifusionError:  # linear/sigmoid are not defined for tiny T: leave them out
            continue
        if name != label:
            span = "" if ref.t_max == path.t_max else f" (t / {ref.t_max:g})"
            style = {"color": f"C{len(curves) - 1}", "lw": 1.2, "alpha": 0.7}
            curves.append((name + span, ref, style))
    for name, p, style in curves:
        if p.discrete:
            ts = torch.arange(0, p.T + 1)
        else:
            ts = torch.linspace(0.0, p.t_max, 401, dtype=torch.float64)
        a, s = p.alpha(ts).numpy(), p.sigma(ts).numpy()
        lam = p.log_snr(ts).numpy()
        x = ts.double().numpy() * (path.t_max / p.t_max)
        finite = np.isfinite(lam)
        axes[0].plot(x, a, label=name, **style)
        axes[1].plot(x, s, **style)
        axes[2].plot(x[finite], lam[finite], **style)
        axes[3].plot(x, s / np.maximum(a + s, 1e-300), **style)
    titles = ("alpha_t (scale of x_0)", "sigma_t (scale of eps)", "log-SNR lambda_t", "noise tau_t")
    for ax, title in zip(axes, titles, strict=True):
        ax.axvline(float(t), color="k", lw=1, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.9))  # room above for the page's label of the picture
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


@dataclass
class ForwardView:
    x_t: np.ndarray  # the picture of x_t
    strip: np.ndarray  # x_t at 8 times from 0 to t_max with the same noise
    curves: np.ndarray
    level: dict[str, float]
    times: list  # the strip's times


def forward_view(
    x0: torch.Tensor,
    path: GaussianPath,
    t,
    seed=0,
    data: torch.Tensor | None = None,
    label: str = "",
) -> ForwardView:
    """Everything the forward-process tab shows for one example x_0 at time t of ``path`` (a run's
    own path or a DDPM schedule's; see :func:`forward_path`)."""
    t = check_time(path, t)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    times = np.linspace(0.0, path.t_max, 8)
    times = times.round().astype(int).tolist() if path.discrete else [float(s) for s in times]
    if x0.dim() == 2:
        frames = [picture(forward_sample(path, x0, s, seed), data, f"t = {s:g}") for s in times]
        strip = np.concatenate(frames, axis=1)
    else:
        column = torch.stack([forward_sample(path, x0, s, seed) for s in times])
        strip = make_grid(column, nrow=len(times), scale=default_scale(x0))
    return ForwardView(
        picture(forward_sample(path, x0, t, seed), data, f"t = {t:g}"),
        strip,
        path_curves(path, t, label),
        noise_level(path, t),
        times,
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
    nrow: int | None = None  # images per grid row: one class per row when the classes take turns
    settings: SampleSettings | None = None  # how they were drawn (as `difusion sample` would)


def sample_settings(
    run: TrainedRun,
    *,
    sampler: str = "dpmpp-2m",
    steps=20,
    seed=0,
    n=16,
    class_id=None,
    guidance=0.0,
    eta=0.0,
    interval: tuple[float, float] | None = None,
) -> SampleSettings:
    """The page's choices, bounded, as the ``SampleSettings`` that ``difusion sample`` would use:
    the run's own ``sample:`` section (variance, guidance interval, batch size) with these fields
    changed (the sampler is checked by ``SampleSettings.check``). ``class_id`` None or -1: the
    classes laid out as ``difusion sample`` does (``GenerativeModel.labels``: one class per grid
    row when n is a multiple of the classes, else the classes in turn). Guidance acts only at noise
    fractions in ``interval`` (Kynkaanniemi et al. 2024); None means the run's
    ``sample.guidance_interval``. The run's guidance rescale is kept only while w > 0."""
    steps = _check_int("steps", steps, 1, LIMITS.max_steps)
    n = _check_int("samples", n, 1, LIMITS.max_n if run.model.images else LIMITS.max_points)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    guidance = _check_float("guidance", guidance, 0.0, LIMITS.max_guidance)
    eta = _check_float("eta", eta, 0.0, 1.0)
    class_id = None if class_id in (None, "", -1) else class_id
    if run.model.num_classes is None and (class_id is not None or guidance > 0):
        raise DifusionError(
            f"{run.run_dir.name} is not class-conditional: leave the class empty and guidance at 0"
        )
    if class_id is not None:
        class_id = _check_int("class", class_id, 0, run.model.num_classes - 1)
    settings = run.settings(
        n=n,
        seed=seed,
        sampler=sampler,
        steps=steps,
        eta=eta,
        guidance=guidance,
        guidance_rescale=None if guidance > 0 else 0.0,
        guidance_interval=interval,
        class_id=class_id,
    )
    return settings.check()


@torch.no_grad()
def reverse_process(run: TrainedRun, *, frames: int = 40, keep: int = 16, **choices) -> Trajectory:
    """Sample ``run`` from noise at t_max (N(0, I) on DDPM and the flows; the path's
    ``prior_std`` times that in general) down to t = 0 with a named sampler (see
    ``difusion.sampling.samplers``), recording x_t and the x_0 estimate of the first ``keep``
    samples (all of a 2-D cloud) at ``frames`` evenly spaced steps. ``choices`` are the page's
    (sampler, steps, seed, n, class_id, guidance, eta, interval), as :func:`sample_settings` takes
    them.

    Any generative run: the run's model (``run.model``: its path, what its network predicts, its
    decoder for latent diffusion) gives the denoiser -- guided by eps = (1 + w) eps_c - w eps_u
    (Ho & Salimans eq. 6) when ``guidance`` w > 0 -- and the time grid, exactly as
    ``difusion sample`` (``draw_samples``) does: sample i starts from seed + i and the samples
    are the same."""
    settings = sample_settings(run, **choices)
    model = run.model
    ts = model.timesteps(settings)
    record = set(np.linspace(0, len(ts) - 2, min(frames, len(ts) - 1)).round().astype(int).tolist())
    keep = keep if model.images else settings.n
    seen: dict[int, tuple[float, list, list]] = {}

    def on_step(start: int, step) -> None:  # x_t and x_0 of the first ``keep`` samples
        k = max(0, keep - start)
        if k and step.index in record:
            _, xs, x0s = seen.setdefault(step.index, (float(step.s), [], []))
            xs.append(step.x[:k].clone())
            x0s.append(step.x0[:k].clone())

    started = time.perf_counter()
    samples = draw_samples(model, settings, progress=False, on_step=on_step)
    labels = samples.labels
    seconds = time.perf_counter() - started
    decode = model.decode or (lambda z: z)  # a model of latents: show decoded images
    by_class = labels is not None and settings.class_id is None
    return Trajectory(
        samples=samples.x,
        labels=labels,
        times=[seen[i][0] for i in sorted(seen)],
        x_t=[decode(torch.cat(seen[i][1])) for i in sorted(seen)],
        x0=[decode(torch.cat(seen[i][2])) for i in sorted(seen)],
        seconds=seconds,
        nfe=network_evaluations(settings.sampler, ts),
        nrow=grid_columns(settings.n, model.num_classes) if by_class else None,
        settings=settings,
    )


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
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="difusion-"))
    return save_gif(frames, folder / "trajectory.gif")


def run_data(run: TrainedRun) -> torch.Tensor | None:
    """The 2-D training data of a point run (drawn under its samples); None for image runs."""
    if len(run.shape) != 1:
        return None
    from difusion.build import build_dataset

    return build_dataset(run.config).data[:2000]


def run_summary(run: TrainedRun) -> str:
    """One line about a run: data, shape, step, its path, what its network predicts, its classes
    and how it samples by default (its ``sample:`` section)."""
    cfg, model = run.config, run.model
    path = model.path.describe()
    if model.path.discrete and cfg.diffusion.path == "ddpm":
        path = f"{cfg.diffusion.schedule} schedule, {path}"
    extras = ", learned variance" if model.learn_sigma else ""
    extras += ", decoded by its first stage" if model.decode is not None else ""
    own = run.settings()
    steps = f" x {own.steps}" if own.steps else ""
    if model.num_classes:
        lo, hi = own.guidance_interval
        extras += f", {model.num_classes} classes"
        if own.guidance:
            steps += f", guidance w = {own.guidance:g} at noise fractions [{lo:g}, {hi:g}]"
    return (
        f"{cfg.data.name} {'x'.join(map(str, run.shape))}, {cfg.objective}, step {run.step}: "
        f"{path}; predicts {model.prediction}{extras}. Its own sampler: {own.sampler}{steps}"
    )


def run_defaults(run: TrainedRun) -> dict:
    """The run's own sampler, step count and guidance w (its ``sample:`` section), which the page
    puts in its controls when the run is picked (20 steps when the run leaves it to the sampler)."""
    own = run.settings()
    return {"sampler": own.sampler, "steps": own.steps or 20, "guidance": own.guidance}


# -- tab 3: compare ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    left: Trajectory
    right: Trajectory
    mean_abs_difference: float  # mean |x_left - x_right| over all pixels / coordinates


def compare_samplers(
    run: TrainedRun, a: tuple[str, int], b: tuple[str, int], **choices
) -> Comparison:
    """The same seeds (hence the same x_T) under two (sampler, steps) settings, side by side; the
    other ``choices`` (seed, n, class_id, guidance, eta) as :func:`sample_settings` takes them."""
    left, right = (
        reverse_process(run, sampler=sampler, steps=steps, frames=1, **choices)
        for sampler, steps in (a, b)
    )
    return Comparison(left, right, float((left.samples - right.samples).abs().mean()))


def parse_scales(text: str) -> list[float]:
    """Guidance scales typed as '0, 1, 2, 4': each in [0, max_guidance], at most max_sweep."""
    parts = [p for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise DifusionError("give guidance scales separated by commas, e.g. 0, 1, 2, 4")
    if len(parts) > LIMITS.max_sweep:
        raise DifusionError(f"at most {LIMITS.max_sweep} guidance scales, got {len(parts)}")
    return [_check_float("guidance", p, 0.0, LIMITS.max_guidance) for p in parts]


def guidance_sweep(
    run: TrainedRun, scales: Sequence[float], *, class_id=0, n_per_scale=8, **choices
) -> tuple[np.ndarray, list[Trajectory]]:
    """One row per guidance scale w, each from the same seeds (the same x_T) and class: how
    eps = (1 + w) eps_c - w eps_u (Ho & Salimans eq. 6) pulls the samples toward the class. The
    other ``choices`` (seed, sampler, steps, ...) as :func:`sample_settings` takes them."""
    if run.model.num_classes is None:
        raise DifusionError(
            f"{run.run_dir.name} is not class-conditional; a guidance sweep needs a run trained "
            "with model.class_conditional=true (e.g. the fashion-mnist preset)"
        )
    if not run.model.images:
        raise DifusionError("the guidance sweep draws images; this run holds 2-D points")
    n_per_scale = _check_int("samples per scale", n_per_scale, 1, 16)
    if len(scales) * n_per_scale > LIMITS.max_n:
        raise DifusionError(
            f"{len(scales)} scales x {n_per_scale} samples is more than {LIMITS.max_n} images; "
            "use fewer of either"
        )
    rows = [
        reverse_process(run, n=n_per_scale, class_id=class_id, guidance=w, frames=1, **choices)
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
    """What the latent-space tab can show: the autoencoder runs given, or how to give one."""
    runs = registry.names("autoencoder")
    if not runs:
        return NO_AUTOENCODER
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

    with _reading(name):
        model = load_autoencoder(run_dir)
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


# -- tab 5: the U-Net chapter (segmentation) --------------------------------------------------------

NO_SEGMENTATION = (
    "No segmentation run given. Start the explorer with one, e.g. `difusion explore "
    "runs/seg-cells-...` (a run of `difusion train seg-cells`, whose config.yaml says "
    "`objective: segmentation`), to see its probability map, instances and tiles here."
)
SEGMENTATION_IMAGES = ("synthetic cells", "uploaded image")


def segmentation_status(registry: RunRegistry) -> str:
    """What the segmentation tab can show: the segmentation runs given, or how to give one."""
    runs = registry.names("segmentation")
    if not runs:
        return NO_SEGMENTATION
    return (
        f"Segmentation run(s) given: {', '.join(runs)}. Pick one and an image, and press Segment."
    )


def segmentation_image(
    source: str = "synthetic cells", seed=0, size=192, upload: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The image ``(H, W)`` float32 (about [0, 1]) to segment and its instances where they are
    known: a synthetic cells image drawn from ``seed`` (``difusion.data.cells``, ``size`` pixels a
    side) with its ground truth, or an uploaded picture (as the other tabs take uploads: at most
    ``LIMITS.max_upload_side`` a side, center-cropped and shrunk to ``LIMITS.max_cells_side``),
    made grey and percentile-normalised as ``difusion segment`` reads a file, without one."""
    from difusion.data.cells import normalize, synthetic_cells

    if source == "synthetic cells":
        seed = _check_int("seed", seed, 0, 2**31 - 1)
        size = _check_int("image side", size, 16, LIMITS.max_cells_side)
        return synthetic_cells(size, np.random.default_rng(seed))
    if source != "uploaded image":
        raise DifusionError(
            f"unknown image source {source!r}; choose one of: synthetic cells, uploaded image"
        )
    if upload is None:
        raise DifusionError("upload an image first, or pick synthetic cells")
    x = image_from_upload(upload, max_side=LIMITS.max_cells_side)
    grey = (x.mean(0).numpy().astype(np.float64) + 1.0) * 127.5  # the file's grey values
    return normalize(grey), None


@dataclass(frozen=True)
class Tile:
    """One step of overlap-tile inference (Ronneberger et al. Fig. 2), in image pixels (row,
    column; ends exclusive): the network reads ``input`` (partly outside the image, where the image
    is mirrored) and its valid output fills ``output`` (clipped to the image)."""

    input: tuple[int, int, int, int]  # top, left, bottom, right
    output: tuple[int, int, int, int]


def tile_layout(shape: tuple[int, int], tile_in: int, tile_out: int) -> list[Tile]:
    """The tiles :func:`difusion.segmentation.tiling.predict_tiled` runs on an image of ``shape``,
    in its order: output tiles at ``tile_origins`` along each axis, each read from the input tile
    ``(tile_in - tile_out) / 2`` pixels larger on every side."""
    from difusion.segmentation.tiling import tile_origins

    h, w = shape
    m = (tile_in - tile_out) // 2
    hp, wp = max(h, tile_out), max(w, tile_out)
    return [
        Tile(
            (r - m, c - m, r - m + tile_in, c - m + tile_in),
            (r, c, min(r + tile_out, h), min(c + tile_out, w)),
        )
        for r in tile_origins(hp, tile_out)
        for c in tile_origins(wp, tile_out)
    ]


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    grey = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _colormap(values: np.ndarray, low: float, high: float, name: str) -> np.ndarray:
    """``values`` (H, W) as an RGB uint8 picture through a matplotlib colour map over [low, high]."""
    import matplotlib

    scaled = (np.asarray(values, np.float64) - low) / max(high - low, 1e-12)
    rgba = matplotlib.colormaps[name](np.clip(scaled, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


TILE_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230]], dtype=np.uint8,
)  # fmt: skip


def _rectangle(rgb: np.ndarray, box, colour, width: int = 1, dashed: bool = False) -> None:
    """Draw the outline of ``box`` (top, left, bottom, right; ends exclusive) into ``rgb``."""
    top, left, bottom, right = box
    h, w = rgb.shape[:2]
    rows = np.arange(max(top, 0), min(bottom, h))
    cols = np.arange(max(left, 0), min(right, w))
    if dashed:
        rows, cols = rows[(rows // 3) % 2 == 0], cols[(cols // 3) % 2 == 0]
    for k in range(width):
        for r in (top + k, bottom - 1 - k):
            if 0 <= r < h:
                rgb[r, cols] = colour
        for c in (left + k, right - 1 - k):
            if 0 <= c < w:
                rgb[rows, c] = colour


def tiles_picture(image: np.ndarray, tiles: list[Tile], margin: int | None = None) -> np.ndarray:
    """The overlap-tile layout drawn over the image: the mirror-padded image (the mirrored border
    dimmed) with every output tile in its own colour (solid) and its input tile (dashed, same
    colour); the image's own border in white. ``margin``: mirrored pixels shown around the image
    (default: all that the input tiles read)."""
    from difusion.segmentation.tiling import mirror_pad

    h, w = image.shape
    if margin is None:
        margin = max(
            0, *(max(-t.input[0], -t.input[1], t.input[2] - h, t.input[3] - w) for t in tiles)
        )
    padded = np.clip(
        mirror_pad(np.asarray(image, np.float32), (margin, margin), (margin, margin)), 0, 1
    )
    rgb = _grey_rgb(padded)
    outside = np.ones(padded.shape, bool)
    outside[margin : margin + h, margin : margin + w] = False
    rgb[outside] = (rgb[outside] * 0.45).astype(np.uint8)
    shift = lambda box: tuple(v + margin for v in box)  # noqa: E731
    _rectangle(rgb, (margin - 1, margin - 1, margin + h + 1, margin + w + 1), (255, 255, 255))
    for i, t in enumerate(tiles):
        colour = TILE_COLOURS[i % len(TILE_COLOURS)]
        _rectangle(rgb, shift(t.input), colour, dashed=True)
        _rectangle(rgb, shift(t.output), colour, width=2)
    return rgb


@dataclass
class SegmentationView:
    """Everything the segmentation tab shows for one image: the pictures (uint8 (H, W, 3)) and the
    arrays they are drawn from."""

    input: np.ndarray
    probability_map: np.ndarray
    weight_map: np.ndarray | None  # w(x) of the ground truth (None: no truth, e.g. an upload)
    instances_map: np.ndarray
    tiles_map: np.ndarray
    probability: np.ndarray  # p(cell | x) per pixel, (H, W) in [0, 1]
    weights: np.ndarray | None  # w(x), (H, W)
    instances: np.ndarray  # (H, W) int, 0 = background
    tiles: list[Tile]
    summary: str


def segmentation_view(
    registry: RunRegistry, name: str | None, image: np.ndarray, truth: np.ndarray | None = None
) -> SegmentationView:
    """A segmentation run on one image, as `difusion segment` segments it: the U-Net's foreground
    probability by overlap-tile inference, thresholded at 1/2 and split into instances as the
    run's config says (``segmentation.instances``: components or watershed); with the border
    weight map w(x) of Eq. 2 (the run's w0 and sigma) of the ground truth where there is one, and
    the tiles the inference ran on."""
    from difusion.metrics.segmentation import dice
    from difusion.segmentation.inference import overlay, segment
    from difusion.segmentation.weight_map import weight_map

    cfg, network, step = registry.load_segmentation(name)
    s = cfg.segmentation
    image = np.asarray(image, np.float32)
    started = time.perf_counter()
    p, fg, inst = segment(network, image, s.tile, s.instances)
    seconds = time.perf_counter() - started
    tiles = tile_layout(image.shape, s.tile, network.output_size(s.tile))
    weights = None if truth is None else weight_map(truth, s.w0, s.sigma)
    cells = int(inst.max())
    summary = (
        f"{cells} cells found ({s.instances}) in {seconds:.2f} s; {len(tiles)} tiles "
        f"{s.tile} -> {network.output_size(s.tile)} on a {image.shape[1]}x{image.shape[0]} image; "
        f"run step {step}, base {s.base_channels} channels, depth {s.depth}"
    )
    if truth is not None:
        summary += (
            f". Truth: {int(len(np.unique(truth)) - 1)} cells, Dice {dice(truth > 0, fg):.3f}; "
            f"w(x) with w0 = {s.w0:g}, sigma = {s.sigma:g}: {float(weights.min()):.2f} to "
            f"{float(weights.max()):.2f}"
        )
    return SegmentationView(
        input=_grey_rgb(image),
        probability_map=_colormap(p, 0.0, 1.0, "magma"),
        weight_map=None
        if weights is None
        else _colormap(weights, 0.0, float(weights.max()), "viridis"),
        instances_map=overlay(image, inst),
        tiles_map=tiles_picture(image, tiles),
        probability=p,
        weights=weights,
        instances=inst,
        tiles=tiles,
        summary=summary,
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
    "GENERATIVE",
    "LIMITS",
    "NO_AUTOENCODER",
    "NO_SEGMENTATION",
    "SAMPLERS",
    "SCHEDULE_CHOICE",
    "SEGMENTATION_IMAGES",
    "RunRefused",
    "RunRegistry",
    "SegmentationView",
    "Tile",
    "check_address",
    "compare_samplers",
    "dataset_example",
    "forward_path",
    "forward_sample",
    "forward_view",
    "guidance_sweep",
    "image_from_upload",
    "latent_space",
    "latent_status",
    "noise_level",
    "path_curves",
    "reverse_process",
    "run_defaults",
    "run_summary",
    "sample_settings",
    "segmentation_image",
    "segmentation_status",
    "segmentation_view",
    "tile_layout",
    "tiles_picture",
    "train_toy_model",
    "trajectory_frames",
    "trajectory_strip",
]
