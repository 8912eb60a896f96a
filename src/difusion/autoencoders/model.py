"""The autoencoder family as one module: an encoder, a decoder, and what sits between them.

* ``ae``, ``dae``, ``sae``, ``cae``: a deterministic code z = f(x) (the variants differ only in
  their loss, see :mod:`difusion.autoencoders.losses`).
* ``vae``, ``beta-vae``: the encoder gives the mean and log-variance of q(z|x) = N(mu, diag sigma^2)
  and z = mu + sigma * eps (Kingma & Welling 2014, eq. 10).
* ``vqvae``: the encoder output z_e is replaced by its nearest codebook vector (van den Oord et al.
  2017, eq. 1), one code per latent position.

The latent is a flat vector (``code_size``,) or, for the convolutional networks, a spatial map
(``latent_channels``, H/4, W/4), the shape latent diffusion works in (Rombach et al. 2022).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from difusion.nn.autoencoders import ConvDecoder, ConvEncoder, MLPCoder, VectorQuantizer, down4

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
            return self.quantizer.lookup(idx.to(device), None)
        return torch.randn((n, *self.latent_shape), generator=generator).to(device)
