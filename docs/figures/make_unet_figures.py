"""Make the figures of docs/unet.md from the project's own code (no training).

Run from the repository root:

    python docs/figures/make_unet_figures.py

Writes next to this file:

- unet_sizes.png       feature-map sides and channels through the valid U-Net, 572 -> 388
- unet_data.png        synthetic cells (image, instances) and the real StarDist pair if fetched
- unet_weight_map.png  instances, the training target with separating lines, w_c, and w(x) (Eq. 2)
- unet_elastic.png     one image and its mask under four random elastic deformations
- unet_overlap_tile.png  the overlap-tile strategy on a 300x300 image: mirrored border, tiles

Seeded; a few seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from difusion.data.cells import synthetic_cells  # noqa: E402
from difusion.nn.unet_seg import output_size  # noqa: E402
from difusion.segmentation.elastic import (  # noqa: E402
    coarse_displacements,
    dense_displacements,
    warp,
)
from difusion.segmentation.inference import overlay  # noqa: E402
from difusion.segmentation.tiling import mirror_pad, tile_origins  # noqa: E402
from difusion.segmentation.weight_map import (  # noqa: E402
    class_weights,
    separation_target,
    weight_map,
)

HERE = Path(__file__).parent


def sizes_figure() -> Path:
    """Sides after each stage of the paper's U-Net (depth 4, 572 in)."""
    n, depth, base = 572, 4, 64
    stages, sides, chans = [], [], []
    s = n
    for k in range(depth):
        s -= 4
        stages.append(f"down {k}")
        sides.append(s)
        chans.append(base * 2**k)
        s //= 2
    s -= 4
    stages.append("bottom")
    sides.append(s)
    chans.append(base * 2**depth)
    for k in reversed(range(depth)):
        s = 2 * s - 4
        stages.append(f"up {k}")
        sides.append(s)
        chans.append(base * 2**k)
    assert sides[-1] == output_size(n, depth) == 388
    fig, ax = plt.subplots(figsize=(9, 3.6))
    levels = list(range(depth)) + [depth] + list(reversed(range(depth)))
    for i, (name, side, c, lev) in enumerate(zip(stages, sides, chans, levels, strict=True)):
        ax.add_patch(patches.Rectangle((i - 0.35, -lev - 0.3), 0.7, 0.6, color="C0", alpha=0.3))
        ax.text(i, -lev, f"{side}²\n{c} ch", ha="center", va="center", fontsize=8)
        ax.text(i, 0.55, name, ha="center", fontsize=7, color="gray")
    for k in range(depth):  # skip connections: crop side -> the side they are concatenated to
        i_down, i_up = k, len(stages) - 1 - k
        ax.annotate(
            "",
            xy=(i_up - 0.35, -k + 0.1),
            xytext=(i_down + 0.35, -k + 0.1),
            arrowprops={"arrowstyle": "->", "color": "C1", "lw": 0.8},
        )
        ax.text(
            (i_down + i_up) / 2, -k + 0.18, f"crop {sides[k]}² -> {sides[i_up] + 4}²",
            ha="center", fontsize=7, color="C1",
        )  # fmt: skip
    ax.set_xlim(-0.6, len(stages) - 0.4)
    ax.set_ylim(-depth - 0.6, 0.8)
    ax.set_axis_off()
    ax.set_title("valid U-Net (Ronneberger et al. 2015): 572² in, 388² out; sides after each level")
    fig.tight_layout()
    out = HERE / "unet_sizes.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def data_figure() -> Path:
    pics = []
    for seed in (0, 1, 2):
        img, lab = synthetic_cells(192, np.random.default_rng([0, seed]))
        pics.append((f"synthetic {seed}", img, lab))
    try:
        from difusion.data.stardist_wheel import load_stardist_pair

        img, lab = load_stardist_pair()
        pics.append(("StarDist img2d.tif (real)", img, lab))
    except Exception:  # noqa: BLE001 - not fetched: synthetic only
        pass
    fig, axes = plt.subplots(2, len(pics), figsize=(3 * len(pics), 6), squeeze=False)
    for j, (name, img, lab) in enumerate(pics):
        axes[0, j].imshow(np.clip(img, 0, 1), cmap="gray")
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].imshow(overlay(img, lab))
        axes[1, j].set_title(f"{len(np.unique(lab)) - 1} instances", fontsize=9)
        for ax in axes[:, j]:
            ax.set_axis_off()
    fig.tight_layout()
    out = HERE / "unet_data.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def weight_map_figure() -> Path:
    img, lab = synthetic_cells(128, np.random.default_rng([3, 0]), density=1.6)
    target = separation_target(lab)
    wc = class_weights(target)[target]
    w = weight_map(lab, 10.0, 5.0, target)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    axes[0].imshow(overlay(img, lab))
    axes[0].set_title("image and instances")
    axes[1].imshow(target, cmap="gray")
    axes[1].set_title("target: cells, separating lines")
    im = axes[2].imshow(wc, cmap="viridis")
    axes[2].set_title("w_c (class balancing)")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    im = axes[3].imshow(w, cmap="viridis")
    axes[3].set_title("w = w_c + 10 exp(-(d1+d2)²/(2·5²))")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    out = HERE / "unet_weight_map.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def elastic_figure() -> Path:
    img, lab = synthetic_cells(160, np.random.default_rng([4, 0]))
    grid = np.zeros_like(img)
    grid[::16, :] = 1.0
    grid[:, ::16] = 1.0
    fig, axes = plt.subplots(2, 5, figsize=(14, 5.8))
    rng = np.random.default_rng(0)
    for j in range(5):
        if j == 0:
            d = np.zeros((2, *img.shape))
            title = "original"
        else:
            d = dense_displacements(coarse_displacements(rng, 3, 10.0), img.shape)
            title = f"deformed {j} (max {np.abs(d).max():.0f} px)"
        im2 = np.maximum(warp(img, d, 3), 0.8 * warp(grid, d, 1))
        axes[0, j].imshow(np.clip(im2, 0, 1), cmap="gray")
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].imshow(overlay(warp(img, d, 3), warp(lab, d, 0)))
        for ax in axes[:, j]:
            ax.set_axis_off()
    fig.suptitle("elastic deformation: 3x3 grid, std 10 px, bicubic field; masks by nearest")
    fig.tight_layout()
    out = HERE / "unet_elastic.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def overlap_tile_figure() -> Path:
    tile_in, depth = 188, 3
    tile_out = output_size(tile_in, depth)
    m = (tile_in - tile_out) // 2
    img, _ = synthetic_cells(300, np.random.default_rng([5, 0]))
    padded = mirror_pad(img, (m, m), (m, m))
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    ax.imshow(np.clip(padded, 0, 1), cmap="gray")
    ax.add_patch(patches.Rectangle((m - 0.5, m - 0.5), 300, 300, fill=False, ec="w", lw=1.5))
    origins = tile_origins(300, tile_out)
    for k, (r, c) in enumerate([(origins[0], origins[0]), (origins[1], origins[-1])]):
        colour = ("C1", "C2")[k]
        ax.add_patch(
            patches.Rectangle((c - 0.5, r - 0.5), tile_in, tile_in, fill=False, ec=colour, ls="--")
        )
        ax.add_patch(
            patches.Rectangle(
                (c + m - 0.5, r + m - 0.5), tile_out, tile_out, color=colour, alpha=0.35
            )
        )
    for s in origins:
        ax.axhline(s + m - 0.5, color="y", lw=0.5)
        ax.axvline(s + m - 0.5, color="y", lw=0.5)
    ax.set_title(
        f"overlap-tile: {tile_in}² input tiles (dashed) predict their {tile_out}² centre (filled);\n"
        f"the image (white) is mirrored by {m} px; output tiles start at {origins}",
        fontsize=9,
    )
    ax.set_axis_off()
    fig.tight_layout()
    out = HERE / "unet_overlap_tile.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


if __name__ == "__main__":
    for make in (sizes_figure, data_figure, weight_map_figure, elastic_figure, overlap_tile_figure):
        print(make())
