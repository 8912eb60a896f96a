"""Samplers: plain functions over a denoiser and a path."""

from difusion.sampling.ddpm import respaced_timesteps, sample_ddpm
from difusion.sampling.denoiser import Denoiser, ModelDenoiser
from difusion.sampling.noise import PerImageNoise, seeds_for

__all__ = [
    "Denoiser",
    "ModelDenoiser",
    "PerImageNoise",
    "respaced_timesteps",
    "sample_ddpm",
    "seeds_for",
]
