"""Latent-variable models with more than one stochastic layer (Tomczak, "Deep Generative
Modeling", ch. 4.5): a two-layer hierarchical VAE (top-down or bottom-up inference; a standard,
mixture or VampPrior prior) and the diffusion-based model, a hierarchical VAE whose inference chain
is a fixed Gaussian noising process. Trained by the one training loop as ``objective: hvae``;
docs/latent-variable-models.md walks through them.

    from difusion.hvae import load_hvae
    model = load_hvae("runs/hvae-digits")        # EMA weights, eval mode
    k, mean = model.sample(16, seed=0)           # (16, 64) grey levels and expected levels
"""

from __future__ import annotations

from difusion.hvae.diffusion import DiffusionVAE
from difusion.hvae.hierarchical import HierarchicalVAE
from difusion.hvae.run import eval_hvae_run, load_hvae, sample_hvae_run

__all__ = ["DiffusionVAE", "HierarchicalVAE", "eval_hvae_run", "load_hvae", "sample_hvae_run"]
