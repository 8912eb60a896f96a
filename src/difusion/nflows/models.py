"""From the ``nflow:`` section of a config to a flow: RealNVP or IDF over data of a shape."""

from __future__ import annotations

from torch import nn

from difusion.config import Config
from difusion.errors import ConfigError
from difusion.nflows.idf import IDF
from difusion.nflows.realnvp import RealNVP


def is_discrete(shape: tuple[int, ...]) -> bool:
    """Images (C, H, W) are modelled on their grey levels; points (D,) as real vectors."""
    return len(shape) == 3


def build_nflow(cfg: Config, shape: tuple[int, ...]) -> nn.Module:
    """The flow of ``cfg.nflow`` for data of ``shape``."""
    n = cfg.nflow
    if n.kind == "idf":
        if not is_discrete(shape):
            raise ConfigError(
                f"nflow.kind=idf models integer images, and {cfg.data.name} holds points of shape "
                f"{shape}; use nflow.kind=realnvp"
            )
        return IDF(shape, n.layers, n.hidden, n.depth, n.mask, n.levels, n.components)
    return RealNVP(shape, n.layers, n.hidden, n.depth, n.mask)
