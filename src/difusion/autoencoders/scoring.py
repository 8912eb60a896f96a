"""The measures and pictures of a trained autoencoder on its test split, as written into the run
folder at the end of training and by `difusion eval RUN`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from difusion.autoencoders.measures import (
    PCA,
    binarize,
    codebook_usage,
    elbo,
    iwae_bound,
    mse_per_image,
    psnr,
    ssim,
)
from difusion.autoencoders.pictures import (
    reconstruct,
    save_denoising,
    save_inpainting,
    save_interpolation,
    save_latent_map,
    save_prior_samples,
    save_reconstructions,
)
from difusion.config import Config
from difusion.files import atomic_path, write_text


def test_images(cfg: Config, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` test images (binarized once, seed 0, for a Bernoulli decoder) and labels."""
    from difusion.build import build_dataset

    d = build_dataset(cfg, split="test")
    x = d.data[:n].float()
    if cfg.autoencoder.likelihood == "bernoulli":
        x = binarize(x, torch.Generator().manual_seed(0))
    return x, (d.labels[:n] if d.labels is not None else None)


def train_images(cfg: Config) -> torch.Tensor:
    """The training images the run saw (``train_subset`` of them), for the PCA baseline."""
    from difusion.build import build_dataset

    x = build_dataset(cfg).data
    n = cfg.autoencoder.train_subset
    return (x[:n] if n else x).float()


def pca_size(model) -> int:
    """The code size PCA gets for a fair comparison: the number of real numbers in the latent
    (for a VQ-VAE, the number of code positions: each carries one index)."""
    if model.quantizer is not None:
        return int(np.prod(model.latent_shape[1:]))
    return int(np.prod(model.latent_shape))


@torch.no_grad()
def measure(
    model,
    cfg: Config,
    x: torch.Tensor,
    *,
    iwae_k: int | None = None,
    fid_n: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Reconstruction MSE / PSNR / SSIM, the PCA baseline at equal code size, and per kind: ELBO and
    IWAE NLL (nats), codebook usage and perplexity, FID of prior samples (domain features)."""
    ac = cfg.autoencoder
    t0 = time.perf_counter()
    rec = reconstruct(model, x)
    mse = mse_per_image(rec, x)
    m: dict = {
        "n_test": len(x),
        "mse": float(mse.mean()),
        "mse_se": float(mse.std() / len(x) ** 0.5),
        "psnr_db": float(psnr(rec, x).mean()),
        "ssim": float(ssim(rec, x).mean()),
    }
    k = pca_size(model)
    pca = PCA.fit(train_images(cfg)[:20000], k)
    base = pca.reconstruct(x).clamp(-1, 1)
    m.update(pca_code_size=k, pca_mse=float(mse_per_image(base, x).mean()))
    m["pca_psnr_db"] = float(psnr(base, x).mean())
    g = torch.Generator().manual_seed(seed)
    if model.variational:
        m["elbo_nats"] = float(elbo(model, x, ac.sigma, g).mean())
        k_iw = ac.iwae_k if iwae_k is None else iwae_k
        if k_iw > 0:  # k decoder calls per image: on at most 500 images
            m["iwae_k"], m["iwae_n"] = k_iw, min(500, len(x))
            m["nll_iwae_nats"] = float(-iwae_bound(model, x[:500], k_iw, ac.sigma, g).mean())
        mu, logvar = model.posterior(x)
        kl_dims = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).mean(0)
        m["kl_nats"] = float(kl_dims.sum())
        m["active_units"] = int((mu.flatten(1).var(0) > 0.01).sum())  # Burda et al. 2016, eq. 20
        m["likelihood"] = f"{ac.likelihood}" + (
            f" (sigma {ac.sigma:g} on [-1, 1])" if ac.likelihood == "gaussian" else " (binarized)"
        )
    if model.quantizer is not None:
        idx = model.quantizer(model.encoder(x))[1]
        m.update(codebook_usage(idx, model.quantizer.num_codes))
        m["codebook_size"] = model.quantizer.num_codes
    n_fid = ac.fid_n if fid_n is None else fid_n
    if n_fid > 0 and (model.variational or model.quantizer is not None):
        m.update(prior_fid(model, cfg, n_fid, seed, progress))
    m["seconds"] = round(time.perf_counter() - t0, 1)
    return m


def prior_fid(model, cfg: Config, n: int, seed: int, progress: bool) -> dict:
    """FID of ``n`` prior samples against the test split, in the shipped domain classifier's
    features (difusion.evaluation); empty where the dataset has no shipped classifier."""
    from difusion.evaluation import evaluate
    from difusion.metrics.classifier import CLASSIFIER_DATASETS

    if cfg.data.name not in CLASSIFIER_DATASETS:
        return {}
    g = torch.Generator().manual_seed(seed)
    images = torch.cat(
        [model.decode(model.sample_prior(min(500, n - s), g)) for s in range(0, n, 500)]
    ).clamp(-1, 1)
    r = evaluate(
        images,
        None,
        reference=f"{cfg.data.name}:test",
        metrics=("fid",),
        features="domain",
        progress=progress,
    )
    return {"fid_domain_prior": r.metrics["fid_domain"], "fid_n": n}


def write_pictures(model, cfg: Config, x, labels, run_dir: Path, seed: int = 0) -> dict[str, Path]:
    """The run's pictures (see :mod:`difusion.autoencoders.pictures`); prior samples for VAEs and
    VQ-VAEs also go to samples.npz."""
    kind = cfg.autoencoder.kind
    out = {
        "reconstructions": save_reconstructions(model, x, run_dir / "reconstructions.png"),
        "latent_map": save_latent_map(
            model,
            x[:2000],
            None if labels is None else labels[:2000],
            run_dir / "latent_map.png",
            f"{cfg.name}: {kind}, latent {tuple(model.latent_shape)}",
        ),
        "interpolation": save_interpolation(model, x, run_dir / "interpolation.png"),
        "denoising": save_denoising(model, x, run_dir / "denoising.png"),
        "inpainting": save_inpainting(model, x, run_dir / "inpainting.png"),
    }
    if model.variational or model.quantizer is not None:
        out.update(write_samples(model, run_dir, cfg.sample.n, seed))
    return out


def write_samples(model, folder: Path, n: int, seed: int) -> dict[str, Path]:
    """samples.png and samples.npz (``images`` in [-1, 1], ``seeds``) of ``n`` prior samples."""
    folder.mkdir(parents=True, exist_ok=True)
    grid, images = save_prior_samples(model, folder / "samples.png", n, seed)
    npz = folder / "samples.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:  # a file object: no .npz appended
        np.savez(f, images=images.float().numpy(), seeds=np.arange(seed, seed + n))
    return {"samples": grid, "samples_npz": npz}


def measure_lines(m: dict) -> list[str]:
    """The measures as report.md lines."""
    lines = [
        f"- test reconstruction ({m['n_test']} images): MSE {m['mse']:.4f} ± {m['mse_se']:.4f}, "
        f"PSNR {m['psnr_db']:.2f} dB, SSIM {m['ssim']:.3f}",
        f"- PCA with {m['pca_code_size']} components: MSE {m['pca_mse']:.4f}, "
        f"PSNR {m['pca_psnr_db']:.2f} dB",
    ]
    if "elbo_nats" in m:
        lines.append(
            f"- ELBO {m['elbo_nats']:.1f} nats; KL {m['kl_nats']:.1f} nats; active units "
            f"{m['active_units']}; decoder {m['likelihood']}"
        )
    if "nll_iwae_nats" in m:
        lines.append(
            f"- NLL (IWAE, k = {m['iwae_k']}, {m['iwae_n']} images): {m['nll_iwae_nats']:.1f} nats"
        )
    if "perplexity" in m:
        lines.append(
            f"- codebook: {m['codes_used']:.0%} of {m['codebook_size']} codes used, "
            f"perplexity {m['perplexity']:.1f}"
        )
    if "fid_domain_prior" in m:
        lines.append(
            f"- FID of {m['fid_n']} prior samples (domain features): {m['fid_domain_prior']:.2f}"
        )
    return lines


def write_measures(m: dict, path: Path) -> Path:
    return write_text(path, json.dumps(m, indent=2) + "\n")
