"""Negative log-likelihood of a trained run: the variational bound in bits/dim on a test split.

`difusion eval RUN --nll` evaluates all T terms of eq. 5 for each of N test images (T network calls
per batch), and reports the mean with its standard error over images, as improved DDPM reports
NLL. Images are discrete (256 levels, or the digits' 17), so L_0 is the discretized decoder on the
data's own bins and the result is a bound on -log2 P(x_0) / D for the quantised data (no
dequantisation needed).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from difusion.diffusion.likelihood import vlb_bits_per_dim
from difusion.errors import DifusionError
from difusion.files import write_text


def run_nll(
    run,
    *,
    n: int = 200,
    split: str = "test",
    batch_size: int = 200,
    variance: str | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """L_vlb in bits/dim of ``run`` (a :class:`difusion.runs.TrainedRun`) on ``n`` images of ``split``.

    ``variance`` is the reverse process's: the run's own by default (``learned`` for a model trained
    with learned variances, else ``diffusion.variance``); ``beta`` or ``beta_tilde`` to compare.
    """
    from difusion.build import build_dataset
    from difusion.data import data_levels
    from difusion.diffusion.likelihood import check_on_grid
    from difusion.precision import autocast_dtype
    from difusion.sampling import ModelDenoiser

    cfg = run.config
    if len(run.shape) != 3:
        raise DifusionError("--nll scores images; this run is on 2-D points")
    if n < 1:
        raise DifusionError(f"the NLL needs at least 1 image (--nll-images), got {n}")
    variance = variance or ("learned" if cfg.diffusion.learn_sigma else cfg.diffusion.variance)
    if variance == "learned" and not cfg.diffusion.learn_sigma:
        raise DifusionError("this run has a fixed variance; use --variance beta or beta_tilde")
    data = build_dataset(cfg, split=split)
    n = min(n, len(data))
    x = data.data[:n].to(device)
    levels = data_levels(cfg.data.name)
    check_on_grid(x, levels, f"{cfg.data.name}:{split}")
    y = None
    if cfg.model.class_conditional and data.labels is not None:
        y = data.labels[:n].to(device)
    amp = autocast_dtype(cfg.train.precision, torch.device(device))
    den = ModelDenoiser(
        run.network,
        run.path,
        cfg.diffusion.prediction,
        clip_x0=cfg.diffusion.clip_x0,
        autocast_dtype=amp,
        learn_sigma=cfg.diffusion.learn_sigma,
    )
    g = torch.Generator().manual_seed(seed)
    totals, terms_sum = [], torch.zeros(run.path.T + 1, dtype=torch.float64)
    bar = tqdm(total=run.path.T * math.ceil(n / batch_size), desc="NLL (t)", disable=not progress)
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        xb = x[i : i + batch_size]
        yb = y[i : i + batch_size] if y is not None else None
        total, terms = vlb_bits_per_dim(
            den,
            run.path,
            xb,
            variance=variance,
            levels=levels,
            y=yb,
            generator=g,
            callback=lambda t: bar.update(1),
        )
        totals.append(total)
        terms_sum += terms * len(xb)
    bar.close()
    total = torch.cat(totals)
    return {
        "bits_per_dim": total.mean().item(),
        "standard_error": (total.std() / math.sqrt(len(total))).item() if n > 1 else float("nan"),
        "n_images": n,
        "split": f"{cfg.data.name}:{split}",
        "levels": levels,
        "T": run.path.T,
        "variance": variance,
        "run_step": run.step,
        "seconds": round(time.perf_counter() - start, 1),
        "prior_term_bits": (terms_sum[run.path.T] / n).item(),
        "decoder_term_bits": (terms_sum[0] / n).item(),
        "terms_bits": (terms_sum / n).tolist(),
    }


def write_nll(result: dict, out: Path) -> Path:
    """The result as JSON, written atomically (never half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, json.dumps(result, indent=2) + "\n")


def nll_line(result: dict) -> str:
    return (
        f"NLL bound: {result['bits_per_dim']:.3f} ± {result['standard_error']:.3f} bits/dim "
        f"({result['n_images']} images of {result['split']}, all T = {result['T']} terms, "
        f"variance {result['variance']}, {result['seconds']:.0f} s)"
    )
