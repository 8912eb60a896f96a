"""Use a diffusers ``UNet2DModel`` as a difusion network, so every sampler here runs on it.

diffusers counts time from 0 (``alphas_cumprod[k]`` is the noise level after k + 1 steps) where
Ho et al. and difusion count from 1 (``alpha_bar[t]``, t = 1..T); so our t is their k = t - 1, and
fractional t passes through as a fractional timestep. diffusers is never a runtime dependency: the
model is given by the caller.
"""

from __future__ import annotations

import torch
from torch import nn


class DiffusersNetwork(nn.Module):
    """Wrap ``unet`` (anything called as ``unet(x, timestep, class_labels=...).sample``) into the
    (x, t, y) -> output signature of difusion's networks. Its output is whatever the UNet was
    trained to predict (diffusers' ``prediction_type``: epsilon -> "eps", sample -> "x0",
    v_prediction -> "v"); give that to :class:`~difusion.sampling.ModelDenoiser`."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet
        self.num_classes = getattr(getattr(unet, "config", None), "num_class_embeds", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        return self.unet(x, t - 1, class_labels=y).sample


PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
