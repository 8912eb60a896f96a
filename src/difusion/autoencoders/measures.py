"""How good an autoencoder is: reconstruction (MSE, PSNR, SSIM), likelihood (ELBO, IWAE), codebook
use, and the baseline every autoencoder must beat: PCA at the same code size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from difusion.autoencoders.losses import gaussian_kl, reconstruction_nll


def mse_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image on the [-1, 1] scale."""
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, peak-to-peak range 2: 10 log10(2^2 / MSE)."""
    return 10 * torch.log10(4.0 / mse_per_image(x, y).clamp_min(1e-12))


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image (Wang et al. 2004, eq. 13): Gaussian window of std 1.5 and
    size 11 (7 for images under 16 pixels), K1 = 0.01, K2 = 0.03, averaged over the valid region."""
    size = 11 if min(x.shape[-2:]) >= 16 else 7
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).float().to(x.device)
    c = x.shape[1]
    win = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, win, groups=c)

    x, y = x.float(), y.float()
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


@dataclass
class PCA:
    """The optimal linear code of size k (Pearson 1901): x ~ mean + (x - mean) V V^T, V the top-k
    right singular vectors of the centred data (Eckart-Young)."""

    mean: Tensor  # (D,)
    components: Tensor  # (k, D), orthonormal rows

    @classmethod
    def fit(cls, x: Tensor, k: int) -> PCA:
        """Top-k principal directions of ``x`` (N, ...) by SVD of the centred (N, D) matrix."""
        flat = x.flatten(1).double()
        mean = flat.mean(0)
        _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
        return cls(mean.float(), vh[:k].float())

    def encode(self, x: Tensor) -> Tensor:
        return (x.flatten(1) - self.mean) @ self.components.T

    def decode(self, z: Tensor, shape: tuple[int, ...]) -> Tensor:
        return (z @ self.components + self.mean).view(-1, *shape)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x), tuple(x.shape[1:]))


def binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Stochastic binarization (Salakhutdinov & Murray 2008): pixel = 1 with probability its
    intensity; returns {-1, 1} on the data scale."""
    p = (x + 1) / 2
    u = torch.rand(x.shape, generator=generator).to(x.device)
    return torch.where(u < p, 1.0, -1.0).to(x.dtype)


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over all but the first axis."""
    lp = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp())
    return lp.flatten(1).sum(1)


@torch.no_grad()
def elbo(model, x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """ELBO per example in nats, one sample of z (Kingma & Welling 2014, eq. 10):
    E_q[log p(x|z)] - KL(q(z|x) || p(z)), the KL in closed form."""
    mu, logvar = model.posterior(x)
    eps = torch.randn(mu.shape, generator=generator).to(mu.device)
    out = model.decoder(mu + torch.exp(0.5 * logvar) * eps)
    return -reconstruction_nll(x, out, model.likelihood, sigma) - gaussian_kl(mu, logvar)


@torch.no_grad()
def iwae_bound(
    model,
    x: Tensor,
    k: int,
    sigma: float,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> Tensor:
    """L_k = log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z|x) (Burda et al. 2016, eq. 8), per
    example in nats. L_1 is the ELBO; L_k rises with k towards log p(x), so -L_k estimates the NLL."""
    mu, logvar = model.posterior(x)
    out = torch.empty(len(x), device=x.device)
    per = max(1, chunk // k)  # examples per decoder call
    for s in range(0, len(x), per):
        m, lv, xs = mu[s : s + per], logvar[s : s + per], x[s : s + per]
        b = len(m)
        eps = torch.randn((k, *m.shape), generator=generator).to(m.device)
        z = (m + torch.exp(0.5 * lv) * eps).reshape(k * b, *m.shape[1:])
        mk, lvk = m.repeat(k, *[1] * (m.dim() - 1)), lv.repeat(k, *[1] * (m.dim() - 1))
        xk = xs.repeat(k, *[1] * (xs.dim() - 1))
        log_px_z = -reconstruction_nll(xk, model.decoder(z), model.likelihood, sigma)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_w = (log_px_z + log_pz - _log_normal(z, mk, lvk)).view(k, b)
        out[s : s + b] = torch.logsumexp(log_w, 0) - math.log(k)
    return out


def codebook_usage(idx: Tensor, num_codes: int) -> dict[str, float]:
    """Share of codes used and the perplexity exp(H(p)) of the code histogram p over ``idx``
    (perplexity = K when all K codes are used equally, 1 when one code takes everything)."""
    counts = torch.bincount(idx.reshape(-1), minlength=num_codes).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codes_used": float((counts > 0).float().mean()), "perplexity": float(entropy.exp())}
