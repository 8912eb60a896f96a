"""What a sampler's callback sees after each step."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Step:
    """The step's index, the times t -> s, x_s and the x_0 estimate made at t."""

    index: int
    t: float  # integer on the DDPM grids, fractional on Karras grids and continuous paths
    s: float
    x: torch.Tensor
    x0: torch.Tensor
