"""DDIM sampling (Song, Meng, Ermon 2021): eq. 12 with the noise scale of eq. 16, on any path.

Notation warning: DDIM writes alpha_t for what DDPM calls alpha_bar_t. In the (alpha, sigma) form
of every path here (on DDPM alpha_t = sqrt(alpha_bar_t)), eq. 12 from t to an earlier time s reads

    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,     c^2 = eta^2 var_tilde(t, s),

with var_tilde the posterior variance of q(x_s | x_t, x_0) (eq. 16: on DDPM
c = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)).
eta = 0 is the deterministic DDIM; eta = 1 has DDPM's posterior variance beta_tilde.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.errors import ConfigError
from difusion.sampling.ddpm import Step

SPACINGS = ("uniform", "trailing", "quadratic")
_ONE = torch.zeros(1, dtype=torch.float64)  # float64 "like" for per-step scalars


def ddim_timesteps(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The times a ``steps``-step sampler visits, descending and ending at 0 (paper indexing 1..T).

    - uniform: every T//steps-th time starting at 1, as in the DDIM code (does not reach T);
    - trailing: evenly spaced ending exactly at T (Lin et al. 2023 recommend starting at T);
    - quadratic: t_i ~ i^2, dense near the data, as DDIM used for CIFAR-10.
    """
    if spacing not in SPACINGS:
        raise ConfigError(f"unknown spacing {spacing!r}; choose one of: {', '.join(SPACINGS)}")
    if not 1 <= steps <= T:
        raise ConfigError(f"steps must be between 1 and T = {T}, got {steps}")
    if spacing == "uniform":
        ts = [1 + i * (T // steps) for i in range(steps)]
    elif spacing == "trailing":
        ts = [round(T - i * T / steps) for i in range(steps)]
    else:
        ts = (torch.linspace(0, (0.8 * T) ** 0.5, steps) ** 2).long().add(1).tolist()
    return sorted(set(ts), reverse=True) + [0]


@torch.no_grad()
def sample_ddim(
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[int],
    *,
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    noise: Callable[[Sequence[int]], torch.Tensor] | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """DDIM from timesteps[0] down to timesteps[-1] (eq. 12, sigma from eq. 16 scaled by ``eta``)."""
    draw = noise if noise is not None else (lambda shape: torch.randn(shape, device=x_T.device))
    x = x_T
    ts = list(timesteps)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0, eps = denoiser(x, t, y)
        a_s, s_s = path.alpha_sigma(s)
        c2 = eta**2 * path.posterior_coefs(t, s, _ONE)[2].item()  # eq. 16: c^2 = eta^2 var_tilde
        x = a_s * x0 + max(s_s**2 - c2, 0.0) ** 0.5 * eps  # eq. 12
        if c2 > 0 and s > 0:
            x = x + c2**0.5 * draw(x.shape)
        if callback is not None:
            callback(Step(i, t, s, x, x0))
    return x
