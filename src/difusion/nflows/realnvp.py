"""RealNVP (Dinh et al. 2017): a stack of affine couplings and a standard normal prior, with the
exact log-likelihood by the change of variables (their eq. 3):

    log p_X(x) = log p_Z(f(x)) + log |det df/dx| = log N(f(x); 0, I) + sum_layers log |det J_l|
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difusion.diffusion.likelihood_ode import standard_normal_log_prob
from difusion.nflows.coupling import AffineCoupling, make_mask


def normal_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    """(n, dim) standard normal draws, row i from its own seed ``seed + i`` (as every sampler in
    the lab: a sample does not depend on how many are drawn with it)."""
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)]
    return torch.stack(rows) if rows else torch.zeros(0, dim)


class RealNVP(nn.Module):
    """Affine couplings whose masks alternate in parity, over data of ``shape`` (flattened)."""

    def __init__(self, shape: tuple[int, ...], layers: int, hidden: int, depth: int, mask: str):
        super().__init__()
        self.shape = tuple(shape)
        self.dim = math.prod(self.shape)
        self.couplings = nn.ModuleList(
            AffineCoupling(make_mask(mask, self.shape, i % 2), hidden, depth) for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data x (N, *shape) -> (z (N, D), log |det dz/dx| (N,))."""
        z = x.reshape(len(x), -1)
        log_det = torch.zeros(len(x), device=x.device)
        for layer in self.couplings:
            z, ld = layer(z)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D) -> x (N, *shape): the layers undone in reverse order."""
        for layer in reversed(self.couplings):
            z = layer.inverse(z)
        return z.reshape(len(z), *self.shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats per example, by the change of variables."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """x = f^-1(z), z ~ N(0, I); sample i uses seed + i."""
        device = next(self.parameters()).device
        return self.inverse(normal_rows(n, self.dim, seed).to(device))
