"""The pictures of a trained flow: a sample grid (images), or samples over the data and the
learned density (points)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from difusion.files import atomic_path
from difusion.viz import plot_points, save_figure, save_grid


@torch.no_grad()
def save_density(model, data: torch.Tensor, out: Path, size: int = 200) -> Path:
    """The learned density exp(log p(x)) on a grid over the data's range, beside the data."""
    import matplotlib.pyplot as plt

    lim = float(data.abs().max()) * 1.3
    axis = torch.linspace(-lim, lim, size)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    density = model.log_prob(grid).exp().reshape(size, size).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=120)
    d = data.numpy()
    axes[0].scatter(d[:, 0], d[:, 1], s=1, c="0.3")
    axes[0].set_title("test data")
    axes[1].imshow(density, extent=(-lim, lim, -lim, lim), origin="lower", cmap="magma")
    axes[1].set_title("p(x) of the flow")
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.tight_layout()
    return save_figure(fig, out)


def write_pictures(samples: torch.Tensor, data: torch.Tensor, model, folder: Path, seed: int):
    """samples.png (images) or samples_scatter.png and density.png (points), and samples.npz
    (``images`` or ``points``, ``seeds``: sample i used seed + i)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    seeds = np.arange(seed, seed + len(samples))
    if samples.dim() == 4:
        out["samples"] = save_grid(samples, folder / "samples.png")
        arrays = {"images": samples.numpy().astype(np.float32), "seeds": seeds}
    else:
        out["samples_scatter"] = plot_points(samples, data, folder / "samples_scatter.png")
        out["density"] = save_density(model, data, folder / "density.png")
        arrays = {"points": samples.numpy().astype(np.float32), "seeds": seeds}
    npz = folder / "samples.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:  # a file object: no .npz appended
        np.savez(f, **arrays)
    out["samples_npz"] = npz
    return out
