"""Exact likelihood of a trained run through its probability-flow ODE, in bits/dim.

For dx/dt = v(x, t), log p_0(x_0) = log N(x_1; 0, I) + int_0^1 div v(x_t, t) dt (instantaneous
change of variables, Chen et al. 2018; for diffusion models Song et al. 2021, eq. 39). A flow run
gives v directly; a DDPM run gives it through its denoiser (``sampling/ode.py``: every path's
probability-flow ODE seen in rectified-flow coordinates), so the same number can be set next to the
run's variational bound (:mod:`difusion.metrics.nll`). Images are dequantized uniformly, which makes
the result an upper bound on the discrete -log2 P(bin) / D, on the same bins as the VLB.
"""

from __future__ import annotations

import math
import time

import torch

from difusion.errors import DifusionError


def ode_velocity(run):
    """The differentiable ODE velocity of a :class:`difusion.runs.TrainedRun`, from its denoiser
    unclipped (the ODE must be smooth): on a continuous path (t in [0, 1], noise N(0, I) at t = 1)
    in the path's own time; on the discrete DDPM path in rectified-flow coordinates
    (``sampling/ode.py``), whose tau runs from 0 (data) to 1 (noise)."""
    from difusion.sampling import ModelDenoiser
    from difusion.sampling.ode import ode_velocity as flow_coordinates
    from difusion.sampling.ode import path_velocity

    m = run.model
    den = ModelDenoiser(
        m.network, m.path, m.prediction, learn_sigma=m.learn_sigma, differentiable=True
    )
    return flow_coordinates(den, m.path) if m.path.discrete else path_velocity(den, m.path)


def run_ode_nll(
    run,
    *,
    n: int = 100,
    steps: int = 100,
    split: str = "test",
    batch_size: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """-log2 p(x) / D of ``run`` on ``n`` dequantized images of ``split`` by the ODE (RK4 with
    ``steps`` steps, Hutchinson's divergence with one Rademacher vector per image), in fp32. The
    estimate is only trustworthy once it stops moving with ``steps`` (a coarse solver reports too
    good a likelihood); the standard error is over images."""
    from tqdm.auto import tqdm

    from difusion.build import build_dataset
    from difusion.data import data_levels
    from difusion.diffusion.likelihood import check_on_grid
    from difusion.diffusion.likelihood_ode import (
        bits_per_dim,
        dequantize,
        level_bin,
        ode_log_likelihood,
    )

    if len(run.shape) != 3:
        raise DifusionError("--ode-steps scores images; this run is on 2-D points")
    if n < 1 or steps < 1:
        raise DifusionError(
            f"the ODE likelihood needs n >= 1 images and steps >= 1, got {n}, {steps}"
        )
    if run.config.model.class_conditional:
        raise DifusionError("the ODE likelihood is for unconditional runs; this one is conditional")
    data = build_dataset(run.config, split=split)
    n = min(n, len(data))
    g = torch.Generator().manual_seed(seed)
    levels = data_levels(run.config.data.name)
    check_on_grid(data.data[:n], levels, f"{run.config.data.name}:{split}")
    x = dequantize(data.data[:n].float(), g, levels)
    velocity = ode_velocity(run)
    start = time.perf_counter()
    parts = []
    for i in tqdm(range(0, n, batch_size), desc="ODE NLL", disable=not progress):
        xb = x[i : i + batch_size].to(device)
        log_p, _ = ode_log_likelihood(
            velocity, xb, steps=steps, method="rk4", divergence="hutchinson", generator=g
        )
        parts.append(bits_per_dim(log_p.double().cpu(), xb[0].numel(), level_bin(levels)))
    b = torch.cat(parts)
    return {
        "bits_per_dim": b.mean().item(),
        "standard_error": (b.std() / math.sqrt(len(b))).item() if n > 1 else float("nan"),
        "n_images": n,
        "split": f"{run.config.data.name}:{split}",
        "levels": levels,
        "method": f"probability-flow ODE, RK4 {steps} steps, Hutchinson, uniform dequantization",
        "run_step": run.step,
        "seconds": round(time.perf_counter() - start, 1),
    }


def ode_nll_line(result: dict) -> str:
    return (
        f"NLL (ODE): {result['bits_per_dim']:.3f} ± {result['standard_error']:.3f} bits/dim "
        f"({result['n_images']} images of {result['split']}, {result['method']}, "
        f"{result['seconds']:.0f} s)"
    )
