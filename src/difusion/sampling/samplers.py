"""Every sampler by name, with its time grid: what `difusion sample --sampler NAME --steps N` runs.

All samplers share one signature, ``f(denoiser, path, x_T, timesteps, *, y, noise, callback)``,
run on every path (DDPM, flow, OT, variance exploding) and every model, and make one network
evaluation (NFE) per step, except Heun (2, and 1 on the last step) and the fm-* ODE solvers (1, 2, 4).

Time grids. The DDPM samplers' grids (ddpm, ddim, dpmpp-2m, euler, heun) are defined on a discrete
DDPM path: its integer times, or the Karras noise levels between them. On a continuous path they are
carried over by log-SNR from a ``grid_path`` (a flow run's ``diffusion.schedule``; without one, the
cosine schedule with T = 1000), so a flow model visits the noise levels a DDPM would.
The fm-* grids are evenly spaced noise fractions tau = sigma / (alpha + sigma) on every path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from difusion.diffusion.path import DDPMPath, as_time
from difusion.errors import ConfigError
from difusion.sampling.ddim import ddim_timesteps, sample_ddim
from difusion.sampling.ddpm import respaced_timesteps, sample_ddpm
from difusion.sampling.dpm_solver import sample_dpmpp_2m
from difusion.sampling.karras import karras_timesteps, sample_euler, sample_heun
from difusion.sampling.ode import ode_timesteps, sample_ode

SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun", "fm-euler", "fm-heun", "fm-rk4")
DEFAULT_STEPS = {"ddim": 50, "dpmpp-2m": 20, "euler": 50, "heun": 25}  # ddpm: all T
DEFAULT_STEPS |= {"fm-euler": 50, "fm-heun": 25, "fm-rk4": 10}
CALLS = {"heun": 2, "fm-heun": 2, "fm-rk4": 4}  # network calls per step (1 when absent)
SAMPLER_HELP = (
    "ddpm (ancestral, Ho et al. Algorithm 2; all T steps unless --steps), ddim (Song et al. "
    "eq. 12 with --eta; 50), dpmpp-2m (DPM-Solver++(2M); 20), euler or heun (probability-flow "
    "ODE on the Karras sigma grid, rho = 7; 50 and 25, Heun uses 2 network calls a step), "
    "fm-euler, fm-heun or fm-rk4 (the probability-flow ODE in rectified-flow coordinates on evenly "
    "spaced noise fractions tau = sigma / (alpha + sigma); 50, 25 and 10 steps of 1, 2 and 4 "
    "calls). Every sampler runs on every model."
)


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")


def timesteps_for(
    name: str, path, steps: int | None, spacing: str = "trailing", grid_path=None
) -> list:
    """The descending time grid of ``path`` that ``name`` walks for ``steps`` steps (None: its
    default). ``grid_path``: the discrete path whose grid a continuous ``path`` borrows (see above)."""
    check_sampler(name)
    if name.startswith("fm-"):
        return ode_timesteps(path, steps or DEFAULT_STEPS[name])
    grid = grid_path if grid_path is not None else path
    if not grid.discrete:  # a continuous path on its own borrows the cosine schedule's grid
        grid = DDPMPath.from_schedule("cosine", 1000)
    if name == "ddpm":
        ts = respaced_timesteps(grid.T, steps or grid.T)
    elif name in ("euler", "heun"):
        ts = karras_timesteps(grid, min(steps or DEFAULT_STEPS[name], grid.T))
    else:
        ts = ddim_timesteps(grid.T, min(steps or DEFAULT_STEPS[name], grid.T), spacing)
    if grid is path:
        return ts
    # the same noise levels on ``path``: equal log-SNR (t = 0, clean data, stays 0). Levels the
    # path does not reach (beyond a VE path's sigma_max, below an OT path's sigma_min) clamp to its
    # ends; the repeats they leave are dropped, so no step has zero length.
    mapped = [path.t_at_log_snr(grid.log_snr(as_time(t))).item() if t else 0.0 for t in ts]
    return [t for i, t in enumerate(mapped) if i == 0 or t != mapped[i - 1]]


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
    if name.startswith("fm-"):  # the ODE solvers in flow coordinates (ode.sample_ode)
        return sample_ode(name[3:], denoiser, path, x_T, timesteps, **common)
    fn = {"dpmpp-2m": sample_dpmpp_2m, "euler": sample_euler, "heun": sample_heun}[name]
    return fn(denoiser, path, x_T, timesteps, **common)
