"""Experiments: named recipes (a grid of runs, a budget, metrics) that train or reuse runs, resume
when interrupted, and write a Markdown table and plots into docs/results/NAME/."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from difusion.errors import DifusionError


@dataclass
class RunSpec:
    """One run of an experiment: a label, a preset and its overrides."""

    label: str
    preset: str
    overrides: list[str] = field(default_factory=list)
    x: float | None = None  # where this run sits on the experiment's x axis (e.g. minutes)


@dataclass
class EvalSpec:
    n: int = 2000  # samples per run
    steps: int | None = None  # sampling steps (None: all T)
    sampler: str = "ddpm"  # ddpm (ancestral) or ddim
    eta: float = 0.0  # DDIM's eta
    features: tuple[str, ...] = ("domain",)
    metrics: tuple[str, ...] = ("fid", "kid", "pr")
    n_reference: int | None = None  # reference images (None: the whole split)


@dataclass
class Experiment:
    name: str
    title: str
    description: str
    runs: list[RunSpec]
    evaluation: EvalSpec
    x_label: str = ""
    command: str = ""  # how to reproduce, printed into the results page


Recipe = Callable[[str], Experiment]  # budget -> experiment


def _finished(run_dir: Path) -> bool:
    return (run_dir / "report.md").exists() and (run_dir / "samples.npz").exists()


def run_experiment(
    exp: Experiment, runs_root: Path, results_root: Path, progress: bool = True
) -> Path:
    """Train (or reuse, or resume) every run, evaluate each once, then write the results page."""
    from difusion.config import load_config
    from difusion.evaluation import evaluate, load_samples, write_json
    from difusion.runs import samples_for_eval
    from difusion.training.distributed import default_device
    from difusion.training.loop import train

    device = default_device()
    rows = []
    for spec in exp.runs:
        run_dir = runs_root / exp.name / spec.label
        started = time.perf_counter()
        if _finished(run_dir):
            state = "reused"
        elif (run_dir / "checkpoint.safetensors").exists():
            train(None, run_dir, resume=True, progress=progress, final_samples=True)
            state = "resumed"
        else:
            train(load_config(spec.preset, spec.overrides), run_dir, progress=progress)
            state = "trained"
        row = {"label": spec.label, "x": spec.x, "run": str(run_dir), "state": state}
        ev = exp.evaluation
        samples_path, _ = samples_for_eval(
            run_dir,
            n=ev.n,
            steps=ev.steps,
            device=device,
            progress=progress,
            sampler=ev.sampler,
            eta=ev.eta,
        )
        folder = samples_path.parent
        images, labels, _ = load_samples(folder / "samples.npz")
        cfg = load_config(spec.preset, spec.overrides)
        for feats in ev.features:
            out = folder / f"eval-{feats}.json"
            if out.exists():
                result = json.loads(out.read_text())
                row.update(result["metrics"])
                row["setup_" + feats] = result["setup"]
                continue
            r = evaluate(
                images,
                labels,
                reference=f"{cfg.data.name}:test",
                metrics=ev.metrics,
                features=feats,
                n_reference=ev.n_reference,
                device=device,
                progress=progress,
            )
            write_json(r, out)
            row.update(r.metrics)
            row["setup_" + feats] = r.setup
        report = (run_dir / "report.md").read_text()
        row["train_report"] = report.splitlines()[3] if len(report.splitlines()) > 3 else ""
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    return write_results(exp, rows, results_root / exp.name)


def write_results(exp: Experiment, rows: list[dict], out_dir: Path) -> Path:
    """A Markdown table (one row per run), the raw rows as JSON, and a plot of each metric over x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    keys = [k for k in rows[0] if k.startswith(("fid", "kid", "precision", "recall", "class_acc"))]
    keys = [k for k in keys if not k.endswith("_std")]
    lines = [f"# {exp.title}", "", exp.description, "", f"Reproduce: `{exp.command}`", ""]
    header = ["run", exp.x_label or "x", *keys, "training"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        vals = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        lines.append(
            f"| {r['label']} | {r['x']} | " + " | ".join(vals) + f" | {r['train_report']} |"
        )
    setups = {k: v for r in rows for k, v in r.items() if k.startswith("setup_")}
    lines += ["", "Measured with:"]
    for key, s in setups.items():
        lines.append(
            f"- {key[6:]}: {s['features']}, {s['n_samples']} samples against "
            f"{s['n_reference']} images of {s['reference']}"
        )
    xs = [r["x"] for r in rows]
    if all(x is not None for x in xs) and keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), dpi=110, squeeze=False)
        for ax, k in zip(axes[0], keys, strict=True):
            ax.plot(xs, [r.get(k, float("nan")) for r in rows], "o-")
            ax.set_xlabel(exp.x_label)
            ax.set_title(k)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "metrics.png")
        plt.close(fig)
        lines += ["", "![metrics against " + exp.x_label + "](metrics.png)"]
    page = out_dir / "README.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def learning_curve(budget: str) -> Experiment:
    """The default Fashion-MNIST preset trained for several wall-clock budgets, each its own run
    (the learning-rate schedule is planned for each budget), scored on the domain and Inception
    features."""
    if budget == "small":  # minutes, for tests: a tiny network and few samples
        minutes = [0.1, 0.2]
        extra = [
            "model.base_channels=8",
            "model.num_res_blocks=1",
            "train.sample_every=0",
            "sample.n=16",
            "sample.steps=20",
        ]
        ev = EvalSpec(n=128, steps=20, features=("domain",), n_reference=500)
    elif budget == "full":
        minutes = [2.5, 5.0, 10.0, 20.0]
        extra = []
        ev = EvalSpec(
            n=2000,
            steps=100,
            sampler="ddim",
            eta=0.0,
            features=("domain", "inception"),
            n_reference=None,
        )
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")
    runs = [
        RunSpec(f"{m:g}min", "fashion-mnist", [f"train.minutes={m}", *extra], x=m) for m in minutes
    ]
    return Experiment(
        name="learning-curve" + ("-small" if budget == "small" else ""),
        title="Learning curve of the default Fashion-MNIST preset",
        description="Each row is its own run of `difusion train fashion-mnist` with the given time "
        "budget on a 2-core CPU, sampled with "
        + (
            "deterministic DDIM (eta = 0) in 100 steps"
            if budget == "full"
            else "20 ancestral steps"
        )
        + " and scored against the Fashion-MNIST test set.",
        runs=runs,
        evaluation=ev,
        x_label="training minutes",
        command=f"difusion experiment learning-curve --budget {budget}",
    )


EXPERIMENTS: dict[str, Recipe] = {"learning-curve": learning_curve}


def get_experiment(name: str, budget: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise DifusionError(f"unknown experiment {name!r}; experiments: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name](budget)
