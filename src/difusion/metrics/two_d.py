"""Distances between point clouds, for 2-D toy data where the true distribution is at hand."""

from __future__ import annotations

import torch


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo); 0 iff the laws agree."""
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, projections: int = 256, seed: int = 0
) -> float:
    """Sliced 1-Wasserstein distance: W1 of 1-D projections on random directions, averaged.

    Needs equal sample sizes (the 1-D W1 is then the mean gap between sorted projections).
    """
    n = min(len(x), len(y))
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px = (x[:n].double() @ dirs).sort(dim=0).values
    py = (y[:n].double() @ dirs).sort(dim=0).values
    return float((px - py).abs().mean())
