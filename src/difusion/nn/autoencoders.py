"""Autoencoder networks: the encoders, decoders and vector-quantization layer of the autoencoder
chapter, and :class:`Autoencoder`, the whole family as one module.

Convolutional for images of any size divisible by 4 after rounding (8x8, 28x28, 32x32: two
stride-2 convolutions, so a spatial latent is (C, H/4, W/4), e.g. 7x7 for 28x28), an MLP option
for the classic numbers (Kingma & Welling 2014 and Burda et al. 2016 use MLPs), and a purely
linear pair for the PCA check (Baldi & Hornik 1989).

:class:`Autoencoder` covers every kind:

* ``ae``, ``dae``, ``sae``, ``cae``: a deterministic code z = f(x) (the variants differ only in
  their loss, see :mod:`difusion.autoencoders.losses`).
* ``vae``, ``beta-vae``: the encoder gives the mean and log-variance of q(z|x) = N(mu, diag sigma^2)
  and z = mu + sigma * eps (Kingma & Welling 2014, eq. 10).
* ``vqvae``: the encoder output z_e is replaced by its nearest codebook vector (van den Oord et al.
  2017, eq. 1), one code per latent position.

The latent is a flat vector (``code_size``,) or, for the convolutional networks, a spatial map
(``latent_channels``, H/4, W/4), the shape latent diffusion works in (Rombach et al. 2022). The
network lives here, with the other networks, so that the layers below the autoencoder chapter (the
config's checks, ``build``'s first stage of latent diffusion) can use it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def down4(size: int) -> int:
    """Side length after two stride-2, padding-1, 3x3 convolutions: 28 -> 14 -> 7, 8 -> 4 -> 2."""
    return _half(_half(size))


def _half(size: int) -> int:
    """One stride-2 convolution: ceil(size / 2)."""
    return (size - 1) // 2 + 1


class ConvEncoder(nn.Module):
    """x (B, C, H, W) -> (B, *out_shape): two stride-2 convs and a 3x3 conv at H/4, then a 1x1 conv
    to a spatial latent (when ``out_shape`` is (C', H/4, W/4)) or a linear layer to a flat code."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], channels=(32, 64)):
        super().__init__()
        c, h, w = in_shape
        c1, c2 = channels
        self.body = nn.Sequential(  # the full-resolution work is one cheap strided conv
            nn.Conv2d(c, c1, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.SiLU(),
        )
        self.grid = (c2, down4(h), down4(w))
        self.out_shape = tuple(out_shape)
        self.spatial = len(out_shape) == 3 and tuple(out_shape[1:]) == self.grid[1:]
        if self.spatial:
            self.head = nn.Conv2d(c2, out_shape[0], 1)
        else:
            self.head = nn.Linear(math.prod(self.grid), math.prod(out_shape))

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x)
        if self.spatial:
            return self.head(h)
        return self.head(h.flatten(1)).view(-1, *self.out_shape)


class ConvDecoder(nn.Module):
    """z (B, *in_shape) -> (B, C, H, W): the mirror of :class:`ConvEncoder` with nearest
    upsampling to the exact sizes (7 -> 14 -> 28)."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], channels=(32, 64)):
        super().__init__()
        c, h, w = out_shape
        c1, c2 = channels
        self.sizes = [(_half(h), _half(w)), (h, w)]
        self.grid = (c2, down4(h), down4(w))
        self.spatial = len(in_shape) == 3 and tuple(in_shape[1:]) == self.grid[1:]
        if self.spatial:
            self.head = nn.Conv2d(in_shape[0], c2, 3, padding=1)
        else:
            self.head = nn.Linear(math.prod(in_shape), math.prod(self.grid))
        self.conv1 = nn.Conv2d(c2, c2, 3, padding=1)
        self.conv2 = nn.Conv2d(c2, c1, 3, padding=1)
        self.out = nn.Conv2d(c1, c, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.head(z) if self.spatial else self.head(z.flatten(1)).view(-1, *self.grid)
        h = F.silu(self.conv1(F.silu(h)))
        h = F.silu(self.conv2(F.interpolate(h, size=self.sizes[0], mode="nearest")))
        return self.out(F.interpolate(h, size=self.sizes[1], mode="nearest"))


class MLPCoder(nn.Module):
    """Flatten, ``depth`` hidden layers of ``hidden`` tanh units (Kingma & Welling 2014, App. C),
    then a linear layer reshaped to ``out_shape``. ``depth=0`` is a single linear map."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], hidden=512, depth=2):
        super().__init__()
        layers: list[nn.Module] = []
        width = math.prod(in_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(out_shape)))
        self.net = nn.Sequential(*layers)
        self.out_shape = tuple(out_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).view(-1, *self.out_shape)


class VectorQuantizer(nn.Module):
    """The VQ-VAE bottleneck (van den Oord et al. 2017): z_q = e_k with k = argmin_j ||z_e - e_j||,
    codebook learned by exponential moving averages (their Appendix A.1, eqs. 6-8) with dead codes
    restarted at encoder outputs. Works on (B, D, ...) tensors, one code per position.

    The codebook and its EMA statistics are buffers, so checkpoints and the weight EMA carry them.
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, restart_below: float = 1.0):
        super().__init__()
        self.num_codes, self.dim, self.decay = num_codes, dim, decay
        self.eps, self.restart_below = 1e-5, restart_below
        self.register_buffer("codebook", torch.randn(num_codes, dim))
        self.register_buffer("cluster_size", torch.zeros(num_codes))  # N_i of eq. 6
        self.register_buffer("embed_sum", torch.randn(num_codes, dim))  # m_i of eq. 7
        self.register_buffer("initialized", torch.zeros(()))

    @staticmethod
    def flatten(z: Tensor) -> Tensor:
        """(B, D, ...) -> (N, D), one row per position."""
        return z.movedim(1, -1).reshape(-1, z.shape[1])

    def nearest(self, flat: Tensor) -> Tensor:
        """Indices k = argmin_j ||z - e_j||^2 (van den Oord et al. 2017, eq. 1)."""
        e = self.codebook
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, idx: Tensor) -> Tensor:
        """Codebook vectors for indices (B, ...) -> (B, D, ...)."""
        return self.codebook[idx].movedim(-1, 1)

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """(z_q with the straight-through gradient z_e + sg(e_k - z_e), indices (B, ...))."""
        z_e = z_e.float()
        idx = self.nearest(self.flatten(z_e)).view(z_e.shape[0], *z_e.shape[2:])
        e = self.lookup(idx)
        return z_e + (e - z_e).detach(), idx

    @torch.no_grad()
    def ema_update(self, z_e: Tensor, idx: Tensor, generator: torch.Generator | None = None) -> int:
        """N_i <- g N_i + (1-g) n_i; m_i <- g m_i + (1-g) sum_{k(j)=i} z_j; e_i = m_i / N_i
        (eqs. 6-8, N Laplace-smoothed), then restart codes whose N_i (vectors per batch) fell
        below ``restart_below`` at random encoder outputs of this batch (Dhariwal et al. 2020). Returns the number of codes restarted."""
        flat = self.flatten(z_e.detach().float())
        idx = idx.reshape(-1)
        if not self.initialized:  # start the codebook at encoder outputs (k-means style)
            pick = torch.randint(len(flat), (self.num_codes,), generator=generator)
            self.codebook.copy_(flat[pick.to(flat.device)])
            self.embed_sum.copy_(self.codebook)
            self.cluster_size.fill_(1.0)
            self.initialized.fill_(1.0)
            return 0
        onehot = F.one_hot(idx, self.num_codes).to(flat.dtype)
        g = self.decay
        self.cluster_size.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.embed_sum.mul_(g).add_(onehot.T @ flat, alpha=1 - g)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.restart_below
        count = int(dead.sum())
        if count:
            pick = torch.randint(len(flat), (count,), generator=generator).to(flat.device)
            self.codebook[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0
        return count


# -- the autoencoder family as one module -------------------------------------------------------

KINDS = ("ae", "dae", "sae", "cae", "vae", "beta-vae", "vqvae")
VARIATIONAL = ("vae", "beta-vae")
NETWORKS = ("conv", "mlp", "linear")


class Autoencoder(nn.Module):
    """x -> z -> x_hat for every kind. ``encode`` and ``decode`` are the stable API later chapters
    use (latent diffusion): ``encode`` returns the posterior mean for a VAE and the quantized code
    for a VQ-VAE; ``decode`` returns images in the data's [-1, 1] scale."""

    def __init__(
        self,
        kind: str,
        shape: tuple[int, ...],
        *,
        code_size: int = 32,
        network: str = "conv",
        spatial: bool = False,
        latent_channels: int = 4,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 512,
        depth: int = 2,
        likelihood: str = "gaussian",
        codebook_size: int = 64,
        code_dim: int = 16,
        vq_decay: float = 0.99,
    ):
        super().__init__()
        self.kind, self.shape, self.likelihood = kind, tuple(shape), likelihood
        self.variational = kind in VARIATIONAL
        grid = (down4(shape[-2]), down4(shape[-1])) if spatial else (code_size,)
        if kind == "vqvae":
            latent = (code_dim, *grid)  # one D-dimensional code per position
        elif spatial:
            latent = (latent_channels, *grid)
        else:
            latent = (code_size,)
        self.latent_shape: tuple[int, ...] = latent
        enc_out = (2 * latent[0], *latent[1:]) if self.variational else latent
        if network == "conv":
            self.encoder = ConvEncoder(shape, enc_out, tuple(channels))
            self.decoder = ConvDecoder(latent, shape, tuple(channels))
        else:
            d = depth if network == "mlp" else 0
            self.encoder = MLPCoder(shape, enc_out, hidden, d)
            self.decoder = MLPCoder(latent, shape, hidden, d)
        self.quantizer = (
            VectorQuantizer(codebook_size, code_dim, vq_decay) if kind == "vqvae" else None
        )

    # -- the stable API -----------------------------------------------------------------------
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2) of q(z|x) (VAE only)."""
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """z of shape (B, *latent_shape): the code, the posterior mean, or the quantized code."""
        if self.variational:
            return self.posterior(x)[0]
        z = self.encoder(x)
        return self.quantizer(z)[0] if self.quantizer is not None else z

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] scale: the decoder mean (Bernoulli: 2 sigmoid(logits) - 1)."""
        return self.to_image(self.decoder(z))

    def to_image(self, out: Tensor) -> Tensor:
        """Decoder output -> the mean image on the data scale."""
        return 2 * torch.sigmoid(out) - 1 if self.likelihood == "bernoulli" else out

    # -- training ----------------------------------------------------------------------------
    def forward(self, x: Tensor, eps: Tensor | None = None) -> dict[str, Tensor]:
        """Everything a loss needs: ``out`` (decoder output), ``z``, and ``mu``/``logvar`` (VAE) or
        ``z_e``/``idx`` (VQ-VAE). ``eps`` ~ N(0, I) for the reparameterization (VAE)."""
        if self.variational:
            mu, logvar = self.posterior(x)
            if eps is None:
                eps = torch.randn_like(mu)
            z = mu + torch.exp(0.5 * logvar) * eps  # Kingma & Welling 2014, eq. 10
            return {"out": self.decoder(z), "z": z, "mu": mu, "logvar": logvar}
        z = self.encoder(x)
        if self.quantizer is not None:
            z_q, idx = self.quantizer(z)
            return {"out": self.decoder(z_q), "z": z_q, "z_e": z, "idx": idx}
        return {"out": self.decoder(z), "z": z}

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latents from the prior: N(0, I) for a VAE; for a VQ-VAE, codes drawn uniformly at
        random (there is no learned prior over codes yet); for a plain AE, a Gaussian fitted to
        nothing (N(0, I)), only meaningful as a contrast."""
        device = next(self.parameters()).device
        if self.quantizer is not None:
            k = self.quantizer.num_codes
            idx = torch.randint(k, (n, *self.latent_shape[1:]), generator=generator)
            return self.quantizer.lookup(idx.to(device))
        return torch.randn((n, *self.latent_shape), generator=generator).to(device)
