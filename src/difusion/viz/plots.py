"""Plots a person would rather look at than read: the loss curve, 2-D samples over the data."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from difusion.files import atomic_path  # noqa: E402


def save_figure(fig, out: str | Path, **savefig) -> Path:
    """Write a matplotlib figure atomically, in the format its suffix names (PNG if none), and
    close it; ``savefig`` goes to ``Figure.savefig`` (dpi=...)."""
    out = Path(out)
    try:
        with atomic_path(out) as tmp:  # the temporary name ends in .tmp-PID: name the format
            fig.savefig(tmp, format=out.suffix[1:].lower() or "png", **savefig)
    finally:
        plt.close(fig)
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl (lines that fail to parse, e.g. a torn last line, are skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_loss(metrics_path: str | Path, out: str | Path, title: str = "") -> Path:
    """The training loss (log scale) against steps, with its running mean, from metrics.jsonl."""
    rows = [r for r in read_metrics(metrics_path) if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if rows:
        steps = np.array([r["step"] for r in rows])
        loss = np.array([r["loss"] for r in rows])
        ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss (mean over log interval)")
        k = max(1, len(loss) // 20)
        if len(loss) > k:
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, lw=1.8, label=f"running mean of {k}")
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("L_simple")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_points(
    samples: torch.Tensor, data: torch.Tensor, out: str | Path, title: str = ""
) -> Path:
    """2-D samples (orange) scattered over the training data (grey)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    d, s = data.cpu().numpy(), samples.cpu().numpy()
    ax.scatter(d[:, 0], d[:, 1], s=2, c="0.7", label="data")
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:orange", label="samples")
    lim = np.abs(d).max() * 1.3
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    ax.set_title(title or "samples over data")
    fig.tight_layout()
    return save_figure(fig, out)


def points_frame(x: torch.Tensor, data: torch.Tensor, lim: float, label: str) -> np.ndarray:
    """One frame of a 2-D trajectory animation as an RGB array."""
    fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=100)
    d, s = data.cpu().numpy(), x.cpu().numpy()
    ax.scatter(d[:, 0], d[:, 1], s=1, c="0.8")
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:orange")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(label, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame
