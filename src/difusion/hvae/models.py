"""From the ``hvae:`` section of a config to a model over flat images of D pixels on L levels."""

from __future__ import annotations

import math

from torch import nn

from difusion.config import Config
from difusion.hvae.diffusion import DiffusionVAE
from difusion.hvae.distributions import CategoricalLevels, gaussian_net
from difusion.hvae.hierarchical import HierarchicalVAE
from difusion.hvae.priors import build_prior


def build_hvae(cfg: Config, shape: tuple[int, ...]) -> nn.Module:
    """The model of ``cfg.hvae`` for images of ``shape`` (C, H, W), flattened to D = C H W."""
    h = cfg.hvae
    dim = math.prod(shape)
    if h.kind == "diffusion":
        reverse = nn.ModuleList(gaussian_net(dim, dim, h.hidden, h.depth) for _ in range(h.T - 1))
        likelihood = CategoricalLevels(dim, dim, h.levels, h.hidden, h.depth)
        model = DiffusionVAE(reverse, likelihood, h.T, h.beta, dim)
    else:
        model = HierarchicalVAE(
            enc1=gaussian_net(dim, h.z1, h.hidden, h.depth),
            enc2=gaussian_net(h.z1, h.z2, h.hidden, h.depth),
            dec1=gaussian_net(h.z2, h.z1, h.hidden, h.depth),
            likelihood=CategoricalLevels(h.z1, dim, h.levels, h.hidden, h.depth),
            prior=build_prior(h.prior, h.z2, dim, h.components),
            inference=h.inference,
        )
    model.shape, model.dim = tuple(shape), dim
    return model
