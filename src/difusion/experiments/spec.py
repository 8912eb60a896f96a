"""What an experiment is: rows, each a run (a preset and its overrides) and how it is scored, and
what its results page says. A recipe turns a budget into an :class:`Experiment`; recipes live with
their chapter (``ddpm.py``, ``sampling.py``, ``improved.py``, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from difusion.errors import DifusionError


@dataclass
class EvalSpec:
    n: int = 2000  # samples per run
    steps: int | None = None  # sampling steps (None: all T)
    sampler: str = "ddpm"  # any of difusion.sampling.SAMPLERS
    eta: float = 0.0  # DDIM's eta
    features: tuple[str, ...] = ("domain",)
    metrics: tuple[str, ...] = ("fid", "kid", "pr")
    n_reference: int | None = None  # reference images (None: the whole split)
    variance: str | None = None  # ddpm's sigma_t^2 (None: the run's)
    guidance: float | None = None  # classifier-free guidance w (None: the run's)
    nll_images: int = 0  # > 0: also the bound in bits/dim on this many test images
    # what the samples are scored against: "test", or "val" (held out of the training split) when the
    # experiment chooses a setting, so that the test split is reported once, after the choice
    reference_split: str = "test"


@dataclass
class RunSpec:
    """One row of an experiment: a run (a preset and its overrides) and how it is scored.

    Rows may share a run (``run``: its folder under the runs root, default EXPERIMENT/LABEL), so
    one trained model can be scored with several samplers; ``group`` and ``x`` place the row in a
    pivot table (one line per group, x along the top)."""

    label: str
    preset: str
    overrides: list[str] = field(default_factory=list)
    x: float | None = None  # where this row sits on the experiment's x axis (e.g. minutes)
    run: str | None = None
    group: str | None = None
    evaluation: EvalSpec | None = None  # None: the experiment's

    def folder(self, runs_root: Path, experiment: str) -> Path:
        """The run's folder: RUNS_ROOT/``run``, or RUNS_ROOT/EXPERIMENT/LABEL."""
        return Path(runs_root) / (self.run or f"{experiment}/{self.label}")


@dataclass
class Experiment:
    name: str
    title: str
    description: str
    runs: list[RunSpec]
    evaluation: EvalSpec | None
    x_label: str = ""
    command: str = ""  # how to reproduce, printed into the results page
    notes: str = ""  # Markdown after the tables (what to read from them)


Recipe = Callable[[str], Experiment]  # budget -> experiment


def for_budget(budget: str, choices: dict):
    """``choices[budget]``, or a one-line error that names the budgets there are."""
    if budget not in choices:
        *others, last = choices
        raise DifusionError(f"unknown --budget {budget!r}; choose {', '.join(others)} or {last}")
    return choices[budget]
