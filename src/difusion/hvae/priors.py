"""The prior p(z2) of the top latent: the standard normal, a learned mixture of Gaussians, or the
VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior"), the mixture of the encoder's own
posteriors at K learned pseudo-inputs u_k:

    p(z2) = 1/K sum_k q(z2 | u_k)                                    (their eq. 9)

which is their approximation of the aggregated posterior (1/N) sum_n q(z2 | x_n), the prior that
maximizes the ELBO (their eq. 7). Each prior has ``log_prob(z, encode)`` and ``sample(n, encode,
generator)``; ``encode(x) -> (mu, logvar)`` is the model's q(z2 | x), which only the VampPrior reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from difusion.hvae.distributions import draw, log_normal

Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class StandardPrior(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        return log_normal(z, torch.zeros_like(z), torch.zeros_like(z))

    def sample(self, n: int, encode: Encode | None, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator)


def log_mixture(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, log_w: torch.Tensor):
    """log sum_k w_k N(z; mu_k, diag(exp(logvar_k))) for z (..., d), components (K, d), by
    log-sum-exp."""
    per = log_normal(z.unsqueeze(-2), mu, logvar)  # (..., K)
    return torch.logsumexp(per + log_w, dim=-1)


def draw_mixture(mu, logvar, log_w, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws of the mixture: a component by its weight, then a Gaussian draw of it."""
    pick = torch.multinomial(log_w.detach().exp().cpu(), n, replacement=True, generator=generator)
    pick = pick.to(mu.device)
    return draw(mu[pick], logvar[pick], generator)


class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)), every m_k, s_k and pi_k learned with the rest."""

    def __init__(self, dim: int, components: int):
        super().__init__()
        self.dim = dim
        self.mu = nn.Parameter(
            torch.randn(components, dim, generator=torch.Generator().manual_seed(0))
        )
        self.logvar = nn.Parameter(torch.zeros(components, dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        return log_mixture(z, self.mu, self.logvar, F.log_softmax(self.logits, 0))

    def sample(self, n: int, encode: Encode | None, generator: torch.Generator) -> torch.Tensor:
        return draw_mixture(self.mu, self.logvar, F.log_softmax(self.logits, 0), n, generator)


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k) with K learned pseudo-inputs u_k in data space (Tomczak &
    Welling 2018, eq. 9). The pseudo-inputs start as small noise around the middle grey level and
    are trained by the ELBO like every other weight."""

    def __init__(self, dim: int, data_dim: int, components: int):
        super().__init__()
        self.dim, self.components = dim, components
        g = torch.Generator().manual_seed(0)
        self.u = nn.Parameter(0.1 * torch.randn(components, data_dim, generator=g))

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        mu, logvar = encode(self.u)  # q(z | u_k), k = 1..K: (K, d) each
        log_w = torch.full((self.components,), -math.log(self.components), device=z.device)
        return log_mixture(z, mu, logvar, log_w)

    def sample(self, n: int, encode: Encode | None, generator: torch.Generator) -> torch.Tensor:
        mu, logvar = encode(self.u)
        log_w = torch.full((self.components,), -math.log(self.components))
        return draw_mixture(mu, logvar, log_w, n, generator)


def build_prior(kind: str, dim: int, data_dim: int, components: int) -> nn.Module:
    """The prior ``kind`` (:data:`difusion.config.HVAE_PRIORS`) over a ``dim``-dimensional z."""
    if kind == "vamp":
        return VampPrior(dim, data_dim, components)
    if kind == "mog":
        return MixturePrior(dim, components)
    return StandardPrior(dim)
