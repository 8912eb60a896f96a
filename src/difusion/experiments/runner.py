"""Running an experiment by name: train the runs its spec needs (``training.py``), score each row
once (``scoring.py``), write the results page (``page.py``); rerunning reuses what is done.

Chapters name their experiments in their own module: ``EXPERIMENTS`` (recipes: budget ->
:class:`Experiment`, run here) and ``CUSTOM`` (experiments of their own shape: (budget, runs_root, results_root,
progress[, jobs]) -> results page)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from difusion.errors import DifusionError
from difusion.experiments.page import write_results
from difusion.experiments.scoring import score_run
from difusion.experiments.spec import Experiment, Recipe
from difusion.experiments.training import train_run, train_side_by_side

CHAPTERS = (
    "ddpm",
    "sampling",
    "inversion",
    "autoencoders",
    "segmentation",
    "flow",
    "step_by_step",
    "improved",
    "latent",
    "speedrun",
    "ablation",
    "families",
)


def run_experiment(
    exp: Experiment, runs_root: Path, results_root: Path, progress: bool = True, jobs: int = 1
) -> Path:
    """Train (or reuse, or resume) every run, score each row once, then write the results page
    (also after every row, so an interrupted experiment has one). With ``jobs`` > 1 the unfinished
    runs first train side by side."""
    from difusion.training.distributed import default_device

    device = default_device()
    folders = {spec.folder(runs_root, exp.name): spec for spec in exp.runs}
    train_side_by_side({d: (s.preset, s.overrides) for d, s in folders.items()}, jobs)
    rows = []
    for spec in exp.runs:
        run_dir = spec.folder(runs_root, exp.name)
        started = time.perf_counter()
        row = {"label": spec.label, "x": spec.x, "group": spec.group, "run": str(run_dir)}
        row["state"] = train_run(spec.preset, spec.overrides, run_dir, progress)
        row |= score_run(run_dir, spec.evaluation or exp.evaluation, device, progress)
        report = (run_dir / "report.md").read_text().splitlines()
        row["train_report"] = report[3] if len(report) > 3 else ""
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if len(rows) < len(exp.runs):
            write_results(exp, rows, results_root / exp.name, done=False)
    return write_results(exp, rows, results_root / exp.name)


def _registry() -> tuple[dict[str, Recipe], dict[str, Callable[..., Path]]]:
    """(recipes, custom experiments) of every chapter."""
    import importlib

    recipes: dict[str, Recipe] = {}
    custom: dict[str, Callable[..., Path]] = {}
    for chapter in CHAPTERS:
        module = importlib.import_module(f"difusion.experiments.{chapter}")
        recipes.update(getattr(module, "EXPERIMENTS", {}))
        custom.update(getattr(module, "CUSTOM", {}))
    return recipes, custom


def experiment_names() -> list[str]:
    recipes, custom = _registry()
    return [*recipes, *custom]


def get_experiment(name: str, budget: str) -> Experiment:
    """The experiment a recipe makes of ``budget``."""
    recipes, _ = _registry()
    if name not in recipes:
        raise DifusionError(
            f"unknown experiment {name!r}; experiments: {', '.join(experiment_names())}"
        )
    return recipes[name](budget)


def run_named(
    name: str,
    budget: str,
    runs_root: Path,
    results_root: Path,
    progress: bool = True,
    jobs: int = 1,
) -> Path:
    """Run experiment ``name`` at ``budget``; returns its results page. ``inversion`` samples the
    model of another experiment (it trains nothing), so run that one first. ``jobs`` > 1 trains
    runs side by side, for the experiments that take it (the others train one run at a time)."""
    import inspect

    if jobs < 1:
        raise DifusionError(f"--jobs must be at least 1, got {jobs}")
    _, custom = _registry()
    if name in custom:
        fn = custom[name]
        extra = {"jobs": jobs} if "jobs" in inspect.signature(fn).parameters else {}
        return fn(budget, runs_root, results_root, progress, **extra)
    return run_experiment(get_experiment(name, budget), runs_root, results_root, progress, jobs)
