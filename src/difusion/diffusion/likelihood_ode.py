"""Exact log-likelihood through the flow ODE: the instantaneous change of variables.

For dx/dt = v(x, t) the density along a trajectory obeys d log p_t(x_t) / dt = -div v(x_t, t)
(Chen et al. 2018, Theorem 1; Song et al. 2021 eq. 39 for the probability-flow ODE). Integrating
from the data (t = 0) to the noise (t = 1, where p_1 = N(0, I)):

    log p_0(x_0) = log N(x_1; 0, I) + int_0^1 div v(x_t, t) dt,     x_t solves the ODE from x_0.

The divergence is exact in low dimension (D backward passes), or Hutchinson's estimate
div v = E_z[z^T (dv/dx) z] with E[z z^T] = I (Rademacher z, one vector-Jacobian product; Grathwohl
et al. 2018, "FFJORD", one z per trajectory), unbiased for the divergence and therefore for the
log-likelihood up to the ODE solver's error.

Bits per dimension for 8-bit images on [-1, 1] (pixel k -> 2k/255 - 1, so one level is a bin of
width 2/255): uniform dequantization x + (2/255)(u - 1/2), u ~ U[0, 1)^D, and

    bits/dim = ( -log p(x_deq) / D - log(2/255) ) / log 2,

an upper bound (Jensen) on -log2 P(bin) / D, the discrete negative log-likelihood -- the quantity
the VLB of ``difusion.diffusion.likelihood`` bounds with the same bins (its decoder's bin is
[x - 1/255, x + 1/255]), so the two bits/dim compare directly. Data on L levels (the digits' 17)
uses bins of width 2/(L - 1) in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from difusion.errors import ConfigError

DIVERGENCES = ("exact", "hutchinson")
PIXEL_BIN = 2.0 / 255.0  # one 8-bit level on the [-1, 1] scale


def divergence_exact(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """div v = sum_i dv_i/dx_i by one backward pass per dimension (x must require grad)."""
    flat_v, flat_x = v.flatten(1), x
    div = torch.zeros(x.shape[0], dtype=v.dtype, device=v.device)
    for i in range(flat_v.shape[1]):
        (g,) = torch.autograd.grad(flat_v[:, i].sum(), flat_x, retain_graph=True)
        div = div + g.flatten(1)[:, i]
    return div


def divergence_hutchinson(v: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Hutchinson's estimate z^T (dv/dx) z (Hutchinson 1989): one vector-Jacobian product z^T J."""
    (g,) = torch.autograd.grad(v, x, z, retain_graph=True)
    return (g * z).flatten(1).sum(1)


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) summed over the dimensions of each example."""
    d = x[0].numel()
    return -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)


def ode_log_likelihood(
    velocity: Callable,
    x0: torch.Tensor,
    *,
    steps: int = 50,
    method: str = "rk4",
    divergence: str = "exact",
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_0(x_0) in nats per example, x_1): the augmented ODE d[x, l]/dt = [v, div v] from
    t = 0 to t = 1 on ``steps`` even steps (Euler, Heun or RK4), plus log N(x_1; 0, I).

    ``velocity(x, t, y)`` must be differentiable in x (``metrics.nll_ode.ode_velocity`` is)."""
    if divergence not in DIVERGENCES:
        raise ConfigError(f"divergence must be one of {', '.join(DIVERGENCES)}, got {divergence!r}")
    if method not in ("euler", "heun", "rk4"):
        raise ConfigError(f"unknown ODE solver {method!r}; choose euler, heun or rk4")
    z = None
    if divergence == "hutchinson":  # one Rademacher vector per trajectory (FFJORD)
        z = torch.randint(0, 2, x0.shape, generator=generator).to(x0) * 2 - 1

    def f(x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            tv = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
            v = velocity(x, tv, y)
            div = divergence_exact(v, x) if z is None else divergence_hutchinson(v, x, z)
        return v.detach(), div.detach()

    x = x0
    delta = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)  # int_0^t div v dt
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        k1, d1 = f(x, t)
        if method == "euler":
            x, delta = x + h * k1, delta + h * d1
        elif method == "heun":
            k2, d2 = f(x + h * k1, t + h)
            x, delta = x + 0.5 * h * (k1 + k2), delta + 0.5 * h * (d1 + d2)
        else:
            k2, d2 = f(x + 0.5 * h * k1, t + 0.5 * h)
            k3, d3 = f(x + 0.5 * h * k2, t + 0.5 * h)
            k4, d4 = f(x + h * k3, t + h)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    return standard_normal_log_prob(x) + delta, x


def level_bin(levels: int) -> float:
    """The width of one of ``levels`` evenly spaced values on [-1, 1]: 2/(L - 1)."""
    return 2.0 / (levels - 1)


def dequantize(
    x: torch.Tensor, generator: torch.Generator | None = None, levels: int = 256
) -> torch.Tensor:
    """Uniform dequantization of data on ``levels`` values in [-1, 1] (8-bit by default):
    x + b (u - 1/2), u ~ U[0, 1), b = 2/(L - 1) the bin width."""
    u = torch.rand(x.shape, generator=generator).to(x)
    return x + level_bin(levels) * (u - 0.5)


def bits_per_dim(log_p: torch.Tensor, dims: int, bin_width: float = PIXEL_BIN) -> torch.Tensor:
    """(-log p / D - log(bin width)) / log 2: the continuous density of dequantized data as the
    discrete NLL in bits per dimension (an upper bound on it)."""
    return (-log_p / dims - math.log(bin_width)) / math.log(2.0)
