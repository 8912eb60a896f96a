"""Named experiments: recipes that train, evaluate and write results pages."""

from difusion.experiments.runner import (
    experiment_names,
    get_experiment,
    run_experiment,
    run_named,
)
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec
from difusion.experiments.training import finished, train_run

__all__ = [
    "EvalSpec",
    "Experiment",
    "RunSpec",
    "experiment_names",
    "finished",
    "get_experiment",
    "run_experiment",
    "run_named",
    "train_run",
]
