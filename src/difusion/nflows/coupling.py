"""Affine coupling layers (Dinh et al. 2017, "Density estimation using Real NVP", Sec. 3.2-3.4).

A coupling layer keeps the coordinates a binary mask b selects and moves the others by an affine
map whose scale and shift depend only on the kept ones (eq. 9):

    y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))

Its Jacobian is triangular (eq. 6: the kept coordinates pass unchanged, the others depend on
themselves only through exp(s)), so log |det J| = sum_j (1 - b_j) s_j(b * x), and the inverse needs
no inversion of s or t (eq. 8). Every flow here works on flat vectors; a mask is built from the
data's shape (:func:`make_mask`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difusion.config import NFLOW_MASKS
from difusion.errors import ConfigError


def checkerboard_mask(shape: tuple[int, ...], parity: int) -> torch.Tensor:
    """The checkerboard of Dinh et al. Sec. 3.4, flattened: pixel (i, j) of an image (C, H, W) is
    kept where (i + j) % 2 == parity; a point (D,) keeps every other coordinate."""
    if len(shape) == 3:
        c, h, w = shape
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        board = ((i + j) % 2 == parity).float()
        return board.expand(c, h, w).reshape(-1).clone()
    return (torch.arange(math.prod(shape)) % 2 == parity).float()


def half_mask(dim: int, parity: int) -> torch.Tensor:
    """Keep the first half of the flattened vector (parity 0) or the second (parity 1)."""
    first = (torch.arange(dim) < dim // 2).float()
    return first if parity == 0 else 1.0 - first


def make_mask(kind: str, shape: tuple[int, ...], parity: int) -> torch.Tensor:
    """The mask ``kind`` (:data:`difusion.config.NFLOW_MASKS`) for data of ``shape``; layer i of a
    flow takes parity i % 2, so each coordinate is moved by every other layer."""
    if kind == "checkerboard":
        return checkerboard_mask(shape, parity)
    if kind == "half":
        return half_mask(math.prod(shape), parity)
    raise ConfigError(f"nflow.mask must be one of: {', '.join(NFLOW_MASKS)}; got {kind!r}")


def conditioner(dim: int, hidden: int, depth: int, out: int) -> nn.Sequential:
    """An MLP from the kept coordinates to ``out`` numbers; its last layer starts at zero, so every
    coupling starts as the identity (log |det J| = 0)."""
    layers: list[nn.Module] = []
    width = dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.01)]
        width = hidden
    last = nn.Linear(width, out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class AffineCoupling(nn.Module):
    """One affine coupling layer over flat vectors (Dinh et al. 2017, eqs. 6-9).

    The log-scale is bounded, s = scale * tanh(raw), with a learned ``scale`` per coordinate, so
    no single step can blow a coordinate up (Dinh et al. bound s the same way)."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        self.net = conditioner(dim, hidden, depth, 2 * dim)
        self.scale = nn.Parameter(torch.ones(dim))

    def scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(b * x) and t(b * x), zero on the kept coordinates."""
        raw, t = self.net(kept).chunk(2, dim=1)
        free = 1.0 - self.mask
        return self.scale * torch.tanh(raw) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (y, log |det dy/dx|) per example."""
        b = self.mask
        s, t = self.scale_shift(b * x)
        y = b * x + (1 - b) * (x * torch.exp(s) + t)
        log_det = ((1 - b) * s).sum(1)
        return y, log_det

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y -> x (eq. 8): the kept coordinates are y's own, so s and t are known again."""
        b = self.mask
        s, t = self.scale_shift(b * y)
        return b * y + (1 - b) * (y - t) * torch.exp(-s)
