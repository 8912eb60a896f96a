"""Overlap-tile inference (Ronneberger et al. 2015, Fig. 2): predict an image of any size with a
network whose valid output is smaller than its input. The image is mirrored at its borders, tiles
are placed so that their valid outputs cover the image exactly, and the outputs are pasted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def mirror_pad(image: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """Mirror ``image`` (..., H, W) by ``before``/``after`` pixels on (rows, columns); pads wider
    than the image reflect again (Fig. 2: "missing input data is extrapolated by mirroring")."""
    pad = [(0, 0)] * (image.ndim - 2) + [(before[0], after[0]), (before[1], after[1])]
    return np.pad(image, pad, mode="reflect")


def tile_origins(size: int, out: int) -> list[int]:
    """Starts of the output tiles along one axis: ``0, out, 2 out, ...`` and a last one flush
    with the end, so that the valid outputs cover ``size`` pixels exactly."""
    if size <= out:
        return [0]
    starts = list(range(0, size - out, out))
    return [*starts, size - out]


@torch.no_grad()
def predict_tiled(
    network: Callable[[Tensor], Tensor],
    image: np.ndarray,
    tile_in: int,
    tile_out: int,
    batch: int = 4,
) -> np.ndarray:
    """Network output ``(K, H, W)`` for an image ``(C, H, W)`` or ``(H, W)`` of any size.

    ``network`` maps ``(N, C, tile_in, tile_in)`` to ``(N, K, tile_out, tile_out)``, the centre of
    its input (margin ``(tile_in - tile_out) / 2``). The image is mirror-padded by the margin, and
    by a tile more where it is smaller than a tile.
    """
    img = image[None] if image.ndim == 2 else image
    _, h, w = img.shape
    m = (tile_in - tile_out) // 2
    hp, wp = max(h, tile_out), max(w, tile_out)
    padded = mirror_pad(img, (m, m), (m + hp - h, m + wp - w))
    xs = torch.as_tensor(np.ascontiguousarray(padded), dtype=torch.float32)
    origins = [(r, c) for r in tile_origins(hp, tile_out) for c in tile_origins(wp, tile_out)]
    out: np.ndarray | None = None
    for i in range(0, len(origins), batch):
        chunk = origins[i : i + batch]
        tiles = torch.stack([xs[:, r : r + tile_in, c : c + tile_in] for r, c in chunk])
        y = network(tiles).float().cpu().numpy()
        if out is None:
            out = np.zeros((y.shape[1], hp, wp), dtype=np.float32)
        for (r, c), yi in zip(chunk, y, strict=True):
            out[:, r : r + tile_out, c : c + tile_out] = yi
    assert out is not None
    return out[:, :h, :w]


__all__ = ["mirror_pad", "predict_tiled", "tile_origins"]
