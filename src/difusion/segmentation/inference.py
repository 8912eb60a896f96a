"""From a trained network to masks: overlap-tile probabilities, the foreground, its instances, the
measures next to the Otsu + watershed baseline, and overlay pictures."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from difusion.metrics.segmentation import (
    instances_from_foreground,
    mean_scores,
    otsu_watershed,
    segmentation_scores,
)
from difusion.nn.unet_seg import UNetSeg
from difusion.segmentation.tiling import predict_tiled


def foreground_probability(
    network: UNetSeg, image: np.ndarray, tile: int, autocast_dtype: torch.dtype | None = None
) -> np.ndarray:
    """p(cell | x) per pixel of an image ``(H, W)`` of any size: the softmax of the class scores
    (Eq. 1's ``p_k``), computed tile by tile with the overlap-tile strategy (Fig. 2)."""
    network.eval()
    device = next(network.parameters()).device

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, autocast_dtype, enabled=autocast_dtype is not None):
            return torch.softmax(network(x.to(device)).float(), dim=1)

    return predict_tiled(run, image, tile, network.output_size(tile))[1]


def segment(
    network: UNetSeg, image: np.ndarray, tile: int, method: str = "components"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probability, foreground, instances)`` of one image."""
    p = foreground_probability(network, image, tile)
    fg = p > 0.5
    return p, fg, instances_from_foreground(fg, method)


def score_images(
    network: UNetSeg,
    images: list[np.ndarray],
    instances: list[np.ndarray],
    tile: int,
    method: str = "components",
    baseline: bool = True,
) -> dict:
    """Mean measures of the U-Net (and of Otsu + watershed) over a set of images, with the
    per-image rows and the seconds each took."""
    rows, base_rows, preds = [], [], []
    t0 = time.perf_counter()
    for img, truth in zip(images, instances, strict=True):
        _, fg, inst = segment(network, img, tile, method)
        preds.append((fg, inst))
        rows.append(segmentation_scores(truth, fg, inst))
    seconds = time.perf_counter() - t0
    out = {"unet": mean_scores(rows), "unet_per_image": rows, "unet_seconds": seconds}
    if baseline:
        for img, truth in zip(images, instances, strict=True):
            fg, inst = otsu_watershed(img)
            base_rows.append(segmentation_scores(truth, fg, inst))
        out["otsu_watershed"] = mean_scores(base_rows)
        out["otsu_per_image"] = base_rows
    out["_predictions"] = preds
    return out


def overlay(image: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """RGB picture ``(H, W, 3)`` uint8: the grey image with each instance tinted in its own colour
    and its outline drawn."""
    from skimage.segmentation import find_boundaries

    grey = np.clip(image, 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    lab = np.asarray(instances)
    if lab.max() > 0:
        rng = np.random.default_rng(0)
        colours = rng.uniform(0.3, 1.0, (int(lab.max()) + 1, 3))
        tint = colours[lab]
        inside = lab > 0
        rgb[inside] = 0.6 * rgb[inside] + 0.4 * tint[inside]
        edge = find_boundaries(lab, mode="inner")
        rgb[edge] = tint[edge]
    return (rgb * 255).round().astype(np.uint8)


def save_comparison(
    images: list[np.ndarray],
    truths: list[np.ndarray],
    unet: list[np.ndarray],
    otsu: list[np.ndarray],
    out: Path,
    titles: tuple[str, str, str, str] = ("image", "truth", "U-Net", "Otsu + watershed"),
) -> Path:
    """A grid: one row per image, columns image / truth / U-Net / Otsu + watershed overlays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from difusion.viz import save_figure

    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(12, 3 * n), squeeze=False)
    for i in range(n):
        pics = [
            np.clip(images[i], 0, 1),
            overlay(images[i], truths[i]),
            overlay(images[i], unet[i]),
            overlay(images[i], otsu[i]),
        ]
        for j, pic in enumerate(pics):
            ax = axes[i, j]
            ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(titles[j])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out, dpi=80)


__all__ = [
    "foreground_probability",
    "overlay",
    "save_comparison",
    "score_images",
    "segment",
]
