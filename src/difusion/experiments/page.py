"""Writing an experiment's results page: RESULTS/NAME/README.md (Markdown tables, plots) and
results.json (the raw rows)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from difusion.experiments.spec import Experiment


def cpu_name() -> str:
    """The CPU's model name (Linux), for the page: timings depend on it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    """Where an experiment ran, for its page: the GPU's name, else the CPU's cores and model."""
    import os

    import torch

    if torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name()} GPU"
    return f"{os.cpu_count()} CPU cores, {cpu_name()}"


@contextmanager
def figure(path: Path, **subplots):
    """The axes of ``plt.subplots(**subplots)`` (Agg backend); on leaving the block the figure is
    laid out tight, saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield axes
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)


def write_page(out_dir: Path, lines: list[str], results=None) -> Path:
    """``lines`` as out_dir/README.md and, when given, ``results`` as out_dir/results.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if results is not None:
        (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    page = out_dir / "README.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def write_results(exp: Experiment, rows: list[dict], out_dir: Path, done: bool = True) -> Path:
    """A Markdown table (one row per run), the raw rows as JSON, and a plot of each metric over x.

    With groups, also a pivot table per headline metric (a line per group, x across) and a plot
    with a line per group. ``done`` False marks the page as in progress (rows so far of all)."""
    prefixes = ("fid", "kid", "precision", "recall", "class_acc", "bits_per_dim", "bpd_se")
    keys = [k for k in rows[0] if k.startswith(prefixes) and not k.endswith("_std")]
    lines = [f"# {exp.title}", "", exp.description, ""]
    lines += [f"Reproduce: `{exp.command}` (ran on {machine()})", ""]
    if not done:
        lines += [f"**In progress: {len(rows)} of {len(exp.runs)} rows so far.**", ""]
    grouped = any(r.get("group") for r in rows) and all(r.get("x") is not None for r in rows)
    if grouped:
        lines += _pivot_tables(exp, rows, [k for k in keys if k.startswith(("fid", "class_acc"))])
        lines += ["All rows:", ""]
    has_x = any(r["x"] is not None for r in rows)
    header = ["run", *([exp.x_label or "x"] if has_x else []), "sampler", *keys]
    header += ["sampling s", "training"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        vals = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        cells = [r["label"], *([str(r["x"])] if has_x else []), str(r.get("sampler", "")), *vals]
        cells += [str(r.get("sampling_s", "")), r["train_report"]]
        lines.append("| " + " | ".join(cells) + " |")
    setups = {k: v for r in rows for k, v in r.items() if k.startswith("setup_")}
    lines += ["", "Measured with:"]
    for key, s in setups.items():
        lines.append(
            f"- {key[6:]}: {s['features']}, {s['n_samples']} samples against "
            f"{s['n_reference']} images of {s['reference']}"
        )
    if all(r["x"] is not None for r in rows) and keys:
        _plot_metrics(exp, rows, keys, grouped, out_dir / "metrics.png")
        lines += ["", "![metrics against " + exp.x_label + "](metrics.png)"]
    if exp.notes:
        lines += ["", exp.notes]
    return write_page(out_dir, lines, rows)


def _plot_metrics(exp: Experiment, rows: list[dict], keys: list[str], grouped: bool, out: Path):
    """One panel per metric against x, a line per group (log x when grouped)."""
    cols = min(4, len(keys))
    nrows = -(-len(keys) // cols)
    size = (3.2 * cols, 2.8 * nrows)
    with figure(out, nrows=nrows, ncols=cols, figsize=size, dpi=110, squeeze=False) as axes:
        for ax in axes.flat[len(keys) :]:
            ax.axis("off")
        for ax, k in zip(axes.flat, keys, strict=False):
            for group in dict.fromkeys(r.get("group") for r in rows):
                sel = [r for r in rows if r.get("group") == group]
                ys = [r.get(k, float("nan")) for r in sel]
                ax.plot([r["x"] for r in sel], ys, "o-", label=group)
            if grouped:
                ax.set_xscale("log")
            ax.set_xlabel(exp.x_label)
            ax.set_title(k)
            ax.grid(alpha=0.3)
        if grouped:
            axes[0][0].legend(fontsize=7)


def _pivot_tables(exp: Experiment, rows: list[dict], keys: list[str]) -> list[str]:
    groups = list(dict.fromkeys(r["group"] for r in rows))
    xs = sorted({r["x"] for r in rows})
    out = []
    for k in keys:
        out += [f"**{k}** ({exp.x_label} across):", ""]
        out += ["| | " + " | ".join(f"{x:g}" for x in xs) + " |", "|---|" + "---|" * len(xs)]
        for g in groups:
            cell = {r["x"]: r.get(k) for r in rows if r["group"] == g}
            vals = [f"{cell[x]:.2f}" if isinstance(cell.get(x), float) else "" for x in xs]
            out.append(f"| {g} | " + " | ".join(vals) + " |")
        out.append("")
    return out
