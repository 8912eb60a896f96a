"""Tomczak ch. 1's comparison as one table: every family with a likelihood, on one dataset, in one
unit: test negative log-likelihood of scikit-learn's 8x8 digits in bits per dimension on their 17
grey levels (the uniform model, log2 17 = 4.087, is the worst row), with the kind of number each
gives (exact, or an upper bound), its training and sampling time and a grid of its samples.

Each row is a preset trained by the one training loop and read back by its family's evaluator, so a
row is one entry of :data:`ROWS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from difusion.experiments.page import machine, write_page
from difusion.experiments.spec import for_budget
from difusion.experiments.training import train_timed

LEVELS = 17  # the digits' grey levels: 0..16


def _timed_samples(sample_run: Callable, run_dir: Path, n: int, *grids: str) -> dict:
    """The seconds ``sample_run`` takes for ``n`` samples (seed 0), and the first of its pictures
    named in ``grids``."""
    started = time.perf_counter()
    pictures = sample_run(run_dir, n, seed=0)
    seconds = round(time.perf_counter() - started, 2)
    return {
        "sampling_s": seconds,
        "grid": next((pictures[g] for g in grids if g in pictures), None),
    }


def nflow_row(run_dir: Path, b: dict) -> dict:
    """Test bits/dim of a normalizing-flow run (RealNVP: dequantized bound; IDF: exact code
    length) and the seconds its sampler takes for ``b["n"]`` images, with their grid."""
    from difusion.nflows.run import eval_nflow_run, sample_nflow_run

    m, _ = eval_nflow_run(run_dir)
    return {
        "bits_per_dim": m["test_bits_per_dim"],
        "what": m["what"],
        "test_n": m["test_n"],
        **_timed_samples(sample_nflow_run, run_dir, b["n"], "samples"),
    }


def hvae_row(run_dir: Path, b: dict) -> dict:
    """Test bits/dim of a latent-variable run: the IWAE bound (tighter than its -ELBO, which is
    kept beside it), both upper bounds on the code length, and its sampler's time and grid (the
    expected grey levels E[x | z1])."""
    from difusion.hvae.run import eval_hvae_run, sample_hvae_run

    m, _ = eval_hvae_run(run_dir)
    return {
        "bits_per_dim": m["test_iwae_bits_per_dim"],
        "elbo_bits_per_dim": m["test_bits_per_dim"],
        "what": "IWAE bound",
        "test_n": m["test_n"],
        **_timed_samples(sample_hvae_run, run_dir, b["n"], "samples_mean", "samples"),
    }


def _diffusion_samples(run_dir: Path, n_samples: int, sampler: str, steps: int) -> dict:
    """Sampling time and grid of a diffusion or flow run (``samples_for_eval``, cached)."""
    import numpy as np
    import torch

    from difusion.runs import samples_for_eval
    from difusion.viz import save_grid

    path, _ = samples_for_eval(run_dir, n=n_samples, sampler=sampler, steps=steps, progress=False)
    images = torch.from_numpy(np.load(path)["images"])
    seconds = float((path.parent / "sampling_seconds.txt").read_text())
    return {"sampling_s": round(seconds, 2), "grid": save_grid(images, path.parent / "grid.png")}


def ddpm_row(run_dir: Path, b: dict) -> dict:
    """The DDPM's variational bound (Ho et al. eq. 5, all T terms, the discretized decoder on the
    17 levels' bins) on ``b["test_n"]`` test images, and ancestral steps for its samples (all T
    of them, or ``b["ddpm_steps"]``)."""
    from difusion.metrics.nll import run_nll
    from difusion.runs import load_run

    r = run_nll(load_run(run_dir), n=b["test_n"], batch_size=300, progress=False)
    return {
        "bits_per_dim": r["bits_per_dim"],
        "standard_error": r["standard_error"],
        "what": f"variational bound, {r['T']} terms",
        "test_n": r["n_images"],
        **_diffusion_samples(run_dir, b["n"], "ddpm", b["ddpm_steps"] or r["T"]),
    }


def flow_row(run_dir: Path, b: dict) -> dict:
    """The flow-matching model's likelihood by its ODE (RK4, Hutchinson's divergence, uniform
    dequantization on the 17 levels' bins) with ``b["ode_steps"]`` = (S, 2S) RK4 steps: a coarse
    solver reports too good a likelihood, so the number is trusted once doubling the steps stops
    moving it. 20 Euler steps for its samples."""
    from difusion.metrics.nll_ode import run_ode_nll
    from difusion.runs import load_run

    run = load_run(run_dir)
    coarse, fine = (
        run_ode_nll(run, n=b["test_n"], steps=steps, batch_size=300, progress=False)
        for steps in b["ode_steps"]
    )
    r = fine
    return {
        "bits_per_dim": r["bits_per_dim"],
        "standard_error": r["standard_error"],
        "ode_steps": list(b["ode_steps"]),
        "bits_per_dim_half_steps": coarse["bits_per_dim"],
        "what": r["method"],
        "test_n": r["n_images"],
        **_diffusion_samples(run_dir, b["n"], "fm-euler", 20),
    }


@dataclass
class Row:
    label: str
    family: str  # Tomczak's chapter: flows (3), latent-variable (4), energy-based (6), ...
    preset: str
    evaluate: Callable[[Path, dict], dict]  # (run folder, the budget's settings) -> the row
    bound: str  # "exact" or "upper bound" on -log2 P(x) / D
    overrides: tuple[str, ...] = ()


ROWS = [
    Row("RealNVP", "flow (ch. 3)", "realnvp-digits", nflow_row, "upper bound"),
    Row("IDF", "flow (ch. 3)", "idf-digits", nflow_row, "exact"),
    Row("two-layer VAE", "latent-variable (ch. 4)", "hvae-digits", hvae_row, "upper bound"),
    Row("VampPrior VAE", "latent-variable (ch. 4)", "hvae-vamp-digits", hvae_row, "upper bound"),
    Row("diffusion-based VAE", "latent-variable (ch. 4)", "dhvae-digits", hvae_row, "upper bound"),
    Row("DDPM", "diffusion", "digits", ddpm_row, "upper bound", ("train.threads=1",)),
    Row(
        "flow matching",
        "diffusion (flow)",
        "digits",
        flow_row,
        "estimate",
        ("objective=flow", "flow.path=rectified", "train.threads=1"),
    ),
]
# small: a smoke test of the whole table (200 steps per run, the DDPM's and the flow's likelihoods
# on 32 test images with coarse solvers); full: the table of the results page
SETTINGS = {
    "small": dict(
        steps=200, n=16, test_n=32, ddpm_steps=20, ode_steps=(5, 10), extra=["sample.n=4"]
    ),
    "full": dict(steps=None, n=64, test_n=10_000, ddpm_steps=None, ode_steps=(50, 100), extra=[]),
}


def families(
    budget: str,
    runs_root: Path,
    results_root: Path,
    progress: bool = True,
    only: tuple[str, ...] | None = None,
) -> Path:
    """Train every row's preset (``small``: 200 steps each, a smoke test), score it on the test
    split and write results_root/families/ (README.md, results.json, the sample grids). ``only``
    keeps the rows with those labels (and the uniform model)."""
    import os
    import shutil

    s = for_budget(budget, SETTINGS)
    load = os.getloadavg()[0]
    out = Path(results_root) / "families"
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = [
        {
            "label": "uniform",
            "family": "baseline",
            "bits_per_dim": math.log2(LEVELS),
            "bound": "exact",
            "what": "P(x) = 17^-D",
        }
    ]
    for row in (r for r in ROWS if only is None or r.label in only):
        overrides = [*row.overrides, *s["extra"]]
        overrides += [f"train.steps={s['steps']}"] if s["steps"] else []
        run_dir = Path(runs_root) / "families" / row.label.replace(" ", "-")
        seconds = train_timed(row.preset, overrides, run_dir, progress)
        result = row.evaluate(run_dir, s)
        grid = result.pop("grid", None)
        if grid is not None and Path(grid).exists():
            name = f"samples-{row.label.replace(' ', '-')}.png"
            shutil.copy(grid, out / name)
            result["grid"] = name
        rows.append(
            {
                "label": row.label,
                "family": row.family,
                "preset": row.preset,
                "bound": row.bound,
                "train_minutes": round(seconds / 60, 2),
                **result,
            }
        )
    lines = [
        "# Every family's likelihood on the 8x8 digits (17 grey levels)",
        "",
        f"Reproduce: `difusion experiment families --budget {budget}` ({machine()}, load average "
        f"{load:.1f} at the start, one thread per run; one seed per row, so the spread was not "
        "measured).",
        "",
        "Test negative log-likelihood in bits per dimension on the 17-level data, all "
        f"{rows[1].get('test_n', '')} test images. Lower is better; an upper bound may sit above "
        "the model's true value, an exact number may not. RealNVP's bound is on uniformly "
        "dequantized data; the latent-variable models' (a categorical decoder over the 17 levels) "
        "is the IWAE bound with 128 draws, their -ELBO beside it.",
        "",
        "| model | family | bits/dim | kind | -ELBO | training min | sampling s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = f"{r['train_minutes']:.2f}" if "train_minutes" in r else ""
        sample = f"{r['sampling_s']:.2f}" if "sampling_s" in r else ""
        elbo = f"{r['elbo_bits_per_dim']:.3f}" if "elbo_bits_per_dim" in r else ""
        bits = f"{r['bits_per_dim']:.3f}"
        if r.get("standard_error") is not None:
            bits += f" ± {r['standard_error']:.3f}"
        lines.append(
            f"| {r['label']} | {r['family']} | {bits} | {r['bound']} "
            f"| {elbo} | {train} | {sample} |"
        )
    lines += ["", "± is the standard error over the test images, where the row has one."]
    for r in rows:
        if "bits_per_dim_half_steps" in r:
            half, full = r["ode_steps"]
            lines.append(
                f"{r['label']}'s ODE estimate with {half} RK4 steps: "
                f"{r['bits_per_dim_half_steps']:.3f}, against {r['bits_per_dim']:.3f} with {full} (a "
                "coarse solver reports too good a likelihood; the number is trusted once doubling "
                "the steps stops moving it)."
            )
    lines += ["", *[f"![{r['label']}]({r['grid']})" for r in rows if r.get("grid")]]
    return write_page(out, lines, rows)


CUSTOM = {"families": families}
