"""Figures of docs/autoencoders.md, made by the package's own code from trained runs.

Uses the code-size-32 runs of `difusion experiment ae-code-size` (under RUNS/ae-code-size/) and
trains two more runs if they are missing (a denoising MLP AE, 1,000 steps, and a convolutional
VAE with a spatial 4x7x7 latent, 400 steps: the shape latent diffusion uses). From the
repository root:

    python docs/figures/make_autoencoder_figures.py [--runs runs]

Writes docs/figures/ae_*.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from difusion.autoencoders import load_autoencoder
from difusion.autoencoders.losses import corrupt
from difusion.autoencoders.measures import PCA
from difusion.autoencoders.pictures import (
    inpaint,
    interpolate,
    reconstruct,
    save_latent_map,
)
from difusion.autoencoders.scoring import test_images, train_images
from difusion.experiments.autoencoders import train_or_reuse
from difusion.viz import save_grid

OUT = Path(__file__).resolve().parent
MLP = ["autoencoder.network=mlp", "train.steps=1000", "train.minutes=null", "autoencoder.iwae_k=0"]
CONV = [
    "train.steps=400",
    "train.minutes=null",
    "autoencoder.iwae_k=0",
]  # the spatial latent needs the conv network


def pca_figure() -> None:
    """ae_pca.png: test images and their PCA reconstructions with 2, 16, 32 and 64 components."""
    from difusion.config import load_config

    cfg = load_config("ae-fmnist")
    x, _ = test_images(cfg, 10)
    pca = PCA.fit(train_images(cfg)[:20000], 64)
    rows = [x]
    for k in (2, 16, 32, 64):
        rows.append(PCA(pca.mean, pca.components[:k]).reconstruct(x).clamp(-1, 1))
    save_grid(torch.cat(rows), OUT / "ae_pca.png", nrow=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--pca-only", action="store_true", help="only ae_pca.png (no runs needed)")
    args = parser.parse_args()
    pca_figure()
    if args.pca_only:
        return
    base = args.runs / "ae-code-size"
    runs = {label: base / f"{label}-32" for label in ("ae", "vae", "vq-vae")}
    extra = {
        "dae": ("ae-fmnist", [*MLP, "autoencoder.kind=dae", "autoencoder.noise_std=0.5"]),
        "vae-spatial": ("vae-fmnist", [*CONV, "autoencoder.spatial=true"]),
    }
    facts = {}
    for label, (preset, overrides) in extra.items():
        runs[label] = args.runs / "ae-figures" / label
        facts[label] = train_or_reuse(preset, overrides, runs[label], progress=True)
    models = {label: load_autoencoder(path) for label, path in runs.items()}
    cfg = models["ae"].config
    x, labels = test_images(cfg, 1000)
    pca = PCA.fit(train_images(cfg)[:20000], 32)

    # Reconstructions at code size 32: input, PCA, AE, VAE (posterior mean), VQ-VAE, spatial VAE.
    rows = [x[:10], pca.reconstruct(x[:10]).clamp(-1, 1)]
    rows += [reconstruct(models[k], x[:10]) for k in ("ae", "vae", "vq-vae", "vae-spatial")]
    save_grid(torch.cat(rows), OUT / "ae_reconstructions.png", nrow=10)

    # Latent maps: the AE's and the VAE's codes projected on their top-2 principal directions.
    for k in ("ae", "vae"):
        save_latent_map(models[k], x, labels, OUT / f"ae_latent_{k}.png", f"{k.upper()}, 32-D code")

    # Interpolation between the same two test images: AE, VAE, VQ-VAE.
    rows = [interpolate(models[k], x[0], x[3], 10) for k in ("ae", "vae", "vq-vae")]
    save_grid(torch.cat(rows), OUT / "ae_interpolation.png", nrow=10)

    # Prior samples: VAE N(0, I), spatial VAE N(0, I), VQ-VAE uniform codes (same seed).
    rows = []
    for k in ("vae", "vae-spatial", "vq-vae"):
        g = torch.Generator().manual_seed(0)
        rows.append(models[k].decode(models[k].sample_prior(10, g)).clamp(-1, 1))
    save_grid(torch.cat(rows), OUT / "ae_samples.png", nrow=10)

    # Denoising (noise std 0.5) and inpainting (bottom half unknown): AE against DAE.
    g = torch.Generator().manual_seed(0)
    noisy = corrupt(x[:8], 0.5, 0.0, g)
    mask = torch.ones_like(x[:8])
    mask[..., 14:, :] = 0
    shown = torch.where(mask > 0, x[:8], torch.full_like(x[:8], -1.0))
    rows = [x[:8], noisy.clamp(-1, 1), reconstruct(models["ae"], noisy)]
    rows += [reconstruct(models["dae"], noisy), shown]
    rows += [inpaint(models["ae"], x[:8], mask), inpaint(models["dae"], x[:8], mask)]
    save_grid(torch.cat(rows), OUT / "ae_denoise_inpaint.png", nrow=8)
    (OUT / "ae_figure_runs.json").write_text(
        json.dumps(
            {
                k: {"mse": m["mse"], **({"fid": m.get("fid_domain_prior")})}
                for k, m in facts.items()
            },
            indent=2,
        )
        + "\n"
    )
    print("written: docs/figures/ae_*.png")


if __name__ == "__main__":
    main()
