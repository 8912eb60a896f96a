"""The Step-by-Step tutorial's two samplers, line by line (Nakkiran et al. 2024, Pseudocodes 2 and 3).

Both take a mean predictor: ``f(x_t, k)`` returns E[x_{t - Delta t} | x_t] at step k of the
discrete VE path (tutorial time t = k / T). :func:`mean_predictor` makes one from any denoiser of the
lab (a trained network, whatever it predicts, or an exact oracle) through Claim 2.

- Pseudocode 2 (stochastic, DDPM): x_{t - Delta t} = f(x_t, t) + N(0, sigma_q^2 Delta t), down to t = 0,
  noise at every step, the last one included (Ho et al.'s sampler adds none at the last step).
- Pseudocode 3 (deterministic, DDIM): x_{t - Delta t} = x_t + lambda (f(x_t, t) - x_t) with
  lambda = sigma_t / (sigma_{t - Delta t} + sigma_t). It is the lab's DDIM with eta = 0 on this
  path, step for step: (tests/test_step_by_step.py checks both).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from difusion.diffusion.step_by_step import (
    ddim_lambda,
    step_mean_from_x0,
    step_variance,
    x0_from_step_mean,
)
from difusion.sampling.step import Step

MeanPredictor = Callable[[torch.Tensor, int], torch.Tensor]  # (x_t, k) -> E[x_{t-Delta t} | x_t]


def mean_predictor(denoiser, y: torch.Tensor | None = None) -> MeanPredictor:
    """f(x_t, k) = E[x_{k-1} | x_k] from a denoiser's x_0 estimate, by Claim 2."""

    def f(x_t: torch.Tensor, k: int) -> torch.Tensor:
        x0, _ = denoiser(x_t, k, y)
        return step_mean_from_x0(x0, x_t, k)

    return f


@torch.no_grad()
def sample_pseudocode2(
    f: MeanPredictor,
    path,
    x_1: torch.Tensor,
    *,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Pseudocode 2: for t = 1, 1 - Delta t, ..., Delta t: x_{t-Delta t} <- f(x_t, t) + N(0,
    sigma_q^2 Delta t); return x_0."""
    draw = noise if noise is not None else (lambda shape: torch.randn(shape, device=x_1.device))
    std = math.sqrt(step_variance(path))
    x = x_1
    for i, k in enumerate(range(path.T, 0, -1)):
        mean = f(x, k)
        if callback is not None:
            x0 = x0_from_step_mean(mean, x, k)
        x = mean + std * draw(x.shape)
        if callback is not None:
            callback(Step(i, k, k - 1, x, x0))
    return x


@torch.no_grad()
def sample_pseudocode3(
    f: MeanPredictor, path, x_1: torch.Tensor, *, callback: Callable[[Step], None] | None = None
) -> torch.Tensor:
    """Pseudocode 3: for t = 1, ..., Delta t: x_{t-Delta t} <- x_t + lambda (f(x_t, t) - x_t),
    lambda = sigma_t / (sigma_{t-Delta t} + sigma_t); return x_0."""
    x = x_1
    for i, k in enumerate(range(path.T, 0, -1)):
        mean = f(x, k)
        if callback is not None:
            x0 = x0_from_step_mean(mean, x, k)
        x = x + ddim_lambda(path, k) * (mean - x)
        if callback is not None:
            callback(Step(i, k, k - 1, x, x0))
    return x
