"""The DDPM chapter's experiment: the learning curve of the ``ddpm-fmnist`` preset, whose runs the
sampling and latent experiments sample again (``LC_10``)."""

from __future__ import annotations

from difusion.errors import DifusionError
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec

# The learning curve's runs, shared with the experiments that only sample a trained model.
LC_FULL = ["sample.sampler=dpmpp-2m", "sample.steps=20"]
LC_10 = "learning-curve/10min"
TINY = [  # the smallest U-Net, without attention, for the plumbing of an experiment in seconds
    "model.base_channels=8",
    "model.num_res_blocks=1",
    "model.attention_levels=[]",
    "train.sample_every=0",
]
SMALL = [  # a tiny network for seconds: the plumbing, not the numbers
    "train.minutes=0.2",
    "model.base_channels=8",
    "model.num_res_blocks=1",
    "train.sample_every=0",
    "sample.n=16",
    "sample.steps=20",
]


def learning_curve(budget: str) -> Experiment:
    """The default Fashion-MNIST preset trained for several wall-clock budgets, each its own run
    (the learning-rate schedule is planned for each budget), scored on the domain and Inception
    features."""
    if budget == "small":  # minutes, for tests: a tiny network and few samples
        minutes, extra = [0.1, 0.2], SMALL[1:]
        ev = EvalSpec(n=128, steps=20, features=("domain",), n_reference=500)
    elif budget == "full":
        minutes, extra = [2.5, 5.0, 10.0, 20.0], LC_FULL
        ev = EvalSpec(n=2000, steps=20, sampler="dpmpp-2m", features=("domain", "inception"))
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")
    runs = [
        RunSpec(f"{m:g}min", "ddpm-fmnist", [f"train.minutes={m}", *extra], x=m) for m in minutes
    ]
    return Experiment(
        name="learning-curve" + ("-small" if budget == "small" else ""),
        title="Learning curve of the default Fashion-MNIST preset",
        description="Each row is its own run of `difusion train ddpm-fmnist` with the given time "
        "budget on a 2-core CPU, sampled with "
        + ("DPM-Solver++(2M) in 20 steps" if budget == "full" else "20 ancestral steps")
        + " and scored against the Fashion-MNIST test set.",
        runs=runs,
        evaluation=ev,
        x_label="training minutes",
        command=f"difusion experiment learning-curve --budget {budget}",
    )


EXPERIMENTS = {"learning-curve": learning_curve}
