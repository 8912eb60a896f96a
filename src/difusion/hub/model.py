"""The lab's network as a diffusers model, so ``DiffusionPipeline.from_pretrained`` loads an export.

diffusers cannot build the lab's U-Net (or rename its weights into a ``UNet2DModel``: the blocks
differ), so an export keeps the network as it is, inside :class:`DifusionUNet`, a diffusers
``ModelMixin`` whose config is the run's own config. diffusers records it in ``model_index.json``
as ``["difusion.hub.model", "DifusionUNet"]`` and, for safety, loads a class from outside its own
libraries only from a module already imported: ``import difusion.hub.model`` before
``from_pretrained``. This module imports diffusers at the top; nothing in the lab imports it until
an export is written (diffusers stays optional).

The forward pass is diffusers' ``unet(sample, timestep, class_labels).sample`` with diffusers'
clock mapped to the network's, ``network time = time_scale * (timestep + time_shift)``:

- DDPM (Ho et al. 2020): diffusers counts k = 0..T-1 where the paper and the lab count t = k + 1
  (``alphas_cumprod[k]`` is alpha_bar_{k+1}); time_scale 1, time_shift 1.
- flow (t = 0 data, t = 1 noise, x_t = (1 - t) x_0 + t eps): FlowMatchEulerDiscreteScheduler's
  sigma is t and its timestep is 1000 sigma; the lab's network sees ``TIME_SCALE * t`` (1000 t),
  so time_scale = TIME_SCALE / 1000, time_shift 0. The output is the velocity eps - x_0, the
  scheduler's ``model_output`` (its Euler step x <- x + (sigma_next - sigma) v).
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

from difusion.build import build_network
from difusion.config import config_from_dict


class DifusionUNet(ModelMixin, ConfigMixin):
    """A lab network (``build_network`` of ``run_config``) with diffusers' model interface.

    ``in_channels`` and ``sample_size`` are what ``DDPMPipeline`` reads to draw its noise.
    ``learn_sigma``: the network also outputs v, improved DDPM's log-variance interpolation
    (Nichol & Dhariwal eq. 15: log Sigma = v log beta + (1 - v) log beta_tilde). With
    ``learned_variance`` it is passed on as 2 v - 1, since diffusers' ``learned_range`` reads its
    channel as frac = (out + 1) / 2; without, it is dropped (the run samples a fixed variance)."""

    @register_to_config
    def __init__(
        self,
        run_config: dict,
        in_channels: int,
        sample_size: int | list[int],
        num_classes: int | None = None,
        time_scale: float = 1.0,
        time_shift: float = 1.0,
        learn_sigma: bool = False,
        learned_variance: bool = False,
        step: int = 0,
    ):
        super().__init__()
        size = [sample_size] * 2 if isinstance(sample_size, int) else list(sample_size)
        cfg = config_from_dict(run_config)
        self.network = build_network(cfg, (in_channels, *size), num_classes)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' loader, always building the network for real: the lab's networks are small,
        and its low-memory route (accelerate's empty weights) is not needed."""
        kwargs["low_cpu_mem_usage"] = False
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple:
        """The network's prediction at diffusers' ``timestep``; ``class_labels`` None is the null
        class of a class-conditional network (its unconditional model, trained by label dropout)."""
        c = self.config
        t = torch.as_tensor(timestep, device=sample.device).to(sample.dtype).reshape(-1)
        t = c.time_scale * (t.expand(sample.shape[0]) + c.time_shift)
        out = self.network(sample, t, class_labels)
        if c.learn_sigma:
            pred, v = out.chunk(2, dim=1)
            out = torch.cat([pred, 2 * v - 1], dim=1) if c.learned_variance else pred
        return UNet2DOutput(sample=out) if return_dict else (out,)
