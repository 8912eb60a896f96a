"""The variance-exploding path: x_t = x_0 + sigma(t) eps, alpha = 1 (Song & Ermon 2019; Song et al.
2021, the VE SDE; Nakkiran et al. 2024, "Step-by-Step Diffusion", Sec. 2).

Nakkiran et al. add Gaussian noise of variance sigma_q^2 per unit time, so x_t ~ N(x_0, sigma_q^2 t)
with t in [0, 1]: sigma(t) = sigma_max sqrt(t). Nothing is scaled down, so the noise end is
N(x_0, sigma_max^2 I), close to N(0, sigma_max^2 I) when sigma_max is much larger than the data.
Every sampler of the lab runs on it through the shared (alpha, sigma) formulas of ``path.py``.
"""

from __future__ import annotations

import torch

from difusion.diffusion.path import GaussianPath
from difusion.errors import ConfigError


class VEPath(GaussianPath):
    """alpha(t) = 1, sigma(t) = sigma_max sqrt(t) on t in [0, 1]."""

    t_max = 1.0
    time_scale = 1000.0

    def __init__(self, sigma_max: float = 10.0):
        if not sigma_max > 0:
            raise ConfigError(f"the VE path needs sigma_max > 0, got {sigma_max}")
        self.sigma_max = float(sigma_max)

    def alpha(self, t) -> torch.Tensor:
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def sigma(self, t) -> torch.Tensor:
        """sigma(t) = sigma_max sqrt(t): variance sigma_max^2 t, linear in time."""
        return self.sigma_max * torch.as_tensor(t, dtype=torch.float64).clamp(min=0).sqrt()

    def d_alpha(self, t) -> torch.Tensor:
        return torch.zeros_like(torch.as_tensor(t, dtype=torch.float64))

    def d_sigma(self, t) -> torch.Tensor:
        """d sigma / dt = sigma_max / (2 sqrt(t)) (infinite at t = 0)."""
        return 0.5 * self.sigma_max / torch.as_tensor(t, dtype=torch.float64).sqrt()

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """lambda = -2 log sigma  =>  t = exp(-lambda) / sigma_max^2, clamped to [0, 1]."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return (torch.exp(-lam) / self.sigma_max**2).clamp(0.0, 1.0)

    def describe(self) -> str:
        return f"variance exploding x_t = x_0 + {self.sigma_max:g} sqrt(t) eps"
