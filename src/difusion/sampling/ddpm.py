"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), on all T steps or a respaced subsequence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.diffusion.variance import learned_log_variance
from difusion.errors import ConfigError
from difusion.sampling.step import Step

VARIANCES = ("beta", "beta_tilde", "learned")


def respaced_timesteps(T: int, steps: int) -> list[int]:
    """The times a ``steps``-step sampler visits: T down to 1 evenly spaced (Nichol & Dhariwal 2021,
    Sec. 4), then 0. All of T, T-1, ..., 1, 0 when steps >= T."""
    if steps >= T:
        return list(range(T, -1, -1))
    ts = torch.linspace(T, 1, steps).round().long().tolist()
    return sorted(set(ts), reverse=True) + [0]


@torch.no_grad()
def sample_ddpm(
    denoiser,
    path,
    x_T: torch.Tensor,
    *,
    timesteps: Sequence[int] | None = None,
    variance: str = "beta",
    y: torch.Tensor | None = None,
    noise: Callable[[Sequence[int]], torch.Tensor] | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Algorithm 2: for t = T..1, x_{t-1} = mu_tilde_t(x_t, x0_hat) + sigma_t z, with z = 0 at the last step.

    The mean is the posterior mean of eqs. 6-7 at the denoiser's x_0 estimate, which equals eq. 11's
    (1/sqrt(alpha_t)) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) when x_0 is not clipped.
    ``variance`` is sigma_t^2 = beta_t ("beta", Ho et al.'s choice for CIFAR-10), beta_tilde_t
    ("beta_tilde"), or the network's own (``learned``: improved DDPM eq. 15, for a denoiser with
    ``with_variance``, on any respaced grid). ``timesteps`` lists the times visited, descending, from the start to the end
    (default T, T-1, ..., 1, 0); each step goes from one to the next, so a list that skips times is
    respaced sampling and one that ends above 0 stops early. ``noise(shape)`` draws z (default
    torch.randn).
    """
    if variance not in VARIANCES:
        raise ConfigError(f"unknown variance {variance!r}; choose one of: {', '.join(VARIANCES)}")
    learned = variance == "learned"
    if learned and not getattr(path, "discrete", False):
        raise ConfigError("variance 'learned' is defined on the DDPM path; use beta or beta_tilde")
    if learned and not getattr(denoiser, "learn_sigma", False):
        raise ConfigError(
            "variance 'learned' needs a model trained with diffusion.learn_sigma=true; "
            "use beta or beta_tilde"
        )
    ts = list(timesteps) if timesteps is not None else list(range(path.T, -1, -1))
    draw = noise if noise is not None else (lambda shape: torch.randn(shape, device=x_T.device))
    x = x_T
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        if learned:
            x0, _, v = denoiser.with_variance(x, t, y)
        else:
            x0, _ = denoiser(x, t, y)
        mean, beta_tilde, beta = path.posterior(x0, x, t, s)
        if s > 0:
            if learned:  # improved DDPM eq. 15 on the skip t -> s
                std = (0.5 * learned_log_variance(path, t, s, v)).exp()
            else:
                std = (beta if variance == "beta" else beta_tilde).sqrt()
            x = mean + std * draw(x.shape)
        else:
            x = mean  # the last step adds no noise (z = 0); with s = 0 the mean is x0_hat
        if callback is not None:
            callback(Step(i, t, s, x, x0))
    return x
