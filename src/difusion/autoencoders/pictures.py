"""The pictures of an autoencoder run: reconstructions, the latent map, interpolation, prior samples,
denoising and inpainting. Each takes a trained :class:`Autoencoder` and test images in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from difusion.autoencoders.losses import corrupt
from difusion.autoencoders.measures import PCA
from difusion.viz import save_figure, save_grid


@torch.no_grad()
def reconstruct(model, x: Tensor, batch: int = 500) -> Tensor:
    """decode(encode(x)), batched, clamped to [-1, 1]."""
    parts = [model.decode(model.encode(x[s : s + batch])) for s in range(0, len(x), batch)]
    return torch.cat(parts).clamp(-1, 1)


def save_reconstructions(model, x: Tensor, out: Path, n: int = 16) -> Path:
    """Rows of 8: inputs, then their reconstructions, twice."""
    x = x[:n]
    r = reconstruct(model, x)
    rows = [x[:8], r[:8], x[8:16], r[8:16]]
    return save_grid(torch.cat(rows), out, nrow=8)


@torch.no_grad()
def save_latent_map(model, x: Tensor, labels: Tensor | None, out: Path, title: str = "") -> Path:
    """Test images' codes in 2-D coloured by class: the code itself when it has 2 dimensions,
    else its projection on the codes' top two principal directions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = torch.cat([model.encode(x[s : s + 500]) for s in range(0, len(x), 500)]).flatten(1)
    if z.shape[1] == 2:
        xy, how = z, "the 2-D code"
    else:
        xy, how = PCA.fit(z, 2).encode(z), "codes projected on their top-2 principal directions"
    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=110)
    c = labels.numpy() if labels is not None else None
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=c, cmap="tab10", s=4, alpha=0.7, linewidths=0)
    if c is not None:
        fig.colorbar(sc, ax=ax, ticks=range(10), label="class")
    ax.set_title(f"{title}\n{how}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)


@torch.no_grad()
def interpolate(model, a: Tensor, b: Tensor, steps: int = 10) -> Tensor:
    """decode((1 - t) encode(a) + t encode(b)) for t on [0, 1] (a linear path in latent space;
    for a VQ-VAE the mixed code is re-quantized before decoding)."""
    za, zb = model.encode(a[None]), model.encode(b[None])
    ts = torch.linspace(0, 1, steps).view(-1, *[1] * (za.dim() - 1))
    z = (1 - ts) * za + ts * zb
    if model.quantizer is not None:
        z = model.quantizer(z)[0]
    return model.decode(z).clamp(-1, 1)


def save_interpolation(model, x: Tensor, out: Path, pairs: int = 4, steps: int = 10) -> Path:
    """One row per pair of test images: image a, the path, image b."""
    rows = [interpolate(model, x[2 * i], x[2 * i + 1], steps) for i in range(pairs)]
    return save_grid(torch.cat(rows), out, nrow=steps)


def save_prior_samples(model, out: Path, n: int = 64, seed: int = 0) -> tuple[Path, Tensor]:
    """decode(z), z from the prior (VQ-VAE: uniform codes). Returns the grid and the images."""
    g = torch.Generator().manual_seed(seed)
    images = model.decode(model.sample_prior(n, g)).clamp(-1, 1)
    return save_grid(images, out, nrow=8), images


@torch.no_grad()
def inpaint(model, x: Tensor, mask: Tensor, iterations: int = 20) -> Tensor:
    """Fill the unknown pixels (mask 0) by iterating x <- mask * x + (1 - mask) * decode(encode(x)),
    starting from black: the autoencoder's projection onto what it can represent."""
    y = torch.where(mask > 0, x, torch.full_like(x, -1.0))
    for _ in range(iterations):
        y = mask * x + (1 - mask) * reconstruct(model, y)
    return y


def save_denoising(model, x: Tensor, out: Path, noise_std: float = 0.5, seed: int = 0) -> Path:
    """Rows: clean, corrupted by Gaussian noise of std ``noise_std``, reconstruction of it."""
    g = torch.Generator().manual_seed(seed)
    noisy = corrupt(x[:8], noise_std, 0.0, g)
    return save_grid(torch.cat([x[:8], noisy.clamp(-1, 1), reconstruct(model, noisy)]), out, 8)


def save_inpainting(model, x: Tensor, out: Path) -> Path:
    """Rows: clean, bottom half unknown (shown black), the filled-in image."""
    mask = torch.ones_like(x[:8])
    mask[..., x.shape[-2] // 2 :, :] = 0
    shown = torch.where(mask > 0, x[:8], torch.full_like(x[:8], -1.0))
    return save_grid(torch.cat([x[:8], shown, inpaint(model, x[:8], mask)]), out, 8)
