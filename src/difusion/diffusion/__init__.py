"""The math of the Gaussian path, apart from any network: schedules, q, posterior, parameterizations, losses."""

from difusion.diffusion.losses import sample_timesteps, simple_loss
from difusion.diffusion.parameterization import PREDICTIONS, target, to_x0_eps
from difusion.diffusion.path import DDPMPath
from difusion.diffusion.schedules import SCHEDULES, make_betas

__all__ = [
    "DDPMPath",
    "PREDICTIONS",
    "SCHEDULES",
    "make_betas",
    "sample_timesteps",
    "simple_loss",
    "target",
    "to_x0_eps",
]
