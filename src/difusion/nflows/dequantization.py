"""Discrete images as the flows see them: integer grey levels, uniform dequantization, bits/dim.

The lab stores images on [-1, 1]; scikit-learn's digits hold levels k = 0..16 stored as
x = k / 16 * 2 - 1. A continuous density p(x) gives no probability to a discrete k, so RealNVP is
trained on y = k + u, u ~ U[0, 1)^D (Theis et al. 2016; Dinh et al. 2017, Sec. 4.1), rescaled to
x = 2 y / L - 1 on [-1, 1). Jensen's inequality bounds the discrete model's code length:

    -log P(k) = -log E_u[p_y(k + u)] <= E_u[-log p_y(k + u)] = E_u[-log p_x(x)] + D log(L / 2)

(the last term is the Jacobian of y -> x). Divided by D log 2 this is the bound in bits/dim; a flow
that is uniform on [-1, 1)^D scores log2 L, 4.09 for the 17-level digits.
"""

from __future__ import annotations

import math

import torch

from difusion.errors import DifusionError


def to_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Images on [-1, 1] -> their integer levels k = (x + 1) / 2 * (L - 1), as floats; data that
    do not lie on L levels are refused (a bin width that does not match the data)."""
    k = (x.float() + 1) / 2 * (levels - 1)
    off = float((k - k.round()).abs().max()) if k.numel() else 0.0
    if off > 1e-3 or (k.numel() and (k.min() < -1e-3 or k.max() > levels - 1 + 1e-3)):
        raise DifusionError(
            f"the data do not lie on {levels} grey levels (a pixel is {off:.3f} of a level off); "
            "set nflow.levels to the data's number of levels (digits: 17, 8-bit images: 256)"
        )
    return k.round()


def dequantize(k: torch.Tensor, levels: int, generator: torch.Generator) -> torch.Tensor:
    """x = 2 (k + u) / L - 1 with u ~ U[0, 1)^D: a continuous point in level k's bin on [-1, 1)."""
    u = torch.rand(k.shape, generator=generator).to(k.device)
    return 2 * (k + u) / levels - 1


def quantize(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The level whose bin holds x (the inverse of :func:`dequantize`); x outside [-1, 1) gives a
    level outside 0..L-1."""
    return torch.floor((x + 1) / 2 * levels)


def levels_to_images(k: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels -> the lab's [-1, 1] scale, x = k / (L - 1) * 2 - 1 (out-of-range clamped)."""
    return k.clamp(0, levels - 1) / (levels - 1) * 2 - 1


def dequantized_bits_per_dim(log_px: torch.Tensor, dim: int, levels: int) -> torch.Tensor:
    """The bound above in bits/dim, from log p_x(x) (nats) of dequantized points x on [-1, 1)."""
    return (-log_px / dim + math.log(levels / 2)) / math.log(2)
