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


def nflow_row(run_dir: Path, n_samples: int) -> dict:
    """Test bits/dim of a normalizing-flow run (RealNVP: dequantized bound; IDF: exact code
    length) and the seconds its sampler takes for ``n_samples`` images, with their grid."""
    from difusion.nflows.run import eval_nflow_run, sample_nflow_run

    m, _ = eval_nflow_run(run_dir)
    started = time.perf_counter()
    pictures = sample_nflow_run(run_dir, n_samples, seed=0)
    return {
        "bits_per_dim": m["test_bits_per_dim"],
        "what": m["what"],
        "test_n": m["test_n"],
        "sampling_s": round(time.perf_counter() - started, 2),
        "grid": pictures.get("samples"),
    }


@dataclass
class Row:
    label: str
    family: str  # Tomczak's chapter: flows (3), latent-variable (4), energy-based (6), ...
    preset: str
    evaluate: Callable[[Path, int], dict]
    bound: str  # "exact" or "upper bound" on -log2 P(x) / D


ROWS = [
    Row("RealNVP", "flow (ch. 3)", "realnvp-digits", nflow_row, "upper bound"),
    Row("IDF", "flow (ch. 3)", "idf-digits", nflow_row, "exact"),
]
SETTINGS = {"small": dict(steps=200, n=16), "full": dict(steps=None, n=64)}


def families(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Train every row's preset (``small``: 200 steps each, a smoke test), score it on the test
    split and write results_root/families/ (README.md, results.json, the sample grids)."""
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
    for row in ROWS:
        overrides = [f"train.steps={s['steps']}"] if s["steps"] else []
        run_dir = Path(runs_root) / "families" / row.label
        seconds = train_timed(row.preset, overrides, run_dir, progress)
        result = row.evaluate(run_dir, s["n"])
        grid = result.pop("grid", None)
        if grid is not None and Path(grid).exists():
            shutil.copy(grid, out / f"samples-{row.label}.png")
            result["grid"] = f"samples-{row.label}.png"
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
        "the model's true value, an exact number may not.",
        "",
        "| model | family | bits/dim | kind | training min | sampling s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = f"{r['train_minutes']:.2f}" if "train_minutes" in r else ""
        sample = f"{r['sampling_s']:.2f}" if "sampling_s" in r else ""
        lines.append(
            f"| {r['label']} | {r['family']} | {r['bits_per_dim']:.3f} | {r['bound']} "
            f"| {train} | {sample} |"
        )
    lines += ["", *[f"![{r['label']}]({r['grid']})" for r in rows if r.get("grid")]]
    return write_page(out, lines, rows)


CUSTOM = {"families": families}
