"""The measures of a trained flow on its test split: exact NLL (points), the dequantized bound
(RealNVP on images) or the exact code length (IDF), all per dimension, and the inverse's error."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from difusion.config import Config
from difusion.files import write_text
from difusion.nflows.dequantization import (
    dequantize,
    dequantized_bits_per_dim,
    levels_to_images,
    quantize,
    to_levels,
)
from difusion.nflows.models import is_discrete


def test_data(cfg: Config, n: int | None = None) -> torch.Tensor:
    """The first ``n`` examples of the test split (all of them for None)."""
    from difusion.build import build_dataset

    x = build_dataset(cfg, split="test").data.float()
    return x[:n] if n else x


@torch.no_grad()
def measure(model, cfg: Config, x: torch.Tensor) -> dict:
    """Test NLL and the inverse's error of ``model`` (eval mode, CPU) on the test data ``x``."""
    n, shape = cfg.nflow, tuple(x.shape[1:])
    dim = math.prod(shape)
    out: dict = {"kind": n.kind, "data": cfg.data.name, "test_n": len(x), "dim": dim}
    if not is_discrete(shape):
        z, _ = model(x)
        nll = -model.log_prob(x)
        out["test_nll_nats"] = float(nll.mean())
        out["test_nll_nats_per_dim"] = float(nll.mean()) / dim
        out["inverse_max_error"] = float((model.inverse(z) - x).abs().max())
        return out
    k = to_levels(x, n.levels)
    out["levels"] = n.levels
    out["uniform_bits_per_dim"] = math.log2(n.levels)
    if n.kind == "idf":
        z = model(k)
        out["test_bits_per_dim"] = float(-model.prior.log_prob(z).mean()) / (dim * math.log(2))
        out["what"] = "exact code length, -log2 P(x) / D"
        out["inverse_exact"] = bool((model.inverse(z) == k).all())
        return out
    generator = torch.Generator().manual_seed(0)
    log_px = torch.stack(
        [model.log_prob(dequantize(k, n.levels, generator)) for _ in range(n.dequant_samples)]
    ).mean(0)  # E_u[log p(x)] over dequant_samples draws of u per image
    out["test_bits_per_dim"] = float(dequantized_bits_per_dim(log_px, dim, n.levels).mean())
    out["what"] = f"dequantized bound, E_u[-log2 p(x)] / D + log2(L/2), {n.dequant_samples} u each"
    xd = dequantize(k, n.levels, generator)
    out["inverse_max_error"] = float((model.inverse(model(xd)[0]) - xd).abs().max())
    return out


@torch.no_grad()
def draw(model, cfg: Config, n: int, seed: int) -> tuple[torch.Tensor, dict]:
    """``n`` samples on the lab's scale (images on [-1, 1], quantized to the levels), the seconds
    it took, and for IDF the share of pixels drawn outside 0..L-1 (clamped in the images)."""
    start = time.perf_counter()
    s = model.sample(n, seed)
    info: dict = {}
    if is_discrete(tuple(s.shape[1:])):
        L = cfg.nflow.levels
        k = s if cfg.nflow.kind == "idf" else quantize(s, L)
        info["outside_levels"] = float(((k < 0) | (k > L - 1)).float().mean())
        s = levels_to_images(k, L)
    info["sampling_s"] = round(time.perf_counter() - start, 3)
    return s, info


def measure_lines(m: dict) -> list[str]:
    """The measures as report.md lines."""
    if "test_bits_per_dim" in m:
        lines = [
            f"- test bits/dim ({m['what']}): {m['test_bits_per_dim']:.3f} on {m['test_n']} test "
            f"images; the uniform model: {m['uniform_bits_per_dim']:.3f}"
        ]
    else:
        lines = [
            f"- test NLL: {m['test_nll_nats']:.4f} nats per point "
            f"({m['test_nll_nats_per_dim']:.4f} per dimension) on {m['test_n']} test points"
        ]
    if "inverse_exact" in m:
        lines.append(f"- inverse exact on every test image: {m['inverse_exact']}")
    if "inverse_max_error" in m:
        lines.append(f"- largest |f^-1(f(x)) - x| on the test data: {m['inverse_max_error']:.2e}")
    if "sampling_s" in m:
        lines.append(f"- {m['samples']} samples in {m['sampling_s']:.2f} s")
    return lines


def write_measures(m: dict, path: Path) -> Path:
    return write_text(path, json.dumps(m, indent=2) + "\n")
