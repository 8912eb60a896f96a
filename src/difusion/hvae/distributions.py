"""The densities every model of this package is built from: diagonal Gaussians (log-density, KL,
reparameterized draws, the precision-weighted product of the ladder VAE) and the categorical
decoder over the data's grey levels, whose log-probabilities make the bound a bound in bits on the
discrete data."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from difusion.errors import DifusionError
from difusion.nn.mlp import mlp

LOG_2PI = math.log(2 * math.pi)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension, in nats."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def kl_normal(mu1, logvar1, mu2, logvar2) -> torch.Tensor:
    """KL(N(mu1, e^logvar1) || N(mu2, e^logvar2)) of diagonal Gaussians, summed over the last
    dimension (Kingma & Welling 2014, App. B, for two Gaussians), in nats."""
    return 0.5 * (
        logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mu1 - mu2).pow(2) * torch.exp(-logvar2)
        - 1
    ).sum(-1)


def draw(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) eps, eps ~ N(0, I): the reparameterization trick (Kingma & Welling
    2014, Sec. 2.4), so the gradient reaches mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def precision_weighted(mu_d, logvar_d, mu_p, logvar_p) -> tuple[torch.Tensor, torch.Tensor]:
    """The ladder VAE's merge of the bottom-up estimate N(mu_d, s_d^2) with the top-down prior
    N(mu_p, s_p^2) (Sonderby et al. 2016, Sec. 2.2): s^2 = 1 / (s_d^-2 + s_p^-2),
    mu = (mu_d s_d^-2 + mu_p s_p^-2) s^2; the normalized product of the two densities."""
    prec_d, prec_p = torch.exp(-logvar_d), torch.exp(-logvar_p)
    var = 1.0 / (prec_d + prec_p)
    return (mu_d * prec_d + mu_p * prec_p) * var, torch.log(var)


def gaussian_net(inp: int, out: int, hidden: int, depth: int) -> nn.Sequential:
    """An MLP from ``inp`` numbers to the mean and log-variance of an ``out``-dimensional diagonal
    Gaussian (2 * out outputs, split by :func:`split`)."""
    return mlp(inp, 2 * out, hidden, depth, nn.GELU)


def split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A network's output as (mean, log-variance), the log-variance kept in [-12, 8] so that no
    step can make a variance 0 or infinite."""
    mu, logvar = out.chunk(2, dim=-1)
    return mu, logvar.clamp(-12.0, 8.0)


def to_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Images on [-1, 1] -> flat integer levels k = (x + 1) / 2 * (L - 1), (N, D) as floats; data
    that do not lie on L levels are refused in one line."""
    k = ((x.float() + 1) / 2 * (levels - 1)).flatten(1)
    off = float((k - k.round()).abs().max()) if k.numel() else 0.0
    if off > 1e-3 or (k.numel() and (k.min() < -1e-3 or k.max() > levels - 1 + 1e-3)):
        raise DifusionError(
            f"the data do not lie on {levels} grey levels (a pixel is {off:.3f} of a level off); "
            "set hvae.levels to the data's number of levels (digits: 17, 8-bit images: 256)"
        )
    return k.round()


def levels_to_unit(k: torch.Tensor, levels: int) -> torch.Tensor:
    """Levels 0..L-1 -> the lab's [-1, 1] scale, x = k / (L - 1) * 2 - 1: what the networks read
    and what the diffusion chain starts from (z0)."""
    return k / (levels - 1) * 2 - 1


class CategoricalLevels(nn.Module):
    """p(x | z) = prod_d Cat(k_d; softmax(logits_d(z))) over the L grey levels of each pixel.

    A distribution over the discrete data itself, so -log2 p(x | z) is a code length and the ELBO
    built on it bounds -log2 P(x) of the data with no dequantization (Tomczak, ch. 4, uses the same
    categorical decoder on these digits)."""

    def __init__(self, inp: int, dim: int, levels: int, hidden: int, depth: int):
        super().__init__()
        self.dim, self.levels = dim, levels
        self.net = mlp(inp, dim * levels, hidden, depth, nn.GELU)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(*z.shape[:-1], self.dim, self.levels)

    def features(self, k: torch.Tensor) -> torch.Tensor:
        """What the encoders read: the levels on [-1, 1]."""
        return levels_to_unit(k, self.levels)

    def log_prob(self, k: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(k | z) in nats, summed over the pixels; k (..., D) integer levels as floats."""
        logp = F.log_softmax(self.logits(z), dim=-1)
        return logp.gather(-1, k.long().unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One draw of the levels per row of z, (N, D)."""
        probs = F.softmax(self.logits(z), dim=-1).reshape(-1, self.levels).cpu()
        k = torch.multinomial(probs, 1, generator=generator).view(*z.shape[:-1], self.dim)
        return k.float().to(z.device)

    @torch.no_grad()
    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[k | z], the expected level of every pixel (a smooth picture of the decoder)."""
        probs = F.softmax(self.logits(z), dim=-1)
        return (probs * torch.arange(self.levels, device=z.device)).sum(-1)
