"""Every sampler by name, with its time grid: what `difusion sample --sampler NAME --steps N` runs.

All samplers share one signature, ``f(denoiser, path, x_T, timesteps, *, y, noise, callback)``,
and network evaluations (NFE) per step are 1, except Heun (2, and 1 on the last step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from difusion.errors import ConfigError
from difusion.sampling.ddim import ddim_timesteps, sample_ddim
from difusion.sampling.ddpm import respaced_timesteps, sample_ddpm
from difusion.sampling.dpm_solver import sample_dpmpp_2m
from difusion.sampling.flow_ode import flow_grid_timesteps, sample_flow_ode
from difusion.sampling.karras import karras_timesteps, sample_euler, sample_heun

SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun", "fm-euler", "fm-heun", "fm-rk4")
DEFAULT_STEPS = {"ddim": 50, "dpmpp-2m": 20, "euler": 50, "heun": 25}  # ddpm: all T
DEFAULT_STEPS |= {"fm-euler": 50, "fm-heun": 25, "fm-rk4": 10}
CALLS = {"heun": 2, "fm-heun": 2, "fm-rk4": 4}  # network calls per step (1 when absent)
SAMPLER_HELP = (
    "ddpm (ancestral, Ho et al. Algorithm 2; all T steps unless --steps), ddim (Song et al. "
    "eq. 12 with --eta; 50), dpmpp-2m (DPM-Solver++(2M); 20), euler or heun (probability-flow "
    "ODE on the Karras sigma grid, rho = 7; 50 and 25, Heun uses 2 network calls a step), "
    "fm-euler, fm-heun or fm-rk4 (the flow-matching ODE on evenly spaced flow times "
    "tau = sigma / (alpha + sigma); 50, 25 and 10 steps of 1, 2 and 4 calls)."
)


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")


def timesteps_for(name: str, path, steps: int | None, spacing: str = "trailing") -> list:
    """The descending time grid ``name`` walks for ``steps`` steps (None: its default)."""
    check_sampler(name)
    if name == "ddpm":
        return respaced_timesteps(path.T, steps or path.T)
    n = min(steps or DEFAULT_STEPS[name], path.T)
    if name in ("euler", "heun"):
        return karras_timesteps(path, n)
    if name.startswith("fm-"):
        return flow_grid_timesteps(path, n)
    return ddim_timesteps(path.T, n, spacing)


def network_evaluations(name: str, timesteps: list) -> int:
    """How many times the sampler calls the denoiser on this grid."""
    steps = len(timesteps) - 1
    return 2 * steps - 1 if name == "heun" else CALLS.get(name, 1) * steps


def run_sampler(
    name: str,
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: list,
    *,
    eta: float = 0.0,
    variance: str = "beta",
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Run sampler ``name``; ``eta`` is DDIM's, ``variance`` is DDPM's sigma_t^2 (beta or beta_tilde)."""
    check_sampler(name)
    common = {"y": y, "noise": noise, "callback": callback}
    if name == "ddpm":
        return sample_ddpm(denoiser, path, x_T, timesteps=timesteps, variance=variance, **common)
    if name == "ddim":
        return sample_ddim(denoiser, path, x_T, timesteps, eta=eta, **common)
    if name.startswith("fm-"):  # flow ODE solvers, on any denoiser (flow_ode.sample_flow_ode)
        return sample_flow_ode(name[3:], denoiser, path, x_T, timesteps, **common)
    fn = {"dpmpp-2m": sample_dpmpp_2m, "euler": sample_euler, "heun": sample_heun}[name]
    return fn(denoiser, path, x_T, timesteps, **common)
