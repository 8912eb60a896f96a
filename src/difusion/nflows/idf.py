"""Integer discrete flows (Hoogeboom et al. 2019, "Integer Discrete Flows and Lossless
Compression"): a bijection of Z^D onto itself, so the likelihood is an exact code length.

An additive coupling whose translation is rounded (their eq. 5),

    z_a = x_a,   z_b = x_b + round(t(x_a)),

maps integers to integers and is undone exactly by x_b = z_b - round(t(z_a)); its Jacobian plays
no part, because P_X(x) = P_Z(f(x)) for a bijection of a discrete set. round() has zero gradient
almost everywhere, so training uses the straight-through estimator (Bengio et al. 2013; their Sec.
3.1): the rounding is applied in the forward pass and skipped in the backward pass. The prior is
a discretized logistic (mixture) per dimension (their Sec. 3.2):

    P(z) = sigmoid((z + 1/2 - mu) / s) - sigmoid((z - 1/2 - mu) / s),

which sums to one over all integers, so -log2 P_Z(f(x)) is the number of bits an entropy coder
would need for x.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from difusion.nflows.coupling import conditioner, make_mask


def round_ste(t: torch.Tensor) -> torch.Tensor:
    """round(t) in the forward pass, the identity's gradient in the backward pass."""
    return t + (torch.round(t) - t).detach()


def log_discretized_logistic(
    z: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor
) -> torch.Tensor:
    """log P(z) of the discretized logistic above, stable in both tails: sigmoid(b) - sigmoid(a)
    equals sigmoid(-a) - sigmoid(-b), and the side where both terms are small is taken."""
    inv_s = torch.exp(-log_s)
    upper = (z + 0.5 - mu) * inv_s
    lower = (z - 0.5 - mu) * inv_s
    flip = (upper + lower) > 0
    hi = torch.where(flip, -lower, upper)
    lo = torch.where(flip, -upper, lower)
    log_hi, log_lo = F.logsigmoid(hi), F.logsigmoid(lo)
    return log_hi + torch.log(-torch.expm1(log_lo - log_hi).clamp(max=-1e-12))


class DiscretizedLogisticMixture(nn.Module):
    """A factorized prior over Z^D: in each dimension a mixture of K discretized logistics."""

    def __init__(self, dim: int, components: int, levels: int):
        super().__init__()
        spread = torch.linspace(0, levels - 1, components + 2)[1:-1]  # centres inside the range
        self.mu = nn.Parameter(spread.repeat(dim, 1))
        self.log_s = nn.Parameter(
            torch.full((dim, components), math.log(levels / (2 * components)))
        )
        self.logits = nn.Parameter(torch.zeros(dim, components))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log P(z) in nats per example, z (N, D) integers."""
        log_pi = F.log_softmax(self.logits, dim=1)
        per = log_discretized_logistic(z[..., None], self.mu, self.log_s) + log_pi
        return torch.logsumexp(per, dim=2).sum(1)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, D) integers: pick a component, draw a logistic, round it (P(round(y) = z) is the
        discretized logistic's P(z)); sample i uses seed + i."""
        dim, k = self.mu.shape
        out = []
        for i in range(n):
            g = torch.Generator().manual_seed(seed + i)
            pick = torch.multinomial(F.softmax(self.logits, 1).cpu(), 1, generator=g)[:, 0]
            u = torch.rand(dim, generator=g).clamp(1e-6, 1 - 1e-6)
            rows = torch.arange(dim)
            mu, s = self.mu.detach().cpu()[rows, pick], self.log_s.detach().cpu()[rows, pick].exp()
            out.append(torch.round(mu + s * (torch.log(u) - torch.log1p(-u))))
        return torch.stack(out).to(self.mu.device) if out else torch.zeros(0, dim)


class IntegerCoupling(nn.Module):
    """z = x + (1 - b) * round(t(b * x)): integers to integers, exactly invertible."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int, levels: int):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        self.net = conditioner(dim, hidden, depth, dim)
        self.levels = levels

    def translation(self, kept: torch.Tensor) -> torch.Tensor:
        """t(b * x) in grey levels; the conditioner sees the kept levels scaled to about [-1, 1]."""
        b = self.mask
        return self.net(b * (2 * kept / (self.levels - 1) - 1)) * (self.levels - 1) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.mask
        return x + (1 - b) * round_ste(self.translation(b * x))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        b = self.mask
        return z - (1 - b) * torch.round(self.translation(b * z))


class IDF(nn.Module):
    """Integer couplings with alternating masks over data of ``shape`` on ``levels`` integer
    levels, and a discretized logistic mixture prior."""

    def __init__(
        self,
        shape: tuple[int, ...],
        layers: int,
        hidden: int,
        depth: int,
        mask: str,
        levels: int,
        components: int,
    ):
        super().__init__()
        self.shape, self.levels = tuple(shape), levels
        self.dim = math.prod(self.shape)
        self.couplings = nn.ModuleList(
            IntegerCoupling(make_mask(mask, self.shape, i % 2), hidden, depth, levels)
            for i in range(layers)
        )
        self.prior = DiscretizedLogisticMixture(self.dim, components, levels)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        """Integer levels k (N, *shape) -> integers z (N, D)."""
        z = k.reshape(len(k), -1)
        for layer in self.couplings:
            z = layer(z)
        return z

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D) -> k (N, *shape), exactly."""
        for layer in reversed(self.couplings):
            z = layer.inverse(z)
        return z.reshape(len(z), *self.shape)

    def log_prob(self, k: torch.Tensor) -> torch.Tensor:
        """log P(k) = log P_Z(f(k)) in nats per example: exact, no Jacobian term."""
        return self.prior.log_prob(self(k))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """k = f^-1(z), z ~ the prior: integer levels (N, *shape), possibly outside 0..L-1."""
        return self.inverse(self.prior.sample(n, seed))
