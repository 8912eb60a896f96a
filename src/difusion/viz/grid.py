"""Image grids: tensors in [-1, 1] to PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from difusion.files import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8 in [0, 255]."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(
    images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1
) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows*H, nrow*W, 3) uint8 picture with a ``pad``-pixel border.

    ``scale`` enlarges each pixel (nearest neighbour), so 28x28 garments are visible on a screen.
    """
    x = to_uint8(images)
    n, h, w, c = x.shape
    if c == 1:
        x = np.repeat(x, 3, axis=3)
    if scale > 1:
        x = x.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def default_scale(images: torch.Tensor) -> int:
    """An upscale that makes small images readable: 8x8 digits x8, 28x28 x3, 64x64 and up x1."""
    h = images.shape[-1]
    return max(1, 96 // h) if h < 96 else 1


def save_image(picture: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 picture (H, W, 3) atomically, in the format its suffix names (PNG if none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:  # the temporary name ends in .tmp-PID: name the format
        Image.fromarray(picture).save(tmp, format=fmt)
    return path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save a grid of (N, C, H, W) images in [-1, 1] as a PNG; returns the path."""
    return save_image(make_grid(images, nrow, scale=default_scale(images)), path)
