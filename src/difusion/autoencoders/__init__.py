"""Autoencoders (the study plan's first chapter): AE, denoising, sparse, contractive, VAE, beta-VAE
and VQ-VAE, trained by the one training loop as ``objective: autoencoder``.

The stable API for later chapters (latent diffusion uses a trained autoencoder as its first stage)::

    from difusion.autoencoders import load_autoencoder
    ae = load_autoencoder("runs/vae-fmnist-spatial", "cpu")   # EMA weights, eval mode
    z = ae.encode(x)          # x (B, C, H, W) in [-1, 1] -> z (B, *ae.latent_shape)
    x_hat = ae.decode(z)      # -> (B, C, H, W) on the [-1, 1] scale
"""

from __future__ import annotations

from difusion.autoencoders.run import eval_autoencoder_run, load_autoencoder, sample_autoencoder_run
from difusion.nn.autoencoders import KINDS, Autoencoder

__all__ = [
    "KINDS",
    "Autoencoder",
    "eval_autoencoder_run",
    "load_autoencoder",
    "sample_autoencoder_run",
]
