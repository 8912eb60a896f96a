"""Euler and Heun on the Karras et al. (2022, "EDM") noise grid.

EDM writes the same Gaussian path in the variance-exploding coordinates x~ = x_t / alpha_t with
noise level sigma~ = sigma_t / alpha_t (so x~ = x_0 + sigma~ eps). The probability-flow ODE is then

    dx~ / dsigma~ = (x~ - D(x~; sigma~)) / sigma~ = eps_hat            (EDM eq. 3 with s(t) = 1),

which Euler integrates to first order (one step of it is exactly DDIM with eta = 0) and Heun's
method (EDM Algorithm 1, no churn) to second order with two network calls per step, except the
last step to sigma~ = 0, which is an Euler step. The grid (EDM eq. 5, rho = 7) packs steps near the
data:

    sigma~_i = (sigma~_max^(1/rho) + i/(N-1) (sigma~_min^(1/rho) - sigma~_max^(1/rho)))^rho,  sigma~_N = 0,

with sigma~_min that of the path at t = 1 and sigma~_max that at t = T, capped at EDM's 80: a cosine
schedule reaches sigma~ = 2e4 at t = T, and an uncapped grid would spend most of its steps in
near-pure noise. Starting at sigma~ = 80 from x_T ~ N(0, I) ignores a signal of scale
alpha = 1/sqrt(1 + 80^2) = 0.0125, as EDM does. Each sigma~_i is turned into a
(fractional) time of the path through its log-SNR (lambda = -2 log sigma~), so a network trained on
integer times sees times in between: its sinusoidal embedding takes real numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from difusion.diffusion.path import as_time
from difusion.errors import ConfigError
from difusion.sampling.ddpm import Step


def karras_timesteps(path, steps: int, rho: float = 7.0, sigma_max: float = 80.0) -> list[float]:
    """``steps`` + 1 descending times: the Karras grid (EDM eq. 5) as fractional times, then 0.
    It spans the path from ``t_max`` to its first step (t = 1 on DDPM, t_max / 1000 otherwise)."""
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    t_hi, t_lo = path.t_max, (1.0 if path.discrete else path.t_max / 1000)
    lam_hi, lam_lo = path.log_snr(as_time(t_hi)), path.log_snr(as_time(t_lo))
    s_max, s_min = math.exp(-0.5 * lam_hi.item()), math.exp(-0.5 * lam_lo.item())
    capped = s_max > sigma_max
    s_max = min(s_max, sigma_max)
    if steps == 1:
        return [path.t_at_log_snr(-2 * math.log(s_max)).item() if capped else float(t_hi), 0.0]
    i = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    sig = (s_max ** (1 / rho) + i * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    ts = path.t_at_log_snr(-2 * sig.log()).tolist()
    ts[-1] = float(t_lo)  # exact ends
    if not capped:
        ts[0] = float(t_hi)
    return ts + [0.0]


def _sigma_tilde(path, t) -> tuple[float, float]:
    a, s = path.alpha_sigma(t)
    return a, s / a


@torch.no_grad()
def sample_euler(
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[float],
    *,
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE in sigma~; one network call per step."""
    return _solve(denoiser, path, x_T, timesteps, y, callback, heun=False)


@torch.no_grad()
def sample_heun(
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[float],
    *,
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Heun steps (EDM Algorithm 1 without churn): 2 network calls per step, 1 for the last."""
    return _solve(denoiser, path, x_T, timesteps, y, callback, heun=True)


def _solve(denoiser, path, x_T, timesteps, y, callback, heun: bool) -> torch.Tensor:
    x = x_T  # kept in the path's own (variance-preserving) coordinates x = alpha x~
    ts = list(timesteps)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0, eps = denoiser(x, t, y)
        a_t, sg_t = _sigma_tilde(path, t)
        a_s, sg_s = _sigma_tilde(path, s)
        # x~_s = x~_t + (sigma~_s - sigma~_t) eps_hat, written back in x = alpha x~ (Euler)
        x_s = (a_s / a_t) * x + a_s * (sg_s - sg_t) * eps
        if heun and sg_s > 0:
            _, eps_s = denoiser(x_s, s, y)  # the slope at the end of the step (trapezoid rule)
            x_s = (a_s / a_t) * x + a_s * (sg_s - sg_t) * 0.5 * (eps + eps_s)
        x = x_s
        if callback is not None:
            callback(Step(i, t, s, x, x0))
    return x
