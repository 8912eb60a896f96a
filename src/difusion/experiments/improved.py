"""Improved DDPM in miniature: Ho et al.'s Table 2, Nichol & Dhariwal's schedules, losses and
learned variances, and min-SNR weighting, each a small grid of Fashion-MNIST runs at equal budget.

    difusion experiment improved-losses --budget full     # Table 2 + L_simple / hybrid / vlb (+IS)
    difusion experiment improved-schedules --budget full  # linear vs cosine
    difusion experiment improved-sigma --budget full      # learned vs fixed Sigma at 25/50/100 steps
    difusion experiment min-snr --budget full             # min-SNR-5 vs uniform against steps
"""

from __future__ import annotations

from dataclasses import replace

from difusion.errors import DifusionError
from difusion.experiments.ddpm import TINY
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec

# A smaller U-Net than the default preset, so a short budget trains it further; every row of an
# experiment has the same network and the same number of optimizer steps (equal compute: the
# losses cost the same forward and backward pass; a wall-clock budget is unfair on a shared CPU).
_NET = ["model.base_channels=16", "train.sample_every=0", "sample.n=16", "sample.steps=50"]
_TINY = [*TINY, "sample.n=8", "sample.steps=10", "diffusion.T=100"]
_LEARNED = ["diffusion.learn_sigma=true", "diffusion.variance=learned"]
_NOTES = (
    "Whether the papers' orderings held, with the spread over seeds where rows are close: "
    "docs/improved.md, section Experiments."
)


def _budget(budget: str) -> tuple[list[str], list[str], EvalSpec]:
    """(network, training length, scoring) of the runs at ``budget``."""
    if budget == "small":
        ev = EvalSpec(n=64, steps=10, metrics=("fid", "pr"), n_reference=300, nll_images=8)
        return _TINY, ["train.steps=30"], ev
    if budget == "full":
        # Equal optimizer steps, not equal minutes: on a shared machine a time budget buys each
        # run a different number of steps (one run here got 91 steps in 2 minutes, another 681).
        ev = EvalSpec(n=300, steps=100, metrics=("fid", "pr"), nll_images=32)
        return _NET, ["train.steps=600", "train.minutes=null"], ev
    raise DifusionError(f"unknown --budget {budget!r}; choose small or full")


def _run_name(budget: str, overrides: list[str]) -> str:
    """Runs are named by what they change, so experiments that need the same run share it."""
    slug = "-".join(o.split(".", 1)[-1].replace("=", "_") for o in overrides) or "baseline"
    return f"improved{'-small' if budget == 'small' else ''}/{slug}"


def _runs(budget: str, rows: list[tuple[str, list[str]]]) -> list[RunSpec]:
    """A run per (label, overrides) at the budget's network and length, scored alike."""
    net, length, ev = _budget(budget)
    return [
        RunSpec(label, "ddpm-fmnist", [*net, *length, *o], run=_run_name(budget, o), evaluation=ev)
        for label, o in rows
    ]


def _experiment(name, budget, title, description, runs, notes=_NOTES, x_label="") -> Experiment:
    return Experiment(
        name=name + ("-small" if budget == "small" else ""),
        title=title,
        description=description,
        runs=runs,
        evaluation=EvalSpec(),
        x_label=x_label,
        command=f"difusion experiment {name} --budget {budget}",
        notes=notes,
    )


# the most informative first: an interrupted run still answers improved DDPM
LOSSES = [
    ("eps, L_simple, fixed beta", []),
    ("eps, L_hybrid, learned", ["diffusion.loss=hybrid", *_LEARNED]),
    (
        "eps, L_vlb + importance sampling, learned",
        ["diffusion.loss=vlb", "diffusion.importance_sampling=true", *_LEARNED],
    ),
    ("eps, L_vlb, learned", ["diffusion.loss=vlb", *_LEARNED]),
    ("eps, L_vlb, fixed beta", ["diffusion.loss=vlb"]),
    ("x0, L_simple, fixed beta", ["diffusion.prediction=x0"]),
    ("mu, ||mu - mu_theta||^2, fixed beta", ["diffusion.prediction=mu"]),
    ("mu, L_vlb, fixed beta", ["diffusion.prediction=mu", "diffusion.loss=vlb"]),
]
# cosine is the default: those rows share the runs of improved-losses
SCHEDULES = [
    ("linear, L_simple", ["diffusion.schedule=linear"]),
    ("cosine, L_simple", []),
    ("linear, L_hybrid", ["diffusion.schedule=linear", "diffusion.loss=hybrid", *_LEARNED]),
    ("cosine, L_hybrid", ["diffusion.loss=hybrid", *_LEARNED]),
]


def losses(budget: str) -> Experiment:
    """Ho et al. Table 2 (what to predict, which loss, fixed or learned Sigma) and improved DDPM's
    L_simple / L_hybrid / L_vlb (+ importance sampling), at one budget each."""
    return _experiment(
        "improved-losses",
        budget,
        "What to predict and which loss: Ho et al. Table 2 and improved DDPM's losses in miniature",
        "Each row is a Fashion-MNIST run of the same U-Net for the same 600 optimizer steps; FID-FMNIST "
        "from ancestral sampling on a respaced grid with the run's own variance, and the bound in "
        "bits/dim (all T terms) on test images.",
        _runs(budget, LOSSES),
    )


def schedules(budget: str) -> Experiment:
    return _experiment(
        "improved-schedules",
        budget,
        "Linear against cosine schedule (Nichol & Dhariwal Sec. 3.2)",
        "Same network and budget; FID-FMNIST and the bound in bits/dim. See the alpha_bar plot in "
        "docs/improved.md for why the linear schedule wastes its last steps on 28x28 images.",
        _runs(budget, SCHEDULES),
    )


def sigma_steps(budget: str) -> Experiment:
    """One L_hybrid run sampled with few respaced steps and three variances."""
    (run,) = _runs(budget, [("", ["diffusion.loss=hybrid", *_LEARNED])])
    runs = [
        replace(
            run,
            label=f"{variance} S={s}",
            x=s,
            group=variance,
            evaluation=replace(run.evaluation, steps=s, variance=variance, nll_images=0),
        )
        for variance in ("learned", "beta", "beta_tilde")
        for s in ([25, 100] if budget == "full" else [5, 10])
    ]
    return _experiment(
        "improved-sigma",
        budget,
        "Learned against fixed Sigma when sampling with few respaced steps",
        "One model trained with L_hybrid (learned variances), sampled by ancestral "
        "DDPM on respaced grids with its learned Sigma or with a fixed beta / beta-tilde.",
        runs,
        notes="",
        x_label="sampling steps",
    )


def min_snr(budget: str) -> Experiment:
    """Min-SNR-5 against uniform weighting: FID against training steps, with v prediction (the
    paper's weight on the v error is min(SNR, 5) / (SNR + 1))."""
    net, _, ev = _budget(budget)
    runs = [
        RunSpec(
            f"v {weighting} {m} steps",
            "ddpm-fmnist",
            [
                *net,
                f"train.steps={m}",
                "train.minutes=null",
                f"diffusion.weighting={weighting}",
                "diffusion.prediction=v",
            ],
            m,
            group=f"v {weighting}",
            evaluation=replace(ev, nll_images=0),
        )
        for weighting in ("uniform", "min-snr")
        for m in ([300, 900] if budget == "full" else [10, 20])
    ]
    return _experiment(
        "min-snr",
        budget,
        "Min-SNR-5 weighting against uniform weighting (Hang et al. 2023)",
        "FID-FMNIST against training steps; each point is its own run with its "
        "learning-rate schedule planned for that budget.",
        runs,
        notes="Whether the paper's ordering held, with the spread over seeds: docs/improved.md, "
        "section Experiments.",
        x_label="training steps",
    )


SEEDS = (1, 2)  # seed 0 is the main pages' run


def _seeded(rows: list[tuple], seeds=SEEDS) -> list[tuple]:
    return [(f"{label}, seed {s}", [*o, f"train.seed={s}"]) for s in seeds for label, o in rows]


def losses_seeds(budget: str) -> Experiment:
    """The close pair of improved-losses (L_simple against L_hybrid) again with seeds 1 and 2."""
    return _experiment(
        "improved-losses-seeds",
        budget,
        "L_simple against L_hybrid: the spread over training seeds",
        "The two close rows of improved-losses, trained again with train.seed = 1 and 2 (seed 0 is "
        "on that page); same network, steps and scoring.",
        _runs(budget, _seeded(LOSSES[:2])),
    )


def schedules_seeds(budget: str) -> Experiment:
    """The linear-schedule rows of improved-schedules again with seeds 1 and 2."""
    return _experiment(
        "improved-schedules-seeds",
        budget,
        "Linear schedule: the spread over training seeds",
        "The linear rows of improved-schedules with train.seed = 1 and 2; the cosine rows with "
        "these seeds are on the improved-losses-seeds page.",
        _runs(budget, _seeded(SCHEDULES[::2])),
    )


def min_snr_seeds(budget: str) -> Experiment:
    """min-snr's longest budget again with seeds 1 and 2."""
    exp = min_snr(budget)
    last = max(s.x for s in exp.runs)
    exp.runs = [
        replace(s, label=f"{s.label}, seed {seed}", overrides=[*s.overrides, f"train.seed={seed}"])
        for seed in SEEDS
        for s in exp.runs
        if s.x == last
    ]
    exp.name = exp.name.replace("min-snr", "min-snr-seeds")
    exp.title = "Min-SNR-5 against uniform weighting: the spread over training seeds"
    exp.description = f"The {last:g}-step rows of min-snr with train.seed = 1 and 2."
    exp.command = exp.command.replace("min-snr", "min-snr-seeds")
    return exp


EXPERIMENTS = {
    "improved-losses": losses,
    "improved-schedules": schedules,
    "improved-sigma": sigma_steps,
    "min-snr": min_snr,
    "improved-losses-seeds": losses_seeds,
    "improved-schedules-seeds": schedules_seeds,
    "min-snr-seeds": min_snr_seeds,
}
