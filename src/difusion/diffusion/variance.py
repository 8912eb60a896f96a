"""The reverse step's mean and variance from a network output (Ho et al. 2020; Nichol & Dhariwal 2021).

p(x_s | x_t) = N(mu_theta, Sigma_theta). The mean is the posterior mean q(x_s | x_t, x_0) at the
network's x_0 estimate; the variance is fixed (beta_t or beta-tilde_t) or learned as an
interpolation in the log domain (improved DDPM eq. 15):

    Sigma_theta = exp(v log beta_t + (1 - v) log beta-tilde_t)

with v an extra output channel per pixel, unconstrained (the paper applies no limits on v either).
On a respaced grid t -> s both ends use the skip's beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s.
beta-tilde_1 = 0, so its log is clipped to log beta-tilde_2 as in improved DDPM.
"""

from __future__ import annotations

import torch

from difusion.errors import ConfigError


def split_output(
    output: torch.Tensor, learn_sigma: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A learned-variance network outputs 2C channels: the mean's parameterization, then v."""
    if not learn_sigma:
        return output, None
    c = output.shape[1] // 2
    return output[:, :c], output[:, c:]


def fixed_log_variance(path, t, s, kind: str, like: torch.Tensor) -> torch.Tensor:
    """log sigma^2 for the fixed choices of Ho et al.: ``beta`` (beta_{t|s}) or ``beta_tilde``."""
    _, beta_tilde, beta = path.posterior(like, like, t, s)
    if kind == "beta":
        return torch.log(beta.clamp(min=1e-20)).expand_as(like)
    if kind == "beta_tilde":
        return clipped_log_beta_tilde(path, t, s, beta_tilde).expand_as(like)
    raise ConfigError(f"unknown fixed variance {kind!r}; choose beta or beta_tilde")


def clipped_log_beta_tilde(path, t, s, beta_tilde: torch.Tensor) -> torch.Tensor:
    """log beta-tilde, with the zero at s = 0 replaced by beta-tilde of the grid's next step."""
    floor = path.beta_tilde[2].item() if path.T >= 2 else 1e-20
    return torch.log(torch.where(beta_tilde > 0, beta_tilde, torch.full_like(beta_tilde, floor)))


def learned_log_variance(path, t, s, v: torch.Tensor) -> torch.Tensor:
    """Improved DDPM eq. 15: log Sigma = v log beta_{t|s} + (1 - v) log beta-tilde_{t|s}."""
    _, beta_tilde, beta = path.posterior(v, v, t, s)
    log_beta = torch.log(beta.clamp(min=1e-20))
    return v * log_beta + (1.0 - v) * clipped_log_beta_tilde(path, t, s, beta_tilde)
