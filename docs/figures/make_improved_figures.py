"""Make the figures of docs/improved.md from the project's own code.

Run from the repository root:

    python docs/figures/make_improved_figures.py [--nll RUN_DIR/nll.json]

Writes next to this file:

- improved_weights.png    loss weightings over log-SNR for eps, x0 and v (uniform, min-SNR-5,
                          truncated SNR), all seen as weights on the x_0 error
- improved_variance.png   the two fixed variances beta_t and beta-tilde_t, and the true reverse
                          variance for Gaussian data, for the linear and cosine schedules
- improved_vlb_terms.png  the terms L_t of the bound of a trained model (needs --nll, the JSON of
                          `difusion eval RUN --nll`), and the importance-sampling law they give
- improved_schedules.png  a Fashion-MNIST image under the linear and cosine forward processes at
                          equal fractions of T (why linear destroys small images too fast)

Seeded; seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.importance import LossAwareSampler  # noqa: E402
from difusion.diffusion.weighting import loss_weight  # noqa: E402

HERE = Path(__file__).parent


def weights() -> None:
    lam = torch.linspace(-10, 10, 400, dtype=torch.float64)
    snr = lam.exp()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=110, sharey=True)
    for ax, pred in zip(axes, ("eps", "x0", "v"), strict=True):
        factor = {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}[pred]
        for w in ("uniform", "min-snr", "trunc-snr"):
            # Seen on the x_0 error: weight on the prediction's MSE times ||pred err||/||x0 err||.
            ax.plot(lam, (loss_weight(w, pred, snr, 5.0) * factor).log10(), label=w)
        ax.set_title(f"network predicts {pred}")
        ax.set_xlabel("log-SNR lambda_t")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 weight on ||x0 - x0_hat||^2")
    axes[0].legend(fontsize=8)
    fig.suptitle("L_simple on eps is the x_0 error weighted by SNR; min-SNR caps it at 5")
    fig.tight_layout()
    fig.savefig(HERE / "improved_weights.png")
    plt.close(fig)


def variances() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=110)
    for ax, name in zip(axes, ("linear", "cosine"), strict=True):
        path = DDPMPath.from_schedule(name, 1000)
        t = torch.arange(1, 1001)
        ax.plot(t, path.beta[t], label="beta_t (upper)")
        ax.plot(t[1:], path.beta_tilde[t[1:]], label="beta-tilde_t (lower)")
        # The true reverse variance for x_0 ~ N(0, s^2): beta-tilde + c0^2 Var[x_0 | x_t].
        s2 = 0.25
        ab = path.alpha_bar[t]
        var_x0 = s2 * (1 - ab) / (ab * s2 + 1 - ab)
        true = path.beta_tilde[t] + (path.alpha_bar_prev[t].sqrt() * path.beta[t] / (1 - path.alpha_bar[t])) ** 2 * var_x0
        ax.plot(t, true, "--", label="exact, Gaussian data (s = 0.5)")
        ax.set_yscale("log")
        ax.set_title(f"{name} schedule")
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("The reverse variance lies between beta-tilde and beta; they differ only at small t")
    fig.tight_layout()
    fig.savefig(HERE / "improved_variance.png")
    plt.close(fig)


def vlb_terms(nll_json: Path) -> None:
    result = json.loads(Path(nll_json).read_text())
    terms = np.array(result["terms_bits"])
    T = len(terms) - 1
    sampler = LossAwareSampler(T)
    for _ in range(10):
        sampler.update(torch.arange(1, T + 1), torch.from_numpy(terms[:T]))
    p = sampler.probabilities().numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=110)
    axes[0].plot(np.arange(T), np.abs(terms[:T]) + 1e-6)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("t (term L_t; L_0 is the decoder)")
    axes[0].set_ylabel("|L_t|, bits/dim")
    axes[0].set_title(f"bound {result['bits_per_dim']:.2f} bits/dim: the first terms dominate")
    axes[1].plot(np.arange(1, T + 1), p)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("t")
    axes[1].set_title("importance sampling p_t ~ sqrt(E[L_t^2])")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "improved_vlb_terms.png")
    plt.close(fig)


def schedules() -> None:
    from difusion.data import load_dataset

    x0 = load_dataset("fashion-mnist", split="test").data[:1].double()
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    fracs = [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]
    fig, axes = plt.subplots(2, len(fracs), figsize=(1.6 * len(fracs), 4.6), dpi=110)
    for row, name in enumerate(("linear", "cosine")):
        path = DDPMPath.from_schedule(name, 1000)
        for col, f in enumerate(fracs):
            t = max(0, int(round(f * 1000)))
            x = path.q_sample(x0, t, eps) if t > 0 else x0
            ax = axes[row, col]
            ax.imshow(x[0, 0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ab = path.alpha_bar[t].item()
            ax.set_title(f"t/T={f:g}\nab={ab:.3f}", fontsize=7)
        axes[row, 0].set_ylabel(name)
    fig.suptitle("Linear is almost pure noise from t = 0.6 T on; cosine keeps information longer")
    fig.tight_layout()
    fig.savefig(HERE / "improved_schedules.png")
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--nll", type=Path, default=None, help="nll.json of `difusion eval --nll`")
    args = ap.parse_args()
    weights()
    variances()
    schedules()
    if args.nll:
        vlb_terms(args.nll)
    print("written to", HERE)
