"""The variance-exploding path: x_t = x_0 + sigma(t) eps, alpha = 1 (Song & Ermon 2019; Song et al.
2021, the VE SDE; Nakkiran et al. 2024, "Step-by-Step Diffusion", Sec. 1.1).

Nakkiran et al. add Gaussian noise of variance sigma_q^2 per unit time, so x_t ~ N(x_0, sigma_q^2 t)
with t in [0, 1]: sigma(t) = sigma_max sqrt(t). Nothing is scaled down, so the noise end is
N(x_0, sigma_max^2 I), close to N(0, sigma_max^2 I) when sigma_max is much larger than the data.
Every sampler of the lab runs on it through the shared (alpha, sigma) formulas of ``path.py``.

With ``T`` the path is the tutorial's discretization (Sec. 1.3): Delta t = 1 / T, and times are the
step indices k = 0..T (tutorial time t = k / T), as on the DDPM path, so a network sees k and the
step k -> k - 1 is the tutorial's t -> t - Delta t: ``diffusion.path=ve`` trains and samples it.
"""

from __future__ import annotations

import torch

from difusion.diffusion.path import GaussianPath
from difusion.errors import ConfigError


class VEPath(GaussianPath):
    """alpha(t) = 1, sigma(t) = sigma_max sqrt(t) on t in [0, 1]; with ``T``, on the indices
    k = 0..T of the grid t = k / T (``discrete``: sigma(k) = sigma_max sqrt(k / T))."""

    t_max = 1.0
    time_scale = 1000.0

    def __init__(self, sigma_max: float = 10.0, T: int | None = None):
        if not sigma_max > 0:
            raise ConfigError(f"the VE path needs sigma_max > 0, got {sigma_max}")
        self.sigma_max = float(sigma_max)
        if T is not None:
            if T < 2:
                raise ConfigError(f"the discrete VE path needs T >= 2 steps, got {T}")
            self.T, self.t_max, self.time_scale, self.discrete = int(T), float(T), 1.0, True
            k = torch.arange(self.T + 1, dtype=torch.float64)
            # var_tilde of the step k -> k - 1: sigma_q^2 Delta t (k - 1) / k (0 at k = 0); the
            # floor the fixed-variance sampler needs (variance.clipped_log_beta_tilde)
            self.beta_tilde = self.sigma_max**2 / self.T * ((k - 1) / k.clamp(min=1)).clamp(min=0)

    @property
    def _unit(self) -> float:
        """Tutorial time per unit of path time: 1 / T on the discrete grid, else 1."""
        return 1.0 / self.T if self.discrete else 1.0

    def alpha(self, t) -> torch.Tensor:
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def sigma(self, t) -> torch.Tensor:
        """sigma(t) = sigma_max sqrt(t): variance sigma_max^2 t, linear in time."""
        t = torch.as_tensor(t, dtype=torch.float64) * self._unit
        return self.sigma_max * t.clamp(min=0).sqrt()

    def d_alpha(self, t) -> torch.Tensor:
        return torch.zeros_like(torch.as_tensor(t, dtype=torch.float64))

    def d_sigma(self, t) -> torch.Tensor:
        """d sigma / dt = sigma_max / (2 sqrt(t)) (infinite at t = 0)."""
        t = torch.as_tensor(t, dtype=torch.float64) * self._unit
        return 0.5 * self.sigma_max / t.sqrt() * self._unit

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """lambda = -2 log sigma  =>  t = exp(-lambda) / sigma_max^2, clamped to the path."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return (torch.exp(-lam) / self.sigma_max**2).clamp(0.0, 1.0) / self._unit

    def describe(self) -> str:
        grid = f", T = {self.T} (Delta t = 1/{self.T})" if self.discrete else ""
        return f"variance exploding x_t = x_0 + {self.sigma_max:g} sqrt(t) eps{grid}"
