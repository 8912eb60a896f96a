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
    """L_simple (Ho et al. eq. 14) for the eps, x_0, v or x_prev target: the mean squared error
    per pixel.

    Algorithm 1: t ~ U{1..T}, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
    loss = || target - network(x_t, t) ||^2, averaged over pixels and the batch.
    """
    if prediction == "x_prev":  # Nakkiran et al. Pseudocode 1: regress on a draw of x_{t-1}
        return step_loss(network, path, x0, y=y, generator=generator, autocast_dtype=autocast_dtype)
    t = sample_timesteps(x0.shape[0], path.T, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    alpha, sigma = path.alpha_t(t, x0), path.sigma_t(t, x0)
    x_t = alpha * x0 + sigma * eps  # eq. 4
    with torch.autocast(x0.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output = network(x_t, t.to(x0.dtype), y)
    goal = target(prediction, x0, eps, alpha, sigma)
    return (output.float() - goal).pow(2).mean()


def step_loss(
    network: Network,
    path,
    x0: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Pseudocode 1 of Nakkiran et al. 2024: t ~ U{1..T}, (x_t, x_{t-1}) from the forward process
    (:func:`step_pair`), loss = || x_{t-1} - network(x_t, t) ||^2, averaged over pixels and batch."""
    t = sample_timesteps(x0.shape[0], path.T, generator, x0.device)
    x_t, x_prev = step_pair(path, x0, t, generator)
    with torch.autocast(x0.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output = network(x_t, t.to(x0.dtype), y)
    return (output.float() - x_prev).pow(2).mean()


def step_pair(path, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None):
    """(x_t, x_{t-1}) drawn as the forward process makes them (Nakkiran et al. 2024, Pseudocode 1):
    x_{t-1} ~ q(x_{t-1} | x_0), then one more step x_t = alpha_{t|t-1} x_{t-1} + sigma_{t|t-1} eta.
    On the tutorial's VE path that is x_{t-1} = x_0 + N(0, sigma_q^2 (t - Delta t)), then
    x_t = x_{t-1} + N(0, sigma_q^2 Delta t). The best regressor of x_{t-1} on x_t is E[x_{t-1} | x_t]."""
    e1 = torch.randn(x0.shape, generator=generator).to(x0.device)
    e2 = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_prev = path.q_sample(x0, t - 1, e1)
    a_t, a_s = path.alpha_t(t, x0), path.alpha_t(t - 1, x0)
    s_t, s_s = path.sigma_t(t, x0), path.sigma_t(t - 1, x0)
    a_ts = a_t / a_s  # alpha_{t|t-1}; sigma_{t|t-1}^2 = sigma_t^2 - alpha_{t|t-1}^2 sigma_{t-1}^2
    return a_ts * x_prev + (s_t**2 - a_ts**2 * s_s**2).clamp(min=0).sqrt() * e2, x_prev


def drop_labels(
    y: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Classifier-free guidance training (Ho & Salimans 2022, Algorithm 1): replace each label by
    the null label with probability ``p_uncond``, so one network learns eps(x, y) and eps(x, null)."""
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def diffusion_loss(
    network: Network,
    path: DDPMPath,
    x0: torch.Tensor,
    *,
    prediction: str = "eps",
    loss: str = "simple",
    learn_sigma: bool = False,
    variance: str = "beta",
    weighting: str = "uniform",
    min_snr_gamma: float = 5.0,
    hybrid_lambda: float = 0.001,
    t: torch.Tensor | None = None,
    t_weight: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The objectives of Ho et al. and improved DDPM, per example, for one batch.

    - ``simple``: w(SNR_t) ||target - output||^2 (eq. 14 with a weighting from ``weighting.py``;
      the target is eps, x_0, v or the posterior mean mu_tilde).
    - ``vlb``: T L_{t-1}, a one-sample estimate of L_vlb = sum_t L_t in bits/dim (eq. 5), with the
      fixed ``variance`` or the learned one; with importance sampling pass ``t`` and ``t_weight``.
    - ``hybrid``: L_simple + lambda T L_{t-1} (improved DDPM eq. 16) where L_vlb sees the mean with
      a stop-gradient, so L_simple alone trains the mean and L_vlb trains only the variance.

    Returns (the batch's loss, L_{t-1} per example in bits/dim, extra numbers to log).
    """
    from difusion.diffusion.likelihood import mean_flat, vlb_term_bits
    from difusion.diffusion.variance import (
        fixed_log_variance,
        learned_log_variance,
        split_output,
    )
    from difusion.diffusion.weighting import loss_weight

    n = x0.shape[0]
    if t is None:
        t = sample_timesteps(n, path.T, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    alpha, sigma = path.alpha_t(t, x0), path.sigma_t(t, x0)
    x_t = alpha * x0 + sigma * eps  # eq. 4
    with torch.autocast(x0.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output = network(x_t, t.to(x0.dtype), y)
    pred, v = split_output(output.float(), learn_sigma)
    extras: dict[str, float] = {}
    total = torch.zeros(n, device=x0.device)
    vlb_t = torch.zeros(n, device=x0.device)
    if loss in ("simple", "hybrid"):
        mse = mean_flat((pred - path.target(prediction, x0, eps, t)) ** 2)
        snr = (alpha**2 / sigma**2).reshape(n)
        total = total + loss_weight(weighting, prediction, snr, min_snr_gamma) * mse
        extras["mse"] = mse.mean().item()
    if loss in ("hybrid", "vlb"):
        mean_pred = pred.detach() if loss == "hybrid" else pred  # eq. 16's stop-gradient
        x0_hat, _ = path.to_x0_eps(prediction, mean_pred, x_t, t)
        mean = path.posterior(x0_hat, x_t, t)[0]
        if learn_sigma:
            logvar = learned_log_variance(path, t, t - 1, v)
        else:
            logvar = fixed_log_variance(path, t, t - 1, variance, x_t)
        decoder = "discretized" if x0.dim() == 4 else "gaussian"
        vlb_t = vlb_term_bits(path, x0, x_t, t, mean, logvar, decoder=decoder)
        weight = t_weight.to(x0.device) if t_weight is not None else 1.0
        scale = hybrid_lambda * path.T if loss == "hybrid" else path.T
        total = total + scale * weight * vlb_t
        extras["vlb_term"] = vlb_t.mean().item()
    return total.mean(), vlb_t.detach(), extras
