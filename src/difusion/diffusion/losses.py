"""Training objectives over the Gaussian path (Ho et al. 2020, Algorithm 1 and eq. 14)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from difusion.diffusion.parameterization import target
from difusion.diffusion.path import DDPMPath

Network = Callable[..., torch.Tensor]


def sample_timesteps(n: int, T: int, generator: torch.Generator | None = None, device=None):
    """t ~ Uniform{1, ..., T}, one per example (Algorithm 1, line 3)."""
    return torch.randint(1, T + 1, (n,), generator=generator).to(device)


def simple_loss(
    network: Network,
    path: DDPMPath,
    x0: torch.Tensor,
    *,
    prediction: str = "eps",
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """L_simple (Ho et al. eq. 14) for the eps, x_0 or v target: the mean squared error per pixel.

    Algorithm 1: t ~ U{1..T}, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
    loss = || target - network(x_t, t) ||^2, averaged over pixels and the batch.
    """
    t = sample_timesteps(x0.shape[0], path.T, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    alpha, sigma = path.alpha_t(t, x0), path.sigma_t(t, x0)
    x_t = alpha * x0 + sigma * eps  # eq. 4
    with torch.autocast(x0.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output = network(x_t, t.to(x0.dtype), y)
    goal = target(prediction, x0, eps, alpha, sigma)
    return (output.float() - goal).pow(2).mean()


def drop_labels(
    y: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Classifier-free guidance training (Ho & Salimans 2022, Algorithm 1): replace each label by
    the null label with probability ``p_uncond``, so one network learns eps(x, y) and eps(x, null)."""
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)
