"""Make the figures of docs/ddpm.md from the project's own code.

Run from the repository root:

    python docs/figures/make_ddpm_figures.py

Writes three PNGs next to this file:

- forward_process.png  one Fashion-MNIST image noised with DDPMPath.q_sample (eq. 4), cosine and linear
- alpha_bar.png        alpha_bar_t and the log-SNR lambda_t of the linear, cosine and sigmoid schedules
- posterior.png        1-D Gaussian mixture: the exact E[x_0 | x_t], and the DDPM sampler (Algorithm 2)
                       driven by that exact denoiser, with no network and no training

Everything is seeded, runs on the CPU in a few seconds, and needs Fashion-MNIST on disk
(`difusion datasets` says where it looks).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from difusion.data import load_dataset  # noqa: E402
from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser  # noqa: E402
from difusion.sampling import sample_ddpm  # noqa: E402

OUT = Path(__file__).resolve().parent
T = 1000
COLORS = {"linear": "tab:blue", "cosine": "tab:orange", "sigmoid": "tab:green"}


def forward_process(out: Path) -> Path:
    """Rows: cosine, linear. Columns: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    x0 = load_dataset("fashion-mnist", split="test").data[:1]  # (1, 1, 28, 28) in [-1, 1]
    # One eps for every panel, so the rows differ only by the schedule.
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    times = [0, 50, 100, 250, 500, 750, 1000]
    schedules = ["cosine", "linear"]
    fig, axes = plt.subplots(len(schedules), len(times), figsize=(1.6 * len(times), 4.6))
    for row, name in enumerate(schedules):
        path = DDPMPath.from_schedule(name, T)
        for col, t in enumerate(times):
            x_t = path.q_sample(x0, t, eps)
            ax = axes[row, col]
            # Shown on the data range [-1, 1]; noise beyond it saturates to black or white.
            ax.imshow(x_t[0, 0].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ab = path.alpha_bar[t].item()
            ax.set_title(f"t = {t}\n$\\bar\\alpha_t$ = {ab:.3g}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=11)
    fig.suptitle(
        "q(x_t | x_0): one test image, one fixed eps, two schedules (T = 1000)", fontsize=11
    )
    fig.tight_layout(h_pad=1.5)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def alpha_bar(out: Path) -> Path:
    """alpha_bar_t and lambda_t = log(alpha_bar_t / (1 - alpha_bar_t)) against t / T."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    u = torch.arange(T + 1, dtype=torch.float64) / T
    for name, color in COLORS.items():
        path = DDPMPath.from_schedule(name, T)
        ax1.plot(u, path.alpha_bar, color=color, label=name)
        lam = path.log_snr(torch.arange(path.T + 1))  # +inf at t = 0: leave that point out
        ax2.plot(u[1:], lam[1:], color=color, label=name)
    ax1.set_xlabel("t / T")
    ax1.set_ylabel(r"$\bar\alpha_t$")
    ax1.set_title(r"signal kept: $\bar\alpha_t = \prod_{s \leq t} (1 - \beta_s)$")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.set_xlabel("t / T")
    ax2.set_ylabel(r"$\lambda_t$")
    ax2.set_title(r"log-SNR $\lambda_t = \log(\bar\alpha_t / (1 - \bar\alpha_t))$")
    ax2.axhline(0.0, color="gray", lw=0.8, ls="--")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def mixture_1d() -> GaussianMixture:
    pi = torch.tensor([0.3, 0.5, 0.2])
    mu = torch.tensor([[-2.0], [0.5], [2.5]])  # (K, 1)
    var = torch.tensor([0.09, 0.25, 0.0625])
    return GaussianMixture(pi, mu, var.reshape(3, 1, 1))  # cov (K, 1, 1)


def mixture_density(mix: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    var = mix.cov[:, 0, 0]
    z = (x[:, None] - mix.mu[None, :, 0]) ** 2 / var[None]
    return (mix.pi[None] * torch.exp(-0.5 * z) / torch.sqrt(2 * math.pi * var[None])).sum(1)


def posterior(out: Path, n: int = 4000) -> Path:
    """(a) E[x_0 | x_t] at a few t; (b) DDPM samples driven by the exact denoiser; (c) paths."""
    mix = mixture_1d()
    path = DDPMPath.from_schedule("cosine", T)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))

    # (a) The optimal denoiser: what a perfectly trained network would output, as x_0.
    x_t = torch.linspace(-4, 4, 801, dtype=torch.float64)[:, None]
    cmap = plt.get_cmap("viridis")
    shown = [10, 100, 300, 500, 700, 900]
    for i, t in enumerate(shown):
        a, s = path.alpha_bar[t].sqrt(), (1 - path.alpha_bar[t]).sqrt()
        m = mix.posterior_mean(x_t, a, s)
        ax1.plot(x_t[:, 0], m[:, 0], color=cmap(i / (len(shown) - 1)), label=f"t = {t}")
    for k in range(3):
        ax1.axhline(mix.mu[k, 0].item(), color="gray", lw=0.6, ls=":")
    ax1.set_xlabel("$x_t$")
    ax1.set_ylabel(r"$E[x_0 \mid x_t]$")
    ax1.set_title("exact denoiser of a 1-D mixture (cosine, T = 1000)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)

    # (b) Algorithm 2 with the oracle in place of a network must reproduce the mixture.
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 1, generator=g, dtype=torch.float64)
    keep = 40  # record the first few trajectories for panel (c)
    traj_t, traj_x = [T], [x_T[:keep, 0].clone()]

    def record(step):
        traj_t.append(step.s)
        traj_x.append(step.x[:keep, 0].clone())

    x0 = sample_ddpm(
        MixtureDenoiser(mix, path),
        path,
        x_T,
        variance="beta",
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
        callback=record,
    )
    grid = torch.linspace(-4, 4, 801, dtype=torch.float64)
    ax2.hist(
        x0[:, 0].numpy(),
        bins=120,
        range=(-4, 4),
        density=True,
        color="tab:blue",
        alpha=0.6,
        label=f"{n} DDPM samples",
    )
    ax2.plot(grid, mixture_density(mix, grid), color="black", lw=1.5, label="true density")
    ax2.set_xlabel("$x_0$")
    ax2.set_title("sample_ddpm + MixtureDenoiser, 1000 steps, no training")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)

    # (c) The same runs, seen as paths from t = T (noise) back to t = 0 (data).
    xs = torch.stack(traj_x)  # (T + 1, keep)
    ax3.plot(traj_t, xs.numpy(), color="tab:blue", lw=0.5, alpha=0.6)
    ax3.set_xlim(T, 0)  # time runs backwards while sampling
    ax3.set_xlabel("t  (sampling walks from T down to 0)")
    ax3.set_ylabel("$x_t$")
    ax3.set_title(f"{keep} sampling trajectories")
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> None:
    torch.set_num_threads(1)  # tiny tensors: one thread is as fast and stays out of the way
    for make, name in [
        (forward_process, "forward_process.png"),
        (alpha_bar, "alpha_bar.png"),
        (posterior, "posterior.png"),
    ]:
        t0 = time.perf_counter()
        p = make(OUT / name)
        print(f"wrote {p} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
