"""Samples of a trained energy or score network by Langevin dynamics, and their measures against
the test split: the sliced Wasserstein distance, next to the data's own floor (train vs test
points of the same number) and the starting noise's distance."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from difusion.config import Config
from difusion.ebm.energy import energy_score
from difusion.ebm.langevin import annealed_langevin, sgld
from difusion.ebm.models import sigmas_of
from difusion.ebm.score import level_score, tweedie_denoise
from difusion.files import atomic_path, write_text
from difusion.metrics.two_d import sliced_wasserstein


def test_data(cfg: Config) -> torch.Tensor:
    """The test split (measure() draws its random rows: a split may be ordered)."""
    from difusion.build import build_dataset

    return build_dataset(cfg, split="test").data.float()


def train_data(cfg: Config) -> torch.Tensor:
    from difusion.build import build_dataset

    return build_dataset(cfg).data.float()


def start_noise(cfg: Config, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Where the chains start: cd, uniform on [-r, r]^D (the buffer's noise); dsm, N(0, sigma_1^2 I),
    the widest noisy density."""
    e = cfg.ebm
    if e.kind == "cd":
        return (torch.rand(n, dim, generator=generator) * 2 - 1) * e.noise_range
    return torch.randn(n, dim, generator=generator) * e.sigma_max


def draw(model, cfg: Config, n: int, seed: int) -> tuple[torch.Tensor, dict]:
    """``n`` samples in the data's shape, one generator seeded with ``seed`` for the whole batch:
    cd, ``ebm.sample_steps`` SGLD steps of size ``ebm.step_size`` on -grad E from fresh noise; dsm,
    annealed Langevin with ``ebm.sample_steps`` steps per level and ``ebm.sample_eps``, then one
    Tweedie step to E[x0 | x] at sigma_L."""
    e, shape = cfg.ebm, model.shape
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    x = start_noise(cfg, n, int(np.prod(shape)), g)
    if e.kind == "cd":
        x = sgld(energy_score(model), x, e.step_size, e.sample_steps, g)
    else:
        sigmas = sigmas_of(cfg)
        score = level_score(model, sigmas)
        x = annealed_langevin(score, x, sigmas, e.sample_eps, e.sample_steps, g)
        x = tweedie_denoise(score(x, len(sigmas) - 1), x, float(sigmas[-1]))
    info = {"sampling_s": round(time.perf_counter() - start, 3)}
    return x.detach().reshape(n, *shape), info


def measure(samples: torch.Tensor, cfg: Config, test: torch.Tensor, seed: int = 0) -> dict:
    """Sliced Wasserstein-1 (256 directions) of n samples to n random test points, with two
    yardsticks of the same size n: train vs test points (the floor a perfect sampler reaches, up to noise) and
    the chains' starting noise vs test (where sampling began)."""
    n = min(len(samples), len(test))
    g = torch.Generator().manual_seed(seed + 1)
    # random rows, not the first n: a split may be ordered (moons: the outer half moon first)
    flat = test.flatten(1)[torch.randperm(len(test), generator=g)[:n]]
    train = train_data(cfg).flatten(1)
    train = train[torch.randperm(len(train), generator=g)[:n]]
    noise = start_noise(cfg, n, flat.shape[1], torch.Generator().manual_seed(seed + 2))
    e = cfg.ebm
    out: dict = {
        "kind": e.kind,
        "data": cfg.data.name if cfg.data.name != "toy2d" else f"toy2d {cfg.data.distribution}",
        "n": n,
        "dim": flat.shape[1],
        "sliced_w1_samples": sliced_wasserstein(samples.flatten(1)[:n], flat),
        "sliced_w1_data_floor": sliced_wasserstein(train, flat),
        "sliced_w1_start_noise": sliced_wasserstein(noise, flat),
        "what": "sliced W1 to the test points, 256 random directions, n points each",
    }
    if e.kind == "cd":
        out.update(sampler="SGLD", step_size=e.step_size, steps=e.sample_steps)
    else:
        out.update(sampler="annealed Langevin", levels=e.levels, sigma_max=e.sigma_max,
                   sigma_min=e.sigma_min, steps_per_level=e.sample_steps, eps=e.sample_eps)  # fmt: skip
    return out


def write_pictures(
    samples: torch.Tensor, reference: torch.Tensor, folder: Path, seed: int
) -> dict[str, Path]:
    """samples.png (images, clamped to [-1, 1]) or samples_scatter.png (points over ``reference``),
    and samples.npz (``samples``, ``seed``: the batch's one generator seed)."""
    from difusion.viz import plot_points, save_grid

    folder.mkdir(parents=True, exist_ok=True)
    if samples.dim() == 4:
        out = {"samples": save_grid(samples.clamp(-1, 1), folder / "samples.png")}
    else:
        out = {"samples_scatter": plot_points(samples, reference, folder / "samples_scatter.png")}
    npz = folder / "samples.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:  # a file object: no .npz appended
        np.savez(f, samples=samples.numpy().astype(np.float32), seed=np.array(seed))
    out["samples_npz"] = npz
    return out


def measure_lines(m: dict) -> list[str]:
    """The measures as report.md lines."""
    lines = [
        f"- sliced W1 to {m['n']} test points: samples {m['sliced_w1_samples']:.4f}; train points "
        f"(the floor) {m['sliced_w1_data_floor']:.4f}; the starting noise "
        f"{m['sliced_w1_start_noise']:.4f}",
    ]
    if "sampling_s" in m:
        lines.append(f"- {m['samples']} samples by {m['sampler']} in {m['sampling_s']:.2f} s")
    return lines


def write_measures(m: dict, path: Path) -> Path:
    """The measures as JSON at ``path``, written atomically."""
    return write_text(path, json.dumps(m, indent=2) + "\n")
