"""The speedrun's recipe, one choice at a time: which change buys the best Fashion-MNIST samples for
the same CPU minutes (issue "The CPU speedrun", part 3).

Every row trains for the same wall-clock minutes and changes one thing of a base recipe (the
fm-fmnist preset: flow matching, the 1.7M-parameter U-Net, batch 64, bf16, lr 1e-3 with a cosine
decay planned for the minutes, EMA 0.995), or samples the base run another way. All rows draw the
same seeds and are scored by FID on the shipped Fashion-MNIST classifier's features against the
test set. Run it on a quiet machine: a time budget is only fair when nothing else takes the CPU.

    difusion experiment speedrun-ablation --budget 3min    # about 70 minutes on 2 cores (68 measured)
    difusion experiment speedrun-ablation --budget small   # seconds per row, for the tests
"""

from __future__ import annotations

from difusion.experiments.ddpm import TINY
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec, for_budget

BASE = "fm-fmnist"
NFE = 20  # network evaluations per sample of every row but the sampler group's

# (group, label, preset, training overrides, sampler, steps[, DDIM's eta]); the base run's
# overrides are [].
CHOICES: list[tuple] = [
    ("base", "flow matching, fm-fmnist as it is", BASE, [], "fm-euler", NFE),
    # what the network learns and how the loss weighs noise levels
    ("objective", "DDPM, eps-prediction (ddpm-fmnist)", "ddpm-fmnist", [], "dpmpp-2m", NFE),
    (
        "objective",
        "DDPM, v-prediction + min-SNR-5",
        "ddpm-fmnist",
        ["diffusion.prediction=v", "diffusion.weighting=min-snr"],
        "dpmpp-2m",
        NFE,
    ),
    (
        "t sampling",
        "t ~ logit-normal(0, 1)",
        BASE,
        ["flow.time_sampling=logit-normal"],
        "fm-euler",
        NFE,
    ),
    # the optimizer's step: how many images, how precise, how far
    ("batch", "batch 32", BASE, ["train.batch_size=32"], "fm-euler", NFE),
    ("batch", "batch 128", BASE, ["train.batch_size=128"], "fm-euler", NFE),
    ("precision", "fp32 (no bf16 autocast)", BASE, ["train.precision=fp32"], "fm-euler", NFE),
    ("lr", "lr 2e-3", BASE, ["train.lr=2e-3"], "fm-euler", NFE),
    ("lr", "lr 5e-4", BASE, ["train.lr=5e-4"], "fm-euler", NFE),
    ("lr schedule", "constant lr after warm-up", BASE, ["train.min_lr_ratio=1.0"], "fm-euler", NFE),
    ("EMA", "EMA 0.999", BASE, ["train.ema_decay=0.999"], "fm-euler", NFE),
    # the network's shape for 28x28
    ("network", "base channels 24 (1.0M)", BASE, ["model.base_channels=24"], "fm-euler", NFE),
    ("network", "base channels 48 (3.8M)", BASE, ["model.base_channels=48"], "fm-euler", NFE),
    ("network", "no attention", BASE, ["model.attention_levels=[]"], "fm-euler", NFE),
    ("network", "1 residual block per level", BASE, ["model.num_res_blocks=1"], "fm-euler", NFE),
    # the winners of the rows above together: the unconditional network of the default preset
    # (fashion-mnist adds the labels and guidance: docs/benchmarks.md, section 2)
    (
        "combined",
        "logit-normal t + 1 block + no attention (fashion-mnist without labels)",
        BASE,
        ["flow.time_sampling=logit-normal", "model.num_res_blocks=1", "model.attention_levels=[]"],
        "fm-euler",
        NFE,
    ),
    # the base run, sampled other ways
    ("sampler", "fm-euler, 10 calls", BASE, [], "fm-euler", 10),
    ("sampler", "fm-euler, 40 calls", BASE, [], "fm-euler", 40),
    ("sampler", "fm-heun, 10 steps (19 calls)", BASE, [], "fm-heun", 10),
    ("sampler", "DPM-Solver++(2M) through the adapter, 20", BASE, [], "dpmpp-2m", NFE),
    ("sampler", "DDIM eta = 1 (stochastic) through the adapter, 20", BASE, [], "ddim", NFE, 1.0),
    ("sampler", "DDPM run, DDIM eta = 1 (stochastic), 20", "ddpm-fmnist", [], "ddim", NFE, 1.0),
]

# small: seconds of a tiny network, so the test can check every row's plumbing
_TINY = [*TINY, "sample.n=8", "sample.steps=20"]  # final samples: not 1000 ancestral steps
# (training overrides, samples and reference images) by budget
BUDGETS = {
    "small": ([*_TINY, "train.minutes=0.03"], dict(n=64, n_reference=300)),
    "3min": (["train.minutes=3"], dict(n=1000, n_reference=None)),
}


def run_name(budget: str, preset: str, overrides: list[str]) -> str:
    """Rows that train the same thing share a run, named by what it changes."""
    slug = "-".join(o.split(".", 1)[-1].replace("=", "_") for o in overrides) or "base"
    if preset != BASE:
        slug = f"{preset}-{slug}"
    for bad in "[]":
        slug = slug.replace(bad, "")
    return f"speedrun-ablation-{budget}/{slug}"


def ablation(budget: str) -> Experiment:
    """One row per choice of the recipe, each at the same wall-clock budget."""
    common, ev = for_budget(budget, BUDGETS)
    runs = []
    for group, label, preset, overrides, sampler, steps, *eta in CHOICES:
        if budget == "small" and "base_channels" in " ".join(overrides):
            overrides = [o.replace("24", "6").replace("48", "12") for o in overrides]
        runs.append(
            RunSpec(
                label,
                preset,
                [*common, "train.sample_every=0", *overrides],
                run=run_name(budget, preset, overrides),
                group=group,
                evaluation=EvalSpec(
                    **ev,
                    steps=steps,
                    sampler=sampler,
                    eta=eta[0] if eta else 0.0,
                    metrics=("fid",),
                ),
            )
        )
    minutes = common[-1].split("=")[1]
    return Experiment(
        name="speedrun-ablation" + ("-small" if budget == "small" else ""),
        title="The speedrun's recipe, one change at a time",
        description=(
            f"Each row trains {minutes} minutes of wall-clock time on this machine and changes one "
            f"thing of the base recipe (the {BASE} preset), or samples the base run another way. "
            f"{ev['n']} samples per row (seeds 0..{ev['n'] - 1}), {NFE} network calls unless the "
            "row says otherwise; FID on the Fashion-MNIST classifier's features against the test "
            f"set ({ev['n_reference'] or 'all 10,000'} images). Lower is better."
        ),
        runs=runs,
        evaluation=EvalSpec(**ev),
        command=f"difusion experiment speedrun-ablation --budget {budget}",
    )


EXPERIMENTS = {"speedrun-ablation": ablation}
