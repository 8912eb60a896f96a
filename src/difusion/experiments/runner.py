"""Experiments: named recipes (a grid of runs, a budget, metrics) that train or reuse runs, resume
when interrupted, and write a Markdown table and plots into docs/results/NAME/."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
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


@dataclass
class Experiment:
    name: str
    title: str
    description: str
    runs: list[RunSpec]
    evaluation: EvalSpec
    x_label: str = ""
    command: str = ""  # how to reproduce, printed into the results page
    notes: str = ""  # Markdown after the tables (what to read from them)


Recipe = Callable[[str], Experiment]  # budget -> experiment


def as_custom(recipe: Recipe) -> Callable[..., Path]:
    """A recipe as a chapter module's CUSTOM entry: (budget, runs_root, results_root, progress,
    jobs) -> results page."""

    def run(
        budget: str, runs_root: Path, results_root: Path, progress: bool = True, jobs: int = 1
    ) -> Path:
        return run_experiment(recipe(budget), runs_root, results_root, progress, jobs)

    return run


def machine() -> str:
    """Where an experiment ran, for its page: the GPU's name, else the CPU core count."""
    import os

    import torch

    if torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name()} GPU"
    return f"{os.cpu_count()} CPU cores"


def _finished(run_dir: Path) -> bool:
    return (run_dir / "report.md").exists() and (run_dir / "samples.npz").exists()


@contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` while training it, so two experiments that share a run
    (started side by side) train it once: the second waits, then finds it finished."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run experiments one at a time there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_or_resume(preset: str, overrides: list[str], run_dir: Path, progress: bool) -> str:
    """Train ``run_dir`` from the preset, resume it from its checkpoint, or reuse it when finished;
    returns which of "trained", "resumed" or "reused" it was."""
    from difusion.config import load_config
    from difusion.training.loop import train

    with run_lock(run_dir):
        if _finished(run_dir):
            return "reused"
        if (run_dir / "checkpoint.safetensors").exists():
            train(None, run_dir, resume=True, progress=progress, final_samples=True)
            return "resumed"
        train(load_config(preset, overrides), run_dir, progress=progress)
        return "trained"


def _train_one(preset: str, overrides: list[str], run_dir: str) -> None:
    """One run of :func:`train_side_by_side`, in its own process."""
    train_or_resume(preset, overrides, Path(run_dir), progress=False)


def train_side_by_side(exp: Experiment, runs_root: Path, jobs: int) -> None:
    """Train the experiment's unfinished runs in up to ``jobs`` processes at once (a GPU or a
    many-core machine has room for several small runs); evaluation then goes row by row."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    todo: dict[str, RunSpec] = {}
    for spec in exp.runs:
        run_dir = runs_root / (spec.run or f"{exp.name}/{spec.label}")
        if not _finished(run_dir):
            todo.setdefault(str(run_dir), spec)  # rows that share a run train it once
    if len(todo) < 2:
        return
    # spawn, not fork: a forked child cannot use a CUDA context its parent already opened
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, s.preset, s.overrides, d) for d, s in todo.items()]
        for f in futures:
            f.result()


def run_experiment(
    exp: Experiment, runs_root: Path, results_root: Path, progress: bool = True, jobs: int = 1
) -> Path:
    """Train (or reuse, or resume) every run, evaluate each once, then write the results page.
    With ``jobs`` > 1 the unfinished runs first train side by side (:func:`train_side_by_side`)."""
    from difusion.config import load_config
    from difusion.data.latents import image_dataset_of
    from difusion.evaluation import evaluate, load_samples, write_json
    from difusion.runs import samples_for_eval
    from difusion.training.distributed import default_device

    device = default_device()
    if jobs > 1:
        train_side_by_side(exp, runs_root, jobs)
    rows = []
    for spec in exp.runs:
        run_dir = runs_root / (spec.run or f"{exp.name}/{spec.label}")
        started = time.perf_counter()
        state = train_or_resume(spec.preset, spec.overrides, run_dir, progress)
        if not _finished(run_dir):  # Ctrl-C or SIGTERM stopped the training: stop here too
            raise DifusionError(
                f"training of {run_dir} was stopped before its end; run the experiment again to "
                "resume it"
            )
        row = {"label": spec.label, "x": spec.x, "group": spec.group, "run": str(run_dir)}
        row["state"] = state
        ev = spec.evaluation or exp.evaluation
        samples_path, _ = samples_for_eval(
            run_dir,
            n=ev.n,
            steps=ev.steps,
            device=device,
            progress=progress,
            sampler=ev.sampler,
            eta=ev.eta,
            guidance=ev.guidance,
            variance=ev.variance,
        )
        row["sampler"] = ev.sampler + (f" eta={ev.eta:g}" if ev.sampler == "ddim" else "")
        row["sampler"] += f" {ev.variance}" if ev.variance else ""
        row["steps"] = ev.steps
        folder = samples_path.parent
        timing = folder / "sampling_seconds.txt"
        row["sampling_s"] = float(timing.read_text()) if timing.exists() else None
        images, labels, _ = load_samples(folder / "samples.npz")
        cfg = load_config(spec.preset, spec.overrides)
        for feats in ev.features:
            out = folder / f"eval-{feats}.json"
            if out.exists():
                result = json.loads(out.read_text())
                row.update(_named(result["metrics"], feats))
                row["setup_" + feats] = result["setup"]
                continue
            r = evaluate(
                images,
                labels,
                reference=f"{image_dataset_of(cfg)}:test",
                metrics=ev.metrics,
                features=feats,
                n_reference=ev.n_reference,
                device=device,
                progress=progress,
            )
            write_json(r, out)
            row.update(_named(r.metrics, feats))
            row["setup_" + feats] = r.setup
        if ev.nll_images:
            row.update(_nll(run_dir, ev.nll_images, device, progress))
        report = (run_dir / "report.md").read_text()
        row["train_report"] = report.splitlines()[3] if len(report.splitlines()) > 3 else ""
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if len(rows) < len(exp.runs):  # a page after every row: an interrupted run still has one
            write_results(exp, rows, results_root / exp.name, done=False)
    return write_results(exp, rows, results_root / exp.name)


def _nll(run_dir: Path, n: int, device, progress: bool) -> dict:
    """The run's bound in bits/dim on n test images (with its own variance), computed once."""
    from difusion.metrics.nll import run_nll, write_nll
    from difusion.runs import load_run

    out = run_dir / f"nll-n{n}.json"
    if out.exists():
        result = json.loads(out.read_text())
    else:
        result = run_nll(load_run(run_dir, device), n=n, device=device, progress=progress)
        write_nll(result, out)
    return {"bits_per_dim": result["bits_per_dim"], "bpd_se": result["standard_error"]}


def _named(metrics: dict, features: str) -> dict:
    """Precision and recall depend on the feature network too: name them after it, as FID and KID
    already are, so two feature networks in one row do not overwrite each other."""
    return {f"{k}_{features}" if k in ("precision", "recall") else k: v for k, v in metrics.items()}


def write_results(exp: Experiment, rows: list[dict], out_dir: Path, done: bool = True) -> Path:
    """A Markdown table (one row per run), the raw rows as JSON, and a plot of each metric over x.

    With groups, also a pivot table per headline metric (a line per group, x across) and a plot
    with a line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    prefixes = ("fid", "kid", "precision", "recall", "class_acc", "bits_per_dim", "bpd_se")
    keys = [k for k in rows[0] if k.startswith(prefixes) and not k.endswith("_std")]
    lines = [
        f"# {exp.title}",
        "",
        exp.description,
        "",
        f"Reproduce: `{exp.command}` (ran on {machine()})",
        "",
    ]
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
    xs = [r["x"] for r in rows]
    if all(x is not None for x in xs) and keys:
        cols = min(4, len(keys))
        nrows = -(-len(keys) // cols)
        fig, axes = plt.subplots(
            nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), dpi=110, squeeze=False
        )
        for ax in axes.flat[len(keys) :]:
            ax.axis("off")
        for ax, k in zip(axes.flat, keys, strict=False):
            for group in dict.fromkeys(r.get("group") for r in rows):
                sel = [r for r in rows if r.get("group") == group]
                ax.plot(
                    [r["x"] for r in sel], [r.get(k, float("nan")) for r in sel], "o-", label=group
                )
            if grouped:
                ax.set_xscale("log")
            ax.set_xlabel(exp.x_label)
            ax.set_title(k)
            ax.grid(alpha=0.3)
        if grouped:
            axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "metrics.png")
        plt.close(fig)
        lines += ["", "![metrics against " + exp.x_label + "](metrics.png)"]
    if exp.notes:
        lines += ["", exp.notes]
    page = out_dir / "README.md"
    page.write_text("\n".join(lines) + "\n")
    return page


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
        extra = ["sample.sampler=dpmpp-2m", "sample.steps=20"]
        ev = EvalSpec(
            n=2000,
            steps=20,
            sampler="dpmpp-2m",
            features=("domain", "inception"),
            n_reference=None,
        )
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
        run = RunSpec("", "ddpm-fmnist", _SMALL, run="sampler-table-small/model")
        steps, etas, n, ref = [5, 10], [0.0, 1.0], 64, 500
    elif budget == "full":
        run = RunSpec("", "ddpm-fmnist", _LC_FULL + ["train.minutes=10"], run=_LC_10)
        steps, etas, n, ref = [10, 20, 50, 100], [0.0, 0.2, 0.5, 1.0], 300, None
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")

    def row(group: str, x: int, ev: EvalSpec) -> RunSpec:
        return RunSpec(f"{group} S={x}", run.preset, run.overrides, x, run.run, group, ev)

    metrics = ("fid", "pr")
    rows = [
        row(f"ddim eta={eta:g}", s, EvalSpec(n, s, "ddim", eta, metrics=metrics, n_reference=ref))
        for eta in etas
        for s in steps
    ]
    for s in [*steps, 1000] if budget == "full" else steps:
        ev = EvalSpec(n, s, "ddpm", metrics=metrics, n_reference=ref, variance="beta")
        rows.append(row("ddpm sigma-hat", s, ev))
    for s in steps:
        rows.append(
            row("dpmpp-2m", s, EvalSpec(n, s, "dpmpp-2m", metrics=metrics, n_reference=ref))
        )
    for s in steps:
        ev = EvalSpec(n, max(1, s // 2), "heun", metrics=metrics, n_reference=ref)
        rows.append(row("heun", s, ev))
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
        overrides = [*_SMALL, "sample.n=20"]
        ws, n, ref = [0.0, 2.0], 100, 500
    elif budget == "full":
        overrides = ["train.minutes=5"]
        ws, n, ref = [0.0, 0.5, 1.0, 2.0, 4.0], 300, None
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")
    name = "guidance" + ("-small" if budget == "small" else "")
    rows = [
        RunSpec(
            f"w={w:g}",
            "fashion-mnist-cond",
            overrides,
            x=w,
            run=f"{name}/model",
            evaluation=EvalSpec(
                n, 20, "dpmpp-2m", metrics=("fid", "pr", "acc"), n_reference=ref, guidance=w
            ),
        )
        for w in ws
    ]
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


# The learning curve's runs, shared with the experiments that only sample a trained model.
_LC_FULL = ["sample.sampler=dpmpp-2m", "sample.steps=20"]
_LC_10 = "learning-curve/10min"
_SMALL = [
    "train.minutes=0.2",
    "model.base_channels=8",
    "model.num_res_blocks=1",
    "train.sample_every=0",
    "sample.n=16",
    "sample.steps=20",
]

EXPERIMENTS: dict[str, Recipe] = {
    "learning-curve": learning_curve,
    "sampler-table": sampler_table,
    "guidance": guidance_sweep,
}


# Chapters with experiments of their own shape (no grid of diffusion runs) live in their own
# module, which defines ``CUSTOM: dict[str, Callable[[budget, runs_root, results_root, progress],
# Path]]``; they are imported when an experiment is looked up.
CUSTOM_MODULES = (
    "difusion.experiments.inversion",
    "difusion.experiments.autoencoders",
    "difusion.experiments.segmentation",
    "difusion.experiments.flow",
    "difusion.experiments.improved",
    "difusion.experiments.latent",
    "difusion.experiments.speedrun",
    "difusion.experiments.ablation",
)


def custom_experiments() -> dict[str, Callable[..., Path]]:
    """name -> runner function, from the chapter modules that exist."""
    import importlib

    found: dict[str, Callable[..., Path]] = {}
    for module in CUSTOM_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue
            raise
        found.update(getattr(mod, "CUSTOM", {}))
    return found


def experiment_names() -> list[str]:
    return [*EXPERIMENTS, *custom_experiments()]


def get_experiment(name: str, budget: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise DifusionError(
            f"unknown experiment {name!r}; experiments: {', '.join(experiment_names())}"
        )
    return EXPERIMENTS[name](budget)


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
    if name not in EXPERIMENTS:
        custom = custom_experiments()
        if name in custom:
            fn = custom[name]
            extra = {"jobs": jobs} if "jobs" in inspect.signature(fn).parameters else {}
            return fn(budget, runs_root, results_root, progress, **extra)
    return run_experiment(get_experiment(name, budget), runs_root, results_root, progress, jobs)
