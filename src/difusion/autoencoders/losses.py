"""The losses of the autoencoder family, each the previous one plus what the variant adds.

All reconstruction terms are -log p(x | z) per example in nats: a Gaussian decoder with a fixed
standard deviation sigma (on the [-1, 1] scale) or a Bernoulli decoder on binarized pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_nll(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """-log N(x; mean, sigma^2 I) per example: ||x - mean||^2 / (2 sigma^2) + D/2 log(2 pi sigma^2)."""
    d = x[0].numel()
    sq = (x - mean).pow(2).flatten(1).sum(1)
    return sq / (2 * sigma**2) + 0.5 * d * math.log(2 * math.pi * sigma**2)


def bernoulli_nll(x01: Tensor, logits: Tensor) -> Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per example, x in {0, 1} (Kingma & Welling 2014, App. C.1)."""
    return F.binary_cross_entropy_with_logits(logits, x01, reduction="none").flatten(1).sum(1)


def reconstruction_nll(x: Tensor, out: Tensor, likelihood: str, sigma: float) -> Tensor:
    """-log p(x | z) per example for the decoder output ``out``; ``x`` is in [-1, 1] (Gaussian)
    or in {-1, 1} (Bernoulli: binarized)."""
    if likelihood == "bernoulli":
        return bernoulli_nll((x + 1) / 2, out)
    return gaussian_nll(x, out, sigma)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per example, in closed form (Kingma & Welling 2014, App. B):
    -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)


def corrupt(
    x: Tensor, noise_std: float, mask_prob: float, generator: torch.Generator | None = None
) -> Tensor:
    """The denoising autoencoder's corruption x~ ~ q(x~|x) (Vincent et al. 2008, 2010): additive
    Gaussian noise of std ``noise_std``, and each pixel set to -1 (black) with prob ``mask_prob``."""
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator).to(x.device)
    if mask_prob > 0:
        keep = torch.rand(x.shape, generator=generator).to(x.device) >= mask_prob
        x = torch.where(keep, x, torch.full_like(x, -1.0))
    return x


def l1_sparsity(z: Tensor) -> Tensor:
    """The sparse autoencoder's penalty: ||z||_1 per example (an L1 relaxation of the sparsity
    constraint, Goodfellow et al. 2016, Sec. 14.2.1)."""
    return z.abs().flatten(1).sum(1)


def contractive_penalty(x: Tensor, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """||J_f(x)||_F^2 per example (Rifai et al. 2011, eq. 2), estimated without the Jacobian:
    for v ~ N(0, I) in code space, E ||v^T J||^2 = Tr(J J^T) = ||J||_F^2 (Hutchinson 1989).
    ``x`` must require grad and ``z = f(x)``; the result is differentiable (double backward)."""
    v = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
    (g,) = torch.autograd.grad(z, x, v, create_graph=True)
    return g.pow(2).flatten(1).sum(1)


def vq_commitment(z_e: Tensor, z_q: Tensor) -> Tensor:
    """||z_e - sg(e)||^2 per example (van den Oord et al. 2017, eq. 3, third term); with the EMA
    codebook the second term (the codebook loss) is replaced by the moving averages."""
    return (z_e - z_q.detach()).pow(2).flatten(1).sum(1)
