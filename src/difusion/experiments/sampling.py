"""Experiments of the sampling chapter: DDIM's Table 1 in miniature (samplers at few steps on one
model) and the classifier-free guidance sweep. Inversion has its own module."""

from __future__ import annotations

from difusion.errors import DifusionError
from difusion.experiments.ddpm import LC_10, LC_FULL, SMALL
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec

SAMPLER_TABLE_NOTES = """How to read it (Song et al. 2021, Table 1, in miniature): each column is a number of
sampling steps S (network evaluations; Heun makes 2S' - 1 = S - 1 calls with S' = S/2 steps). The
DDIM rows differ only in eta (eq. 16): 0 is the deterministic ODE-like sampler, 1 has DDPM's
posterior variance. The sigma-hat row is ancestral DDPM with the larger variance
beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s on the respaced grid; at S = 1000 it is the 1000-step
reference. The paper's claims are that eta = 0 is best at few steps and sigma-hat is catastrophic
there; see the tutorial (docs/sampling.md) for whether they held here."""


def sampler_table(budget: str) -> Experiment:
    """DDIM's Table 1 in miniature on one trained Fashion-MNIST model, plus DPM-Solver++(2M) and
    Heun at matching network evaluations."""
    if budget == "small":
        run = RunSpec("", "ddpm-fmnist", SMALL, run="sampler-table-small/model")
        steps, etas, n, ref = [5, 10], [0.0, 1.0], 64, 500
    elif budget == "full":
        run = RunSpec("", "ddpm-fmnist", LC_FULL + ["train.minutes=10"], run=LC_10)
        steps, etas, n, ref = [10, 20, 50, 100], [0.0, 0.2, 0.5, 1.0], 300, None
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")

    def row(group: str, x: int, sampler: str, s: int, **kw) -> RunSpec:
        ev = EvalSpec(n, s, sampler, metrics=("fid", "pr"), n_reference=ref, **kw)
        return RunSpec(f"{group} S={x}", run.preset, run.overrides, x, run.run, group, ev)

    rows = [row(f"ddim eta={e:g}", s, "ddim", s, eta=e) for e in etas for s in steps]
    for s in [*steps, 1000] if budget == "full" else steps:
        rows.append(row("ddpm sigma-hat", s, "ddpm", s, variance="beta"))
    rows += [row("dpmpp-2m", s, "dpmpp-2m", s) for s in steps]
    rows += [row("heun", s, "heun", max(1, s // 2)) for s in steps]
    return Experiment(
        name="sampler-table" + ("-small" if budget == "small" else ""),
        title="Samplers at few steps: DDIM's Table 1 in miniature",
        description="One model (the learning curve's 10-minute run of the default Fashion-MNIST "
        f"preset) sampled {n} times (seeds 0..{n - 1}) by each sampler; domain FID (the shipped "
        "Fashion-MNIST classifier's features) against the test set.",
        runs=rows,
        evaluation=EvalSpec(n),
        x_label="network evaluations S",
        command=f"difusion experiment sampler-table --budget {budget}",
        notes=SAMPLER_TABLE_NOTES,
    )


def guidance_sweep(budget: str) -> Experiment:
    """A class-conditional model sampled with classifier-free guidance w in {0, 0.5, 1, 2, 4}."""
    if budget == "small":
        overrides = [*SMALL, "sample.n=20"]
        ws, n, ref = [0.0, 2.0], 100, 500
    elif budget == "full":
        overrides = ["train.minutes=5"]
        ws, n, ref = [0.0, 0.5, 1.0, 2.0, 4.0], 300, None
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")
    name = "guidance" + ("-small" if budget == "small" else "")
    metrics = ("fid", "pr", "acc")
    rows = [
        RunSpec(f"w={w:g}", "fashion-mnist-cond", overrides, x=w, run=f"{name}/model",
                evaluation=EvalSpec(n, 20, "dpmpp-2m", metrics=metrics, n_reference=ref,
                                    guidance=w))
        for w in ws
    ]  # fmt: skip
    return Experiment(
        name=name,
        title="Classifier-free guidance: class accuracy against FID and recall",
        description="The `fashion-mnist-cond` preset (trained "
        + ("5 minutes" if budget == "full" else "12 seconds")
        + ", 10% of labels dropped to the "
        f"null class) sampled {n} times per guidance scale w ({n // 10} per class) with "
        "DPM-Solver++(2M) in 20 steps; eps = (1 + w) eps_c - w eps_u. Domain features.",
        runs=rows,
        evaluation=EvalSpec(n),
        x_label="guidance w",
        command=f"difusion experiment guidance --budget {budget}",
    )


EXPERIMENTS = {"sampler-table": sampler_table, "guidance": guidance_sweep}
