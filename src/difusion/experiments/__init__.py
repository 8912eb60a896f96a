"""Named experiments: recipes that train, evaluate and write results pages."""

from difusion.experiments.runner import (
    EXPERIMENTS,
    Experiment,
    RunSpec,
    get_experiment,
    run_experiment,
)

__all__ = ["EXPERIMENTS", "Experiment", "RunSpec", "get_experiment", "run_experiment"]
