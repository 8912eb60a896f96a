"""From the ``ebm:`` section of a config to a network over flat vectors of D numbers."""

from __future__ import annotations

import math

from torch import nn

from difusion.config import Config
from difusion.ebm.energy import EnergyMLP
from difusion.ebm.langevin import geometric_sigmas
from difusion.ebm.score import NoiseConditionalScore


def build_ebm(cfg: Config, shape: tuple[int, ...]) -> nn.Module:
    """cd: the energy E_theta(x); dsm: the score s_theta(x, sigma); both MLPs over D = prod(shape)."""
    e = cfg.ebm
    dim = math.prod(shape)
    if e.kind == "dsm":
        model: nn.Module = NoiseConditionalScore(dim, e.hidden, e.depth)
    else:
        model = EnergyMLP(dim, e.hidden, e.depth, e.base_std)
    model.shape = tuple(shape)
    return model


def sigmas_of(cfg: Config):
    """The run's noise ladder sigma_1 > ... > sigma_L (dsm)."""
    e = cfg.ebm
    return geometric_sigmas(e.sigma_max, e.sigma_min, e.levels)
