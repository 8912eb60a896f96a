"""Generated 2-D distributions: the fastest way to watch a diffusion model learn.

Every generator takes a sample count and a seed (or a ``numpy.random.Generator``), never touches
global random state, and returns an ``(n, 2)`` float32 array centred at 0 and scaled so that the
average per-axis standard deviation is 1 (the aspect ratio of the shape is kept).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from difusion.data.base import Dataset
from difusion.errors import DifusionError

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    """A private generator for ``seed`` (a Generator passed in is used as is)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _standardize(points: np.ndarray) -> np.ndarray:
    """Centre the cloud and divide by one scalar so the mean per-axis variance is 1."""
    points = points - points.mean(axis=0, keepdims=True)
    scale = float(np.sqrt((points**2).mean()))
    return (points / max(scale, 1e-12)).astype(np.float32)


def swiss_roll(n: int, seed: Seed = 0, noise: float = 0.5) -> np.ndarray:
    """The 2-D Swiss roll: a spiral sheet seen from the side, ``t * (cos t, sin t)``."""
    rng = _rng(seed)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    points += noise * rng.standard_normal((n, 2))
    return _standardize(points)


def moons(n: int, seed: Seed = 0, noise: float = 0.05) -> np.ndarray:
    """Two interleaving half circles (the classic ``make_moons``), half the points on each."""
    rng = _rng(seed)
    n_outer = n // 2
    theta = np.pi * rng.random(n)
    outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    inner = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    points = np.where((np.arange(n) < n_outer)[:, None], outer, inner)
    points += noise * rng.standard_normal((n, 2))
    return _standardize(points)


def eight_gaussians(n: int, seed: Seed = 0, std: float = 0.1) -> np.ndarray:
    """Eight small Gaussians evenly spaced on the unit circle (registered as ``8gaussians``)."""
    rng = _rng(seed)
    angles = 2.0 * np.pi * rng.integers(0, 8, size=n) / 8.0
    centers = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = centers + std * rng.standard_normal((n, 2))
    return _standardize(points)


def checkerboard(n: int, seed: Seed = 0) -> np.ndarray:
    """Uniform points on the dark squares of a 4x4 checkerboard."""
    rng = _rng(seed)
    x = rng.uniform(-2.0, 2.0, size=n)
    y = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n)
    y = y + np.floor(x) % 2.0
    points = np.stack([x, y], axis=1)
    return _standardize(points)


def spiral(n: int, seed: Seed = 0, noise: float = 0.05) -> np.ndarray:
    """Two interleaved spiral arms (half the points on each), denser near the centre."""
    rng = _rng(seed)
    t = np.sqrt(rng.random(n)) * 3.0 * np.pi
    arm = (np.arange(n) % 2) * np.pi
    radius = t / (3.0 * np.pi)
    points = np.stack([radius * np.cos(t + arm), radius * np.sin(t + arm)], axis=1)
    points += noise * rng.standard_normal((n, 2))
    return _standardize(points)


def annulus(n: int, seed: Seed = 0, inner: float = 0.8, outer: float = 1.2) -> np.ndarray:
    """A ring, uniform in area between radii ``inner`` and ``outer``: the base distribution of
    Nakkiran et al.'s flow from an annulus to a spiral (Sec. 4)."""
    rng = _rng(seed)
    radius = np.sqrt(rng.uniform(inner**2, outer**2, n))
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    return _standardize(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))


DISTRIBUTIONS: dict[str, Callable[..., np.ndarray]] = {
    "swiss_roll": swiss_roll,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "spiral": spiral,
    "annulus": annulus,
}


def sample_toy2d(distribution: str, n: int, seed: Seed = 0) -> np.ndarray:
    """``n`` points of a named distribution as an ``(n, 2)`` float32 array."""
    key = distribution.strip().lower().replace("-", "_")
    if key not in DISTRIBUTIONS:
        valid = ", ".join(DISTRIBUTIONS)
        raise DifusionError(
            f"toy2d: unknown distribution {distribution!r}. Choose one of: {valid}."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DifusionError(f"toy2d: n must be a positive integer, got {n!r}.")
    return DISTRIBUTIONS[key](n, seed)


TOY2D_SPLITS = ("train", "test")


def load_toy2d(
    distribution: str = "moons", n: int = 8000, seed: int = 0, split: str = "train"
) -> Dataset:
    """A :class:`Dataset` of ``n`` points from a 2-D distribution, the same for the same seed.

    Valid distributions: ``swiss_roll``, ``moons``, ``8gaussians``, ``checkerboard``, ``spiral``,
    ``annulus``.
    ``split="test"`` draws an independent sample of the same distribution (a different random
    stream derived from ``seed``), so train and test never share points.
    """
    if split not in TOY2D_SPLITS:
        raise DifusionError(
            f"toy2d: unknown split {split!r}. Valid splits: {', '.join(TOY2D_SPLITS)}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DifusionError(f"toy2d: seed must be a non-negative integer, got {seed!r}.")
    rng = np.random.default_rng(seed if split == "train" else [seed, 1])
    points = sample_toy2d(distribution, n, rng)
    key = distribution.strip().lower().replace("-", "_")
    return Dataset(
        name="toy2d",
        data=torch.from_numpy(points),
        info={"source": "toy2d", "distribution": key, "n": n, "seed": seed, "split": split},
    )
