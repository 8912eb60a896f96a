"""Inpainting with a trained unconditional model: keep what is known, let the sampler fill the rest.

At every reverse step t -> s the known pixels are replaced by the original noised to level s,
x_s^known ~ q(x_s | x_0) (eq. 4), and only the unknown pixels come from the model's step
(the "replacement" method; Song et al. 2021, Sec. 5 and App. I; RePaint, Lugmayr et al. 2022, eq. 8):

    x_s = m * x_s^known + (1 - m) * x_s^model.

The two halves are noised independently, so they can disagree. RePaint's resampling fixes that by
harmonising them: after a step it jumps back to t with the forward transition q(x_t | x_s)
(x_t = sqrt(alpha_bar_t / alpha_bar_s) x_s + sqrt(1 - alpha_bar_t / alpha_bar_s) z) and repeats the
step, ``resample`` times in all (1 = plain replacement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.errors import ConfigError
from difusion.sampling.ddpm import VARIANCES, Step


@torch.no_grad()
def sample_inpaint(
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[int],
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    variance: str = "beta_tilde",
    resample: int = 1,
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Ancestral steps on ``timesteps`` (descending to 0, any path) that keep ``known``
    where ``mask`` is 1. ``mask`` broadcasts against x (for images (N or 1, 1 or C, H, W))."""
    if variance not in VARIANCES:
        raise ConfigError(f"unknown variance {variance!r}; choose one of: {', '.join(VARIANCES)}")
    if resample < 1:
        raise ConfigError(f"resample must be at least 1, got {resample}")
    if known.shape != x_T.shape:
        raise ConfigError(f"known images {tuple(known.shape)} and x_T {tuple(x_T.shape)} differ")
    draw = noise if noise is not None else (lambda shape: torch.randn(shape, device=x_T.device))
    m = mask.to(x_T.dtype)
    x = x_T
    ts = list(timesteps)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        for r in range(resample):
            x0, _ = denoiser(x, t, y)
            mean, beta_tilde, beta = path.posterior(x0, x, t, s)
            if s > 0:
                var = beta if variance == "beta" else beta_tilde
                x_s = mean + var.sqrt() * draw(x.shape)
                known_s = path.q_sample(known, s, draw(x.shape))  # eq. 4 at level s
            else:
                x_s, known_s = mean, known
            x_s = m * known_s + (1 - m) * x_s
            if r + 1 < resample and s > 0:  # RePaint: back to t through q(x_t | x_s), then again
                # q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2 I), alpha_{t|s} = alpha_t / alpha_s
                (a_t, s_t), (a_s, s_s) = path.alpha_sigma(t), path.alpha_sigma(s)
                a_ts = a_t / a_s
                x = a_ts * x_s + max(s_t**2 - a_ts**2 * s_s**2, 0.0) ** 0.5 * draw(x.shape)
        x = x_s
        if callback is not None:
            callback(Step(i, t, s, x, x0))
    return x
