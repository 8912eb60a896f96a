"""Predictions are views of one quantity at fixed (x_t, t): eps, x_0, v and the flow velocity.

The formulas, in one place (the path's ``to_x0_eps`` and ``target`` call them). With
x_t = alpha_t x_0 + sigma_t eps:
- eps from x_0:  eps = (x_t - alpha_t x_0) / sigma_t
- x_0 from eps:  x_0 = (x_t - sigma_t eps) / alpha_t          (Ho et al. 2020, eq. 15)
- v (Salimans & Ho 2022, Sec. 4): v = alpha_t eps - sigma_t x_0, so with r = alpha^2 + sigma^2
  x_0 = (alpha_t x_t - sigma_t v) / r   and   eps = (sigma_t x_t + alpha_t v) / r
  (r = 1 on variance-preserving paths, the paper's case; r = 1 + sigma^2 on the VE path).
- the velocity u = alpha'_t x_0 + sigma'_t eps (flow matching): with x_t it is a 2x2 linear system.
"""

from __future__ import annotations

import torch

from difusion.errors import ConfigError

# mu: the posterior mean mu_tilde of the step t -> t - 1 (see variance.py); x_prev: the same
# quantity E[x_{t-1} | x_t] regressed on a draw of x_{t-1} (Nakkiran et al. 2024, Pseudocode 1);
# velocity: d x_t / dt (flow matching)
PREDICTIONS = ("eps", "x0", "v", "mu", "x_prev", "velocity")
STEP_MEANS = ("mu", "x_prev")  # predictions of E[x_{t-1} | x_t]: they need the path's step


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
    """(x_0, eps) = (alpha_t x_t - sigma_t v, sigma_t x_t + alpha_t v) / (alpha_t^2 + sigma_t^2):
    the 2x2 system x_t = alpha x_0 + sigma eps, v = alpha eps - sigma x_0 solved on any path."""
    r = alpha * alpha + sigma * sigma
    return (alpha * x_t - sigma * v) / r, (sigma * x_t + alpha * v) / r


def x0_eps_from_velocity(x_t, u, alpha, sigma, d_alpha, d_sigma):
    """Solve x_t = alpha x_0 + sigma eps, u = alpha' x_0 + sigma' eps for (x_0, eps); the
    determinant alpha sigma' - sigma alpha' is 1 on the rectified path (x_0 = x_t - t u)."""
    det = alpha * d_sigma - sigma * d_alpha
    return (d_sigma * x_t - sigma * u) / det, (alpha * u - d_alpha * x_t) / det


def target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """What a network trained for ``prediction`` should output for this (x_0, eps)."""
    check_prediction(prediction)
    if prediction in (*STEP_MEANS, "velocity"):
        raise ValueError(f"the {prediction} target needs the path: use path.target")
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return v_from_x0_eps(x0, eps, alpha, sigma)


def to_x0_eps(prediction: str, output: torch.Tensor, x_t: torch.Tensor, alpha, sigma):
    """Turn a network output of the given kind into the pair (x_0 estimate, eps estimate)."""
    check_prediction(prediction)
    if prediction in (*STEP_MEANS, "velocity"):
        raise ValueError(f"{prediction} needs the path: use path.to_x0_eps")
    if prediction == "eps":
        return x0_from_eps(x_t, output, alpha, sigma), output
    if prediction == "x0":
        return output, eps_from_x0(x_t, output, alpha, sigma)
    return x0_eps_from_v(x_t, output, alpha, sigma)


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ConfigError(
            f"unknown prediction {prediction!r}; choose one of: {', '.join(PREDICTIONS[:5])} "
            "(diffusion.prediction)"
        )
