"""Make the figures of docs/flow.md from the project's own code, with exact fields only (no network,
no training): the tutorial's 2-D examples (Nakkiran et al. 2024, Secs. 2-4) on a spiral target.

Run from the repository root:

    python docs/figures/make_flow_figures.py

Writes next to this file:

- flow_tutorial_2d.png  trajectories to a spiral: DDPM with the x_0 predictor (stochastic), DDIM
                        (deterministic), flow matching from a Gaussian and from an annulus base
- flow_steps.png        flow-matching samples with 1, 2, 5 and 50 Euler steps from both bases
- flow_orders.png       error against steps of the Euler, Heun and RK4 flow solvers on Gaussian data

The spiral is a mixture of 150 narrow Gaussians (std 0.05) at spiral points, the annulus the same
with ring points, so the exact denoiser (``oracle.MixtureDenoiser``) and the exact flow-matching
velocity (``flow.MixtureFlow``) are available in closed form. Seeded; about a minute on a CPU.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from difusion.data.toy2d import sample_toy2d  # noqa: E402
from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.flow import FlowPath, GaussianFlow, MixtureFlow  # noqa: E402
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser  # noqa: E402
from difusion.sampling import (  # noqa: E402
    ddim_timesteps,
    respaced_timesteps,
    sample_ddim,
    sample_ddpm,
)
from difusion.sampling.ode import ode_times as flow_times  # noqa: E402
from difusion.sampling.ode import solve_ode  # noqa: E402

OUT = Path(__file__).resolve().parent
K, STD = 150, 0.05
N, SHOWN = 600, 12  # samples, and how many trajectories are drawn


def spiral_points() -> torch.Tensor:
    return torch.from_numpy(sample_toy2d("spiral", K, seed=0)).double()


def annulus_points() -> torch.Tensor:
    return torch.from_numpy(sample_toy2d("annulus", K, seed=1)).double()


def run_with_paths(step_fn, x):
    """Run a sampler, collecting x after every step (the first column is the start)."""
    states = [x]
    out = step_fn(x, lambda s: states.append(s.x))
    return out, torch.stack(states, 1)  # (N, steps + 1, 2)


def solve_flow(velocity, x1, times, method="euler", callback=None):
    """The flow's own ODE in its time (t = tau on the rectified path), with a Step-like callback."""
    cb = None if callback is None else (lambda i, t, s, x, x0: callback(SimpleNamespace(x=x)))
    return solve_ode(velocity, x1, times, method, callback=cb)


def panel(ax, traj, data, title, base=None):
    ax.scatter(*data.T, s=2, c="lightgrey", label="data")
    if base is not None:
        ax.scatter(*base.T, s=2, c="#f5c6a5", label="base")
    for p in traj[:SHOWN]:
        ax.plot(*p.T, lw=0.7, alpha=0.8)
    ax.scatter(*traj[:, -1].T, s=3, c="k")
    ax.set_title(title, fontsize=9)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[], aspect="equal")


def tutorial_figure() -> None:
    torch.manual_seed(0)
    data = spiral_points()
    mix = GaussianMixture(torch.ones(K), data, STD**2 * torch.eye(2).expand(K, 2, 2))
    path = DDPMPath.from_schedule("cosine", 1000)
    den = MixtureDenoiser(mix, path)
    x_T = torch.randn(N, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    # DDPM, Ho et al. Algorithm 2 with the x_0 predictor: the posterior mean of x_{t-1} from
    # E[x_0 | x_t] (Nakkiran et al. Claim 2), 100 respaced steps.
    _, ddpm = run_with_paths(
        lambda x, cb: sample_ddpm(
            den,
            path,
            x,
            timesteps=respaced_timesteps(path.T, 100),
            noise=lambda shape: torch.randn(shape, generator=gen, dtype=torch.float64),
            callback=cb,
        ),
        x_T,
    )
    _, ddim = run_with_paths(
        lambda x, cb: sample_ddim(den, path, x, ddim_timesteps(path.T, 100), callback=cb), x_T
    )
    gauss = MixtureFlow(data, STD, torch.zeros(1, 2), 1.0)  # base N(0, I)
    base = annulus_points()
    ring = MixtureFlow(data, STD, base, STD)
    x_ring = base[torch.randint(K, (N,))] + STD * torch.randn(N, 2, dtype=torch.float64)
    flows = {}
    for name, field, x1 in (("gauss", gauss, x_T), ("ring", ring, x_ring)):
        _, flows[name] = run_with_paths(
            lambda x, cb, f=field: solve_flow(
                lambda z, t, y=None: f.velocity(z, t), x, flow_times(100), "euler", callback=cb
            ),
            x1,
        )
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    panel(axes[0], ddpm, data, "DDPM, x_0 predictor (100 steps)")
    panel(axes[1], ddim, data, "DDIM, deterministic (100 steps)")
    panel(axes[2], flows["gauss"], data, "flow matching from N(0, I) (Euler 100)")
    panel(axes[3], flows["ring"], data, "flow matching from an annulus (Euler 100)", base)
    fig.tight_layout()
    fig.savefig(OUT / "flow_tutorial_2d.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 4, figsize=(11, 5.6))
    for row, (name, field, x1) in enumerate((("N(0, I)", gauss, x_T), ("annulus", ring, x_ring))):
        for col, steps in enumerate((1, 2, 5, 50)):
            x = solve_flow(lambda z, t, y=None, f=field: f.velocity(z, t), x1, flow_times(steps))
            ax = axes[row, col]
            ax.scatter(*data.T, s=2, c="lightgrey")
            ax.scatter(*x.T, s=3, c="k")
            ax.set_title(f"from {name}: {steps} Euler step{'s' * (steps > 1)}", fontsize=9)
            ax.set(xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()
    fig.savefig(OUT / "flow_steps.png", dpi=110)
    plt.close(fig)


def orders_figure() -> None:
    g = GaussianFlow(FlowPath(), torch.tensor([2.0, -1.0]), 2.0)
    x1 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = g.flow_map(x1, 0.0)
    steps = [2, 4, 8, 16, 32, 64]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, calls in (("euler", 1), ("heun", 2), ("rk4", 4)):
        err = []
        for n in steps:
            x = solve_flow(lambda z, t, y=None: g.velocity(z, t), x1, flow_times(n), method)
            err.append((x - exact).norm(dim=1).mean().item())
        slope = math.log2(err[-2] / err[-1])
        nfe = [calls * n for n in steps]
        ax.loglog(nfe, err, marker="o", label=f"{method} (slope {slope:.2f} per halving)")
    ax.set(xlabel="network evaluations", ylabel="mean |x - x_exact| at t = 0")
    ax.set_title("flow ODE solvers on the exact Gaussian flow", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "flow_orders.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    orders_figure()
    tutorial_figure()
