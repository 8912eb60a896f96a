"""Data augmentation of Ronneberger et al. 2015, Sec. 3.1: random elastic deformations (displacement
vectors on a coarse 3x3 grid drawn from a Gaussian with 10 px standard deviation, interpolated
smoothly to every pixel), plus shifts, flips, rotations and grey-value variations."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def coarse_displacements(rng: np.random.Generator, grid: int = 3, std: float = 10.0) -> np.ndarray:
    """``(2, grid, grid)`` displacement vectors (rows, columns) drawn from N(0, std^2) (Sec. 3.1)."""
    return rng.normal(0.0, std, size=(2, grid, grid))


def dense_displacements(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel displacements ``(2, H, W)``: the coarse grid, spread over the image with its
    corners at the image corners, upsampled by bicubic (order-3 spline) interpolation."""
    g = coarse.shape[-1]
    rows = np.linspace(0, g - 1, shape[0])
    cols = np.linspace(0, g - 1, shape[1])
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([ndimage.map_coordinates(c, [rr, cc], order=3, mode="nearest") for c in coarse])


def warp(image: np.ndarray, displacement: np.ndarray, order: int) -> np.ndarray:
    """Sample ``image`` (H, W) at ``x + displacement(x)`` with mirror extrapolation; ``order`` 3
    (bicubic) for grey values, 1 for weight maps, 0 (nearest) for label masks, so labels stay
    labels."""
    h, w = image.shape
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = [rr + displacement[0], cc + displacement[1]]
    return ndimage.map_coordinates(image, coords, order=order, mode="mirror")


def elastic_deform(
    arrays: list[np.ndarray],
    orders: list[int],
    rng: np.random.Generator,
    grid: int = 3,
    std: float = 10.0,
) -> list[np.ndarray]:
    """Deform every array of ``arrays`` (same H, W) with ONE random field (Sec. 3.1)."""
    disp = dense_displacements(coarse_displacements(rng, grid, std), arrays[0].shape)
    return [warp(a, disp, o) for a, o in zip(arrays, orders, strict=True)]


def flip_rotate(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip and multiple of 90 degrees applied to every array."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        out.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
    return out


def grey_values(image: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Random grey-value change of an image in [0, 1]: gamma, contrast and brightness."""
    gamma = np.exp(rng.uniform(-strength, strength) * 2)
    contrast = 1.0 + rng.uniform(-strength, strength)
    brightness = rng.uniform(-strength, strength) / 2
    x = np.clip(image, 0.0, 1.0) ** gamma
    return (x - 0.5) * contrast + 0.5 + brightness


__all__ = [
    "coarse_displacements",
    "dense_displacements",
    "elastic_deform",
    "flip_rotate",
    "grey_values",
    "warp",
]
