"""Predictions are views of one quantity at fixed (x_t, t): eps, x_0 and v.

With x_t = alpha_t x_0 + sigma_t eps and alpha_t^2 + sigma_t^2 = 1 (variance preserving):
- eps from x_0:  eps = (x_t - alpha_t x_0) / sigma_t
- x_0 from eps:  x_0 = (x_t - sigma_t eps) / alpha_t          (Ho et al. 2020, eq. 15)
- v (Salimans & Ho 2022, Sec. 4): v = alpha_t eps - sigma_t x_0, so
  x_0 = alpha_t x_t - sigma_t v   and   eps = sigma_t x_t + alpha_t v.
"""

from __future__ import annotations

import torch

from difusion.errors import ConfigError

PREDICTIONS = ("eps", "x0", "v", "mu")  # mu: the posterior mean mu_tilde (see variance.py)


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """x_0 = (x_t - sigma_t eps) / alpha_t (Ho et al. eq. 15)."""
    return (x_t - sigma * eps) / alpha


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """eps = (x_t - alpha_t x_0) / sigma_t, the inverse of eq. 4 for the noise."""
    return (x_t - alpha * x0) / sigma


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """v = alpha_t eps - sigma_t x_0 (Salimans & Ho 2022)."""
    return alpha * eps - sigma * x0


def x0_eps_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """(x_0, eps) = (alpha_t x_t - sigma_t v, sigma_t x_t + alpha_t v); needs alpha^2 + sigma^2 = 1."""
    return alpha * x_t - sigma * v, sigma * x_t + alpha * v


def target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """What a network trained for ``prediction`` should output for this (x_0, eps)."""
    check_prediction(prediction)
    if prediction == "mu":
        raise ValueError("the mu target needs the path: use difusion.diffusion.variance.mu_target")
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return v_from_x0_eps(x0, eps, alpha, sigma)


def to_x0_eps(prediction: str, output: torch.Tensor, x_t: torch.Tensor, alpha, sigma):
    """Turn a network output of the given kind into the pair (x_0 estimate, eps estimate)."""
    check_prediction(prediction)
    if prediction == "mu":
        raise ValueError("mu needs the path: use difusion.diffusion.variance.predicted_x0_eps")
    if prediction == "eps":
        return x0_from_eps(x_t, output, alpha, sigma), output
    if prediction == "x0":
        return output, eps_from_x0(x_t, output, alpha, sigma)
    return x0_eps_from_v(x_t, output, alpha, sigma)


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ConfigError(
            f"unknown prediction {prediction!r}; choose one of: {', '.join(PREDICTIONS)} "
            "(diffusion.prediction)"
        )
