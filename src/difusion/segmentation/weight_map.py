"""The weight map of Ronneberger et al. 2015, Eq. 2, computed from instance masks.

    w(x) = w_c(x) + w_0 * exp(-(d_1(x) + d_2(x))^2 / (2 sigma^2))

``w_c`` balances the class frequencies, ``d_1`` and ``d_2`` are the distances to the border of the
nearest and the second nearest cell. The paper uses ``w_0 = 10`` and ``sigma ~ 5`` px. The border
term is added on background pixels only, where the thin separation lines between touching cells
lie (inside a cell ``d_1 = 0`` and the term would weight whole cells near their neighbours).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def separation_target(instances: np.ndarray) -> np.ndarray:
    """Binary target (1 = cell) from an instance mask, with a 1-px background line wherever two
    different cells touch (the paper's "separating background labels", Fig. 3c)."""
    lab = np.asarray(instances)
    fg = lab > 0
    # a pixel is on a shared border if a 4-neighbour belongs to another (non-zero) instance
    border = np.zeros_like(fg)
    for axis in (0, 1):
        for shift in (1, -1):
            other = np.roll(lab, shift, axis=axis)
            edge = (slice(0, 1) if shift == 1 else slice(-1, None),)
            idx = [slice(None), slice(None)]
            idx[axis] = edge[0]
            other[tuple(idx)] = 0  # np.roll wraps around; the wrapped row/column is no neighbour
            border |= fg & (other > 0) & (other != lab) & (lab > other)
    return (fg & ~border).astype(np.int64)


def class_weights(target: np.ndarray, num_classes: int = 2) -> np.ndarray:
    """``w_c`` per class: ``n / (K n_k)`` for ``n`` pixels and ``n_k`` of class ``k`` (mean 1)."""
    counts = np.bincount(np.asarray(target).ravel(), minlength=num_classes).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    return counts.sum() / (num_classes * counts)


def border_distances(
    instances: np.ndarray, max_cells: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(d_1, d_2)``: per pixel, the Euclidean distance to the nearest and to the second nearest
    cell (one exact distance transform per cell; Eq. 2). With fewer than two cells the missing
    distances are infinite."""
    lab = np.asarray(instances)
    ids = np.unique(lab)
    ids = ids[ids > 0]
    inf = np.full(lab.shape, np.inf)
    d1, d2 = inf.copy(), inf.copy()
    for i in ids[:max_cells]:
        d = ndimage.distance_transform_edt(lab != i)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    return d1, d2


def weight_map(
    instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0, target: np.ndarray | None = None
) -> np.ndarray:
    """Ronneberger et al. 2015, Eq. 2: ``w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2))`` (float32).

    ``target`` is the binary training target (default :func:`separation_target`); the border term
    is added where the target is background. ``w0 = 0`` gives the class-balancing weights alone.
    """
    lab = np.asarray(instances)
    target = separation_target(lab) if target is None else target
    w = class_weights(target)[target]
    if w0 > 0:
        d1, d2 = border_distances(lab)
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
        w = w + np.where(target == 0, border, 0.0)
    return w.astype(np.float32)


__all__ = ["border_distances", "class_weights", "separation_target", "weight_map"]
