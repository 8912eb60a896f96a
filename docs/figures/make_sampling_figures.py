"""Make the figures of docs/sampling.md from the project's own code, with exact denoisers only
(no network, no training: the samplers are the only thing being shown).

Run from the repository root:

    python docs/figures/make_sampling_figures.py

Writes next to this file:

- sampler_orders.png    error against steps of DDIM, Euler, Heun and DPM-Solver++(2M) on Gaussian
                        data, whose probability-flow ODE is solvable in closed form
- sampler_paths.png     2-D mixture: paths of DDPM (stochastic) and DDIM eta = 0 (deterministic)
- guidance_mixture.png  a labelled 2-D mixture sampled for class 1 at guidance w = 0, 1, 3

Seeded; a few seconds on a CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.oracle import (  # noqa: E402
    GaussianMixture,
    LabelledMixtureDenoiser,
    MixtureDenoiser,
)
from difusion.sampling import (  # noqa: E402
    GuidedDenoiser,
    ddim_timesteps,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)

OUT = Path(__file__).resolve().parent
MU, S = 1.0, 0.5


def gaussian_denoiser(path):
    def den(x_t, t, y=None):
        a, s = path.alpha_t(t, x_t), path.sigma_t(t, x_t)
        x0 = MU + a * S**2 / (a**2 * S**2 + s**2) * (x_t - a * MU)
        return x0, (x_t - a * x0) / s

    return den


def orders(out: Path) -> Path:
    path = DDPMPath.from_schedule("cosine", 1000)
    den = gaussian_denoiser(path)
    x_T = torch.linspace(-3, 3, 41, dtype=torch.float64)[:, None]
    (a_t, g_t), (a_s, g_s) = path.alpha_sigma(900), path.alpha_sigma(100)
    exact = a_s * MU + math.sqrt(a_s**2 * S**2 + g_s**2) * (x_T - a_t * MU) / math.sqrt(
        a_t**2 * S**2 + g_t**2
    )
    solvers = {
        "DDIM (eta = 0)": lambda ts: sample_ddim(den, path, x_T, ts),
        "Euler (sigma~)": lambda ts: sample_euler(den, path, x_T, ts),
        "Heun": lambda ts: sample_heun(den, path, x_T, ts),
        "DPM-Solver++(2M)": lambda ts: sample_dpmpp_2m(den, path, x_T, ts),
    }
    ns = [5, 10, 20, 40, 80, 160]
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for (name, solve), style in zip(solvers.items(), ["o-", "x--", "s-", "^-"], strict=True):
        errs = [(solve(list(range(900, 99, -800 // n))) - exact).abs().max().item() for n in ns]
        ax.loglog(ns, errs, style, label=name, ms=4)
    ax.loglog(ns, [0.5 / n for n in ns], ":", color="grey", label="slope -1")
    ax.loglog(ns, [2.0 / n**2 for n in ns], "-.", color="grey", label="slope -2")
    ax.set_xlabel("steps from t = 900 to t = 100")
    ax.set_ylabel("max |x - exact ODE solution|")
    ax.set_title("Order of convergence on Gaussian data")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def mixture() -> GaussianMixture:
    pi = torch.tensor([0.4, 0.35, 0.25])
    mu = torch.tensor([[-1.5, -0.5], [1.5, 1.0], [0.5, -1.8]])
    cov = torch.stack([torch.eye(2) * 0.05, torch.eye(2) * 0.08, torch.eye(2) * 0.04])
    return GaussianMixture(pi, mu, cov)


def paths(out: Path) -> Path:
    mix = mixture()
    path = DDPMPath.from_schedule("cosine", 1000)
    den = MixtureDenoiser(mix, path)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(24, 2, generator=g, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=120, sharex=True, sharey=True)
    for ax, (title, run) in zip(
        axes,
        [
            ("DDPM ancestral, 1000 steps", "ddpm"),
            ("DDIM eta = 0, 50 steps", "ddim"),
        ],
        strict=True,
    ):
        track = [x_T]

        def cb(step, track=track):
            track.append(step.x)

        if run == "ddpm":
            sample_ddpm(den, path, x_T, noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64), callback=cb)  # fmt: skip
        else:
            sample_ddim(den, path, x_T, ddim_timesteps(1000, 50), callback=cb)
        xs = torch.stack(track)  # (steps + 1, N, 2)
        data, _ = mix.sample(3000, generator=torch.Generator().manual_seed(1))
        ax.scatter(data[:, 0], data[:, 1], s=2, c="lightgrey")
        for i in range(xs.shape[1]):
            ax.plot(xs[:, i, 0], xs[:, i, 1], lw=0.7, alpha=0.8)
        ax.scatter(xs[0, :, 0], xs[0, :, 1], s=10, c="k", marker="x", label="x_T")
        ax.scatter(xs[-1, :, 0], xs[-1, :, 1], s=12, c="tab:red", label="x_0")
        ax.set_title(title)
        ax.set_aspect("equal")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def guidance(out: Path) -> Path:
    pi = torch.tensor([0.5, 0.5])
    mu = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    cov = torch.stack([torch.eye(2) * 0.5, torch.eye(2) * 0.5])
    mix = GaussianMixture(pi, mu, cov)
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = LabelledMixtureDenoiser(mix, path)
    x_T = torch.randn(1500, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.ones(1500, dtype=torch.long)
    data, k = mix.sample(1500, generator=torch.Generator().manual_seed(3))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), dpi=120, sharex=True, sharey=True)
    for ax, w in zip(axes, [0.0, 1.0, 3.0], strict=True):
        den = GuidedDenoiser(cond, path, w, cond.null_label)
        x = sample_ddim(den, path, x_T, ddim_timesteps(1000, 50), y=y)
        ax.scatter(data[k == 0, 0], data[k == 0, 1], s=2, c="tab:blue", alpha=0.3, label="class 0")
        ax.scatter(
            data[k == 1, 0], data[k == 1, 1], s=2, c="tab:orange", alpha=0.3, label="class 1"
        )
        ax.scatter(x[:, 0], x[:, 1], s=2, c="k", label="samples for class 1")
        ax.set_title(f"w = {w:g}: mean x = {x[:, 0].mean():.2f}")
        ax.set_aspect("equal")
    axes[0].legend(fontsize=7, loc="lower left", markerscale=4)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    for make, name in [
        (orders, "sampler_orders.png"),
        (paths, "sampler_paths.png"),
        (guidance, "guidance_mixture.png"),
    ]:
        print(make(OUT / name))
