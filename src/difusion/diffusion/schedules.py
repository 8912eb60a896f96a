"""Beta schedules beta_1..beta_T of the forward process (Ho et al. 2020 eq. 2; Nichol & Dhariwal 2021).

Every function returns a float64 tensor of length T whose entry ``i`` is beta_{i+1}: the paper's
t = 1..T. The tables built from it (``difusion.diffusion.path``) put the clean data at index 0.
"""

from __future__ import annotations

import math

import torch

from difusion.errors import ConfigError


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020 Sec. 4: beta linear from 1e-4 to 0.02 at T = 1000.

    For other T both ends are scaled by 1000/T (improved-diffusion), so the total noise added,
    and hence alpha_bar_T, stays about the same.
    """
    scale = 1000.0 / T
    return torch.linspace(scale * beta_1, scale * beta_T, T, dtype=torch.float64)


def betas_from_alpha_bar(alpha_bar_fn, T: int, max_beta: float = 0.999) -> torch.Tensor:
    """beta_t = min(1 - alpha_bar(t/T) / alpha_bar((t-1)/T), max_beta) for a continuous alpha_bar."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    a = alpha_bar_fn(t)
    return (1.0 - a[1:] / a[:-1]).clamp(max=max_beta)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021 eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2).

    beta is clipped at 0.999 to avoid the singularity at t = T (the paper's choice).
    """

    def f(u: torch.Tensor) -> torch.Tensor:
        return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return betas_from_alpha_bar(lambda u: f(u) / f(torch.zeros(())), T, max_beta)


def sigmoid_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """beta_t = beta_1 + (beta_T - beta_1) * sigmoid(linspace(-6, 6, T)) (GeoDiff, Xu et al. 2022).

    Slow at both ends, fast in the middle. At T = 1000 it equals diffusers' ``beta_schedule="sigmoid"``;
    for other T both ends are scaled by 1000/T like the linear schedule (diffusers does not scale).
    """
    scale = 1000.0 / T
    x = torch.linspace(-6, 6, T, dtype=torch.float64)
    return scale * (beta_1 + (beta_T - beta_1) * torch.sigmoid(x))


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(alpha_bar) so that alpha_bar_T = 0 (the
    last step is pure noise, as at sampling time) while alpha_bar_1 keeps its value."""
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    # Shift so that the last is 0, then scale so that the first is back where it was.
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas, "sigmoid": sigmoid_betas}


def make_betas(name: str, T: int) -> torch.Tensor:
    """The named schedule with T steps: one of ``linear``, ``cosine``, ``sigmoid``."""
    if name not in SCHEDULES:
        raise ConfigError(
            f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)} (diffusion.schedule)"
        )
    if not isinstance(T, int) or T < 2:
        raise ConfigError(f"diffusion.T must be an integer >= 2, got {T!r}")
    betas = SCHEDULES[name](T)
    if betas.max() >= 1.0:  # the 1000/T rescaling of linear/sigmoid breaks down for T <= 20
        raise ConfigError(
            f"the {name} schedule with T={T} has beta_T = {betas.max().item():.3g} >= 1; "
            "use diffusion.T > 20 or diffusion.schedule=cosine"
        )
    return betas
