"""Use a diffusers ``UNet2DModel`` as a difusion network, so every sampler here runs on it.

diffusers counts time from 0 (``alphas_cumprod[k]`` is the noise level after k + 1 steps) where
Ho et al. and difusion count from 1 (``alpha_bar[t]``, t = 1..T); so our t is their k = t - 1, and
fractional t passes through as a fractional timestep. diffusers is never a runtime dependency: the
model is given by the caller, or built (lazily importing diffusers) for a run folder made by
`difusion import` (``difusion.hub.imports``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from difusion.errors import CheckpointError, DifusionError


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

# In a run folder made by `difusion import` (difusion.hub.imports): the UNet2DModel's config, whose
# weights the checkpoint's EMA group holds as a DiffusersNetwork.
DIFFUSERS_UNET = "diffusers_unet.json"


def imported_network(run_dir: Path) -> DiffusersNetwork | None:
    """The diffusers ``UNet2DModel`` of an imported run folder (untrained: its weights are in the
    checkpoint), or None for a run of the lab's own networks."""
    path = Path(run_dir) / DIFFUSERS_UNET
    if not path.is_file():
        return None
    try:
        from diffusers import UNet2DModel
    except ModuleNotFoundError:
        raise DifusionError(
            f"{run_dir} holds a diffusers UNet2DModel (imported); pip install diffusers"
        ) from None
    try:
        return DiffusersNetwork(UNet2DModel.from_config(json.loads(path.read_text())))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} is not a UNet2DModel config ({e})") from None
