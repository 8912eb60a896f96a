"""Samplers: plain functions over a denoiser and a path, with one signature
``f(denoiser, path, x_T, timesteps, *, y, noise, callback)``, plus the wrappers that change what a
denoiser does (guidance) and the uses of a sampler (inpainting, inversion)."""

from difusion.sampling.ddim import ddim_timesteps, sample_ddim
from difusion.sampling.ddpm import Step, respaced_timesteps, sample_ddpm
from difusion.sampling.denoiser import Denoiser, ModelDenoiser
from difusion.sampling.dpm_solver import sample_dpmpp_2m
from difusion.sampling.guidance import GuidedDenoiser
from difusion.sampling.inpaint import sample_inpaint
from difusion.sampling.inversion import invert_ddim, slerp
from difusion.sampling.karras import karras_timesteps, sample_euler, sample_heun
from difusion.sampling.noise import PerImageNoise, seeds_for
from difusion.sampling.ode import sample_ode
from difusion.sampling.samplers import SAMPLERS, run_sampler, timesteps_for

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "GuidedDenoiser",
    "ModelDenoiser",
    "PerImageNoise",
    "Step",
    "ddim_timesteps",
    "invert_ddim",
    "karras_timesteps",
    "respaced_timesteps",
    "run_sampler",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "sample_inpaint",
    "sample_ode",
    "seeds_for",
    "slerp",
    "timesteps_for",
]
