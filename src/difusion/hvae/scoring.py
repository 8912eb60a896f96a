"""The measures of a trained hierarchical or diffusion-based VAE on its test split: the ELBO and
the IWAE bound in bits/dim on the grey levels, each term of the ELBO, and the sample grids."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from difusion.config import Config
from difusion.files import atomic_path, write_text
from difusion.hvae.bounds import bits_per_dim, elbo_and_iwae, log_weights
from difusion.hvae.distributions import levels_to_unit, to_levels
from difusion.viz import save_grid


def test_data(cfg: Config, n: int | None = None) -> torch.Tensor:
    """The first ``n`` images of the test split (all of them for None)."""
    from difusion.build import build_dataset

    x = build_dataset(cfg, split="test").data.float()
    return x[:n] if n else x


@torch.no_grad()
def measure(model, cfg: Config, x: torch.Tensor, seed: int = 0) -> dict:
    """-ELBO and -IWAE in bits/dim on the test images ``x`` (eval mode, CPU), with ``hvae.iwae_k``
    draws of q per image: the ELBO averages the terms of ``elbo_terms`` over the draws, the IWAE
    bound log-mean-exps the draws' log-weights (Burda et al. 2016)."""
    h = cfg.hvae
    k = to_levels(x, h.levels)
    dim = k.shape[1]
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    sums: dict[str, torch.Tensor] = {}
    for _ in range(h.iwae_k):
        for name, v in model.elbo_terms(k, g).items():
            sums[name] = sums.get(name, 0.0) + v / h.iwae_k
    terms = {name: float(v.mean()) / (dim * math.log(2)) for name, v in sums.items()}
    elbo_w, iwae = elbo_and_iwae(log_weights(model, k, h.iwae_k, g))
    out: dict = {
        "kind": h.kind,
        "data": cfg.data.name,
        "test_n": len(k),
        "dim": dim,
        "levels": h.levels,
        "uniform_bits_per_dim": math.log2(h.levels),
        "test_bits_per_dim": sum(terms.values()),
        "what": f"-ELBO / (D log 2), categorical p(x | z1) over {h.levels} levels, "
        f"{h.iwae_k} draws of q per image",
        "terms_bits_per_dim": terms,
        "test_bits_per_dim_log_weights": float(bits_per_dim(elbo_w, dim).mean()),
        "test_iwae_bits_per_dim": float(bits_per_dim(iwae, dim).mean()),
        "iwae_k": h.iwae_k,
    }
    if h.kind == "hierarchical":
        out.update(inference=h.inference, prior=h.prior)
    else:
        out.update(T=h.T, beta=h.beta, alpha_bar_T=(1 - h.beta) ** h.T)
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


@torch.no_grad()
def draw_images(model, cfg: Config, n: int, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """``n`` samples as images on [-1, 1]: ``samples`` (x drawn from p(x | z1)) and ``means`` (the
    expected level E[x | z1] of the same z1), and the seconds it took."""
    start = time.perf_counter()
    k, mean = model.sample(n, seed)
    shape, levels = model.shape, cfg.hvae.levels
    images = {
        "samples": levels_to_unit(k, levels).reshape(n, *shape),
        "means": levels_to_unit(mean, levels).reshape(n, *shape),
    }
    return images, {"sampling_s": round(time.perf_counter() - start, 3)}


def write_pictures(images: dict[str, torch.Tensor], folder: Path, seed: int) -> dict[str, Path]:
    """samples.png, samples_mean.png and samples.npz (``images``, ``means``, ``seeds``: sample i
    used seed + i)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "samples": save_grid(images["samples"], folder / "samples.png"),
        "samples_mean": save_grid(images["means"], folder / "samples_mean.png"),
    }
    n = len(images["samples"])
    arrays = {
        "images": images["samples"].numpy().astype(np.float32),
        "means": images["means"].numpy().astype(np.float32),
        "seeds": np.arange(seed, seed + n),
    }
    npz = folder / "samples.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:  # a file object: no .npz appended
        np.savez(f, **arrays)
    out["samples_npz"] = npz
    return out


def measure_lines(m: dict) -> list[str]:
    """The measures as report.md lines."""
    terms = ", ".join(f"{k} {v:.3f}" for k, v in m["terms_bits_per_dim"].items())
    lines = [
        f"- test bits/dim (-ELBO, an upper bound): {m['test_bits_per_dim']:.3f} on {m['test_n']} "
        f"test images; the uniform model: {m['uniform_bits_per_dim']:.3f}",
        f"- its terms in bits/dim: {terms}",
        f"- IWAE bound, k = {m['iwae_k']}: {m['test_iwae_bits_per_dim']:.3f} bits/dim",
    ]
    if "sampling_s" in m:
        lines.append(f"- {m['samples']} samples in {m['sampling_s']:.2f} s")
    return lines


def write_measures(m: dict, path: Path) -> Path:
    """The measures as JSON at ``path``, written atomically."""
    return write_text(path, json.dumps(m, indent=2) + "\n")
