"""Flow matching paths (Lipman et al. 2023; Liu et al. 2023, "rectified flow"), in this project's time.

Direction of time, stated once: as for DDPM, **t = 0 is data and t = 1 is noise**; sampling runs
the ODE from t = 1 down to t = 0. (Lipman et al. and the flow-matching literature run the other
way, t = 0 noise and t = 1 data; every formula below is theirs with t -> 1 - t.)

A flow path is a Gaussian path like DDPM's, x_t = a_t x_0 + b_t eps, with t continuous in [0, 1]:

- ``rectified`` (Liu et al. eq. 1; Nakkiran et al. Sec. 4, the "linear pointwise flow"):
      x_t = (1 - t) x_0 + t eps,                      target  v = d x_t / dt = eps - x_0.
- ``ot`` (Lipman et al. eq. 20, the "optimal transport" conditional path): with noise x_0^L and data
  x_1^L in their notation, psi_t = (1 - (1 - sigma_min) t) x_0^L + t x_1^L. Put t -> 1 - t, x_1^L = x_0
  (data) and x_0^L = eps (noise):
      x_t = (1 - t) x_0 + (sigma_min + (1 - sigma_min) t) eps,   v = (1 - sigma_min) eps - x_0,
  so x_1 = eps exactly and x_0 carries noise of scale sigma_min: the model's data are the data
  smoothed by N(0, sigma_min^2 I). (The same formula with the roles of x_0 and eps swapped,
  (1 - (1 - sigma_min) t) x_0 + t eps, is a different path: its noise end keeps sigma_min x_0.)
  sigma_min = 0 gives the rectified path.

The network learns the velocity v_theta(x_t, t) ~ E[v | x_t] (conditional flow matching, Lipman et
al. eq. 9; Nakkiran et al. Pseudocode 4); a point moved by dx/dt = v_theta from x_1 ~ N(0, I) at t = 1 to
t = 0 is a sample.
"""

from __future__ import annotations

import torch

from difusion.diffusion.path import GaussianPath
from difusion.errors import ConfigError

FLOW_PATHS = ("rectified", "ot")
# The U-Net and MLP embed the time sinusoidally on DDPM's scale, t in 0..T = 1000; a flow time
# t in [0, 1] enters them as TIME_SCALE * t so the embedding's frequencies are used as designed.
TIME_SCALE = 1000.0


def _bcast(t, like: torch.Tensor) -> torch.Tensor:
    """A time (float or (N,) tensor) shaped to broadcast against ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t


class FlowPath(GaussianPath):
    """x_t = alpha_t x_0 + sigma_t eps on t in [0, 1] with alpha_t = 1 - t and
    sigma_t = sigma_min + (1 - sigma_min) t (rectified: sigma_min = 0)."""

    t_max = 1.0
    time_scale = TIME_SCALE

    def __init__(self, kind: str = "rectified", sigma_min: float = 0.0):
        if kind not in FLOW_PATHS:
            raise ConfigError(f"unknown flow path {kind!r}; choose one of: {', '.join(FLOW_PATHS)}")
        if not 0.0 <= sigma_min < 1.0:
            raise ConfigError(f"flow.sigma_min must be in [0, 1), got {sigma_min}")
        self.kind = kind
        self.sigma_min = sigma_min if kind == "ot" else 0.0

    def alpha(self, t) -> torch.Tensor:
        """alpha_t = 1 - t: the scale of the data x_0."""
        return 1.0 - torch.as_tensor(t, dtype=torch.float64)

    def sigma(self, t) -> torch.Tensor:
        """sigma_t = sigma_min + (1 - sigma_min) t: the scale of the noise eps."""
        return self.sigma_min + (1.0 - self.sigma_min) * torch.as_tensor(t, dtype=torch.float64)

    def d_alpha(self, t) -> torch.Tensor:
        """d alpha_t / dt = -1."""
        return torch.full_like(torch.as_tensor(t, dtype=torch.float64), -1.0)

    def d_sigma(self, t) -> torch.Tensor:
        """d sigma_t / dt = 1 - sigma_min."""
        return torch.full_like(torch.as_tensor(t, dtype=torch.float64), 1.0 - self.sigma_min)

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """sigma / alpha = r = exp(-lambda / 2)  =>  t = (r - sigma_min) / (r + 1 - sigma_min)
        (rectified: t = r / (1 + r)); r below sigma_min maps to t = 0, r = inf to t = 1."""
        r = torch.exp(-0.5 * torch.as_tensor(lam, dtype=torch.float64))
        t = torch.where(
            torch.isinf(r), torch.ones_like(r), (r - self.sigma_min) / (r + 1 - self.sigma_min)
        )
        return t.clamp(0.0, 1.0)

    def t_at_noise_fraction(self, tau: float) -> float:
        """Solve sigma / (alpha + sigma) = tau in closed form (rectified: t = tau exactly)."""
        m = self.sigma_min
        return min(max((tau * (1 + m) - m) / (1 - m + tau * m), 0.0), 1.0)

    def describe(self) -> str:
        if self.kind == "rectified":
            return "rectified flow x_t = (1 - t) x_0 + t eps"
        return f"OT path x_t = (1 - t) x_0 + ({self.sigma_min:g} + {1 - self.sigma_min:g} t) eps"


class GaussianFlow:
    """Data N(mu, s^2 I) on a flow path: the exact velocity field, its ODE solution and densities.

    With m_t = a_t mu and S_t^2 = a_t^2 s^2 + b_t^2 (x_t ~ N(m_t, S_t^2 I)), the posterior means are
    E[x_0 | x] = mu + a s^2 / S^2 (x - m) and E[eps | x] = b / S^2 (x - m), so the optimal velocity is
        v*(x, t) = a' mu + (a' a s^2 + b' b) / S_t^2 (x - m_t)  =  m'_t + (S'_t / S_t)(x - m_t),
    whose flow is x_t = m_t + (S_t / S_1) (x_1 - m_1): a straight affine map of the noise.
    Its divergence is D S'_t / S_t, so log p_t is known in closed form along the path.
    """

    def __init__(self, path: FlowPath, mu: torch.Tensor, s: float):
        self.path, self.mu, self.s = path, mu.double(), float(s)

    def mean_std(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float64)
        a, b = self.path.alpha(t), self.path.sigma(t)
        return a, (a**2 * self.s**2 + b**2).sqrt()

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """v*(x, t) (see the class docstring); ``t`` a float or (N,) tensor."""
        t = _bcast(torch.as_tensor(t, dtype=torch.float64), x.double())
        p = self.path
        a, b, da, db = p.alpha(t), p.sigma(t), p.d_alpha(t), p.d_sigma(t)
        var = a**2 * self.s**2 + b**2
        m = a * self.mu
        return (da * self.mu + (da * a * self.s**2 + db * b) / var * (x.double() - m)).to(x.dtype)

    def flow_map(self, x1: torch.Tensor, t: float) -> torch.Tensor:
        """The exact ODE solution at time t from x_1 (noise) at t = 1."""
        a, std = self.mean_std(t)
        a1, std1 = self.mean_std(1.0)
        return (a * self.mu + std / std1 * (x1.double() - a1 * self.mu)).to(x1.dtype)

    def log_prob(self, x: torch.Tensor, t: float = 0.0) -> torch.Tensor:
        """log N(x; a_t mu, S_t^2 I), summed over the dimensions."""
        a, std = self.mean_std(t)
        d = x[0].numel()
        z = (x.double() - a * self.mu).flatten(1)
        return -0.5 * (z**2).sum(1) / std**2 - d * (
            std.log() + 0.5 * torch.log(torch.tensor(2 * torch.pi))
        )


class MixtureFlow:
    """The exact marginal velocity of the rectified flow between two isotropic Gaussian mixtures
    under the independent coupling (Nakkiran et al. Sec. 4: any base, e.g. an annulus).

    Data x_0 ~ (1/I) sum_i N(mu_i, s0^2 I), base x_1 ~ (1/J) sum_j N(nu_j, s1^2 I). For the pair
    (i, j), x_t = (1 - t) x_0 + t x_1 is N(m_ij, V I) with m_ij = (1 - t) mu_i + t nu_j,
    V = (1 - t)^2 s0^2 + t^2 s1^2, and the pointwise velocity d x_t/dt = x_1 - x_0 has
    E[x_1 - x_0 | x_t, ij] = (nu_j - mu_i) + (t s1^2 - (1 - t) s0^2) / V (x_t - m_ij).
    The marginal field averages these with the pair posteriors r_ij(x_t) ~ N(x_t; m_ij, V I).
    """

    def __init__(self, data: torch.Tensor, s0: float, base: torch.Tensor, s1: float):
        self.mu, self.nu = data.double(), base.double()
        self.s0, self.s1 = float(s0), float(s1)

    def velocity(self, x: torch.Tensor, t, chunk: int = 256) -> torch.Tensor:
        """v*(x, t) at one time t (float or a constant (N,) tensor)."""
        t = float(torch.as_tensor(t, dtype=torch.float64).flatten()[0])
        var = (1 - t) ** 2 * self.s0**2 + t**2 * self.s1**2
        gain = (t * self.s1**2 - (1 - t) * self.s0**2) / var
        m = ((1 - t) * self.mu[:, None] + t * self.nu[None]).reshape(-1, self.mu.shape[1])
        d = (self.nu[None] - self.mu[:, None]).reshape(-1, self.mu.shape[1])
        out = []
        for xs in x.double().split(chunk):
            diff = xs[:, None] - m[None]  # (n, IJ, D)
            r = torch.softmax(-0.5 * diff.pow(2).sum(-1) / var, dim=1)  # pair posteriors
            out.append(torch.einsum("np,npd->nd", r, d[None] + gain * diff))
        return torch.cat(out).to(x.dtype)
