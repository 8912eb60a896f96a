"""Denoising networks: the DDPM U-Net for images and a residual MLP for 2-D toy data."""

from difusion.nn.layers import num_parameters, timestep_embedding
from difusion.nn.mlp import MLPDenoiser
from difusion.nn.unet import UNet

__all__ = ["MLPDenoiser", "UNet", "num_parameters", "timestep_embedding"]
