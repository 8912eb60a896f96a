"""The CPU speedrun: the best Fashion-MNIST samples per CPU-minute, side by side with diffusers.

For each wall-clock budget (full: 5, 10 and 20 minutes; small: seconds, for tests) one run trains
ours (the ``ddpm-fmnist`` preset) and one the recipe of diffusers' unconditional training example
(:mod:`difusion.experiments.diffusers_baseline`). Ours is sampled with DPM-Solver++(2M) at 20
network evaluations; the baseline with diffusers' DDPM pipeline (1000 steps), its DDIM pipeline
(50 steps, the pipeline's default) and its DPM-Solver multistep scheduler (20 steps), and, through
:class:`~difusion.sampling.diffusers_bridge.DiffusersNetwork`, with our DPM-Solver++(2M) at 20. Each
sample set is scored by FID on Inception-v3 features and on the Fashion-MNIST classifier's
(FID-FMNIST) against the test set, with its sampling time. The floor: as many real training images
as there are samples, scored the same way (a 2,000-image FID of real data is far from 0).

    difusion experiment speedrun --budget small   # seconds per run, 64 samples, domain FID only
    difusion experiment speedrun --budget 10min   # the 10-minute rows of full alone (~95 min)
    difusion experiment speedrun --budget curve   # 5/10/20 min of the default recipe; the
                                                  # baseline drawn for grids only (~100 min)
    difusion experiment speedrun --budget full    # 5/10/20 min, 2000 samples (hours, see docs)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from difusion.evaluation import load_samples
from difusion.experiments.ddpm import TINY
from difusion.experiments.page import write_results
from difusion.experiments.scoring import score_images
from difusion.experiments.spec import Experiment, for_budget
from difusion.experiments.training import train_run
from difusion.viz import save_grid


@dataclass
class Budget:
    minutes: list[float]
    n: int  # samples per row (and real images of the floor)
    features: tuple[str, ...]
    n_reference: int | None  # test images (None: all 10,000)
    ours: list[str]  # overrides of the ddpm-fmnist preset
    widths: tuple[int, ...]  # the baseline UNet's widths
    nfe: int = 20  # our sampler's (and diffusers' DPM-Solver's) network evaluations
    ddim_steps: int = 50  # DDIMPipeline's default
    ddpm_steps: int = 1000  # DDPMPipeline's default
    # budgets sampled with the 1000-step pipeline (None: all); it costs 50x the NFE of the others
    ddpm_minutes: tuple[float, ...] | None = None
    # our recipes trained at each budget (defined below: the DDPM, fm-fmnist, the default)
    recipes: tuple[str, ...] = ("ddpm",)
    # the baseline's samplers (None: all four); on 2 cores each 20-call set of 2,000 images of its
    # 17.6M-parameter UNet takes about 17 minutes, DDIM's 50 calls about 40
    baseline_kinds: tuple[str, ...] | None = None
    # budgets whose baseline is scored on n samples (None: all); at the others it is trained and
    # drawn only for its grid (64 samples), since each scored set costs it 17-40 minutes on 2 cores
    baseline_fid_minutes: tuple[float, ...] | None = None


_SAMPLE = ["sample.sampler=dpmpp-2m", "sample.steps=20", "train.sample_every=0"]
# what the real budgets share: 2,000 samples on both feature networks against all test images,
# and the baseline's UNet at the example's first three widths
_REAL = dict(n=2000, features=("inception", "domain"), n_reference=None, ours=_SAMPLE,
             widths=(128, 128, 256))  # fmt: skip
BUDGETS = {
    "small": Budget(
        minutes=[0.05, 0.1],
        n=64,
        features=("domain",),
        n_reference=300,
        ours=[*_SAMPLE, *TINY, "sample.n=16"],
        widths=(32, 32, 32),
        ddim_steps=10,
        ddpm_steps=100,
    ),
    "full": Budget(
        minutes=[5.0, 10.0, 20.0],
        **_REAL,
        ddpm_minutes=(10.0,),
        recipes=("ddpm", "flow", "default"),
    ),
    # the 10-minute budget alone (about 95 minutes here): full's runs and page, with the baseline
    # sampled by its own DPM-Solver at ours' 20 calls only (its 1000-step DDPM pipeline would take
    # hours, its 50-step DDIM about 40 minutes on 2 cores)
    "10min": Budget(
        minutes=[10.0],
        **_REAL,
        ddpm_minutes=(),
        recipes=("ddpm", "flow", "default"),
        baseline_kinds=("dpm-solver",),  # its fastest sampler at ours' 20 calls
    ),
    # FID against minutes in one run (about 100 minutes here): the default recipe at 5, 10 and 20
    # minutes, 2,000 samples each; the baseline trained at each budget and drawn for the grids
    # (64 samples, its DPM-Solver at 20 calls) -- scoring its 2,000 takes 30-40 minutes a budget
    # here, so its FID is the 10min budget's
    "curve": Budget(
        minutes=[5.0, 10.0, 20.0],
        **_REAL,
        ddpm_minutes=(),
        recipes=("default",),
        baseline_kinds=("dpm-solver",),
        baseline_fid_minutes=(),
    ),
}


def _scores(images, folder: Path, b: Budget, progress: bool, device) -> dict:
    """FID on each feature network against the Fashion-MNIST test set, cached in ``folder``."""
    found = score_images(images, None, folder, features=b.features, metrics=("fid",),
                         n_reference=b.n_reference, device=device, progress=progress)  # fmt: skip
    return {k: v for k, v in found.items() if k.startswith(("fid_", "setup_"))}


def _cached_samples(folder: Path, draw) -> tuple[torch.Tensor, float]:
    """Images from ``folder/samples.npz``, drawn (and timed) once by ``draw()``."""
    path = folder / "samples.npz"
    timing = folder / "sampling_seconds.txt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        images = draw()
        timing.write_text(f"{time.perf_counter() - start:.2f}\n")
        np.savez_compressed(path, images=images.numpy().astype(np.float32))
    images, _, _ = load_samples(path)
    if not (folder / "grid.png").exists():
        save_grid(images[:64], folder / "grid.png", nrow=8)
    return images, float(timing.read_text())


# our recipes: (run-folder prefix, preset, sampler, group in the tables)
DDPM = ("ours", "ddpm-fmnist", "dpmpp-2m", "ours (dpmpp-2m)")
FLOW = ("ours-flow", "fm-fmnist", "fm-euler", "ours, flow matching (fm-euler)")
DEFAULT = ("ours-default", "fashion-mnist", "fm-euler", "ours, the default recipe (fashion-mnist)")
RECIPES = {"ddpm": DDPM, "flow": FLOW, "default": DEFAULT}


def _sampler_label(sampler: str, steps: int | None, sc) -> str:
    """``ours fm-euler 20``, or with guidance ``ours fm-euler 14, w 2 on tau in [0.3, 0.8], 21
    calls`` (a guided step costs two network calls)."""
    from difusion.sampling.guidance import guides_at
    from difusion.sampling.ode import ode_times

    steps = steps or sc.steps
    if not sc.guidance or not sampler.startswith("fm-euler"):
        return f"ours {sampler} {steps}"
    lo, hi = sc.guidance_interval
    calls = steps + sum(guides_at(t, (lo, hi)) for t in ode_times(steps)[:-1])
    return f"ours {sampler} {steps}, w {sc.guidance:g} on tau in [{lo:g}, {hi:g}], {calls} calls"


def _ours(m: float, b: Budget, root: Path, progress: bool, device, recipe=DDPM) -> dict:
    """Train (or reuse, or resume) one of our presets for m minutes, draw b.n samples with its
    sampler at b.nfe network calls, and score them."""
    from difusion.runs import samples_for_eval

    prefix, preset, sampler, group = recipe
    run_dir = root / f"{prefix}-{m:g}min"
    overrides = b.ours if recipe == DDPM else ["train.sample_every=0"]
    train_run(preset, [*overrides, f"train.minutes={m}"], run_dir, progress)
    # the default samples as its preset says (its steps, guidance and interval); the others at b.nfe
    steps = None if recipe == DEFAULT else b.nfe
    samples, run = samples_for_eval(
        run_dir, n=b.n, steps=steps, sampler=sampler, device=device, progress=progress
    )
    images, labels, _ = load_samples(samples)
    if not (samples.parent / "grid.png").exists():
        if labels is None:
            save_grid(images[:64], samples.parent / "grid.png", nrow=8)
        else:  # one class per row, the first 10 samples of each
            pick = torch.cat([torch.nonzero(labels == k)[:10, 0] for k in labels.unique()])
            save_grid(images[pick], samples.parent / "grid.png", nrow=10)
    report = (run_dir / "report.md").read_text().splitlines()
    row = {"label": f"{prefix.replace('-', ' ')} {m:g} min", "x": m, "group": group}
    row |= {"run": str(run_dir), "sampler": _sampler_label(sampler, steps, run.config.sample)}
    row["sampling_s"] = float((samples.parent / "sampling_seconds.txt").read_text())
    row["samples"] = str(samples)
    row["train_report"] = report[3] if len(report) > 3 else ""
    return row | _scores(images, samples.parent, b, progress, device)


def _baseline(m: float, b: Budget, root: Path, progress: bool, device) -> list[dict]:
    """Train diffusers' example recipe for m minutes; sample it four ways; score each."""
    from difusion.diffusion import DDPMPath
    from difusion.experiments import diffusers_baseline as base
    from difusion.sampling.diffusers_bridge import DiffusersNetwork
    from difusion.sampling.pipeline import GenerativeModel, SampleSettings, draw_samples

    run_dir = root / f"diffusers-{m:g}min"
    if not base.finished(run_dir):
        base.train_baseline(run_dir, minutes=m, widths=b.widths, progress=progress)
    report = json.loads((run_dir / base.REPORT).read_text())
    unet = base.load_baseline(run_dir)
    trained = (
        f"diffusers example recipe, {report['parameters'] / 1e6:.2f}M params, "
        f"{report['steps']} steps, {report['seconds'] / 60:.1f} min, "
        f"{report['images_per_s']:.0f} images/s, fp32"
    )
    # the example's DDPMScheduler (our indexing), eps-prediction, sampled by our dpmpp-2m
    ours = GenerativeModel(
        DiffusersNetwork(unet), DDPMPath.from_schedule("linear", 1000), (1, 28, 28)
    )
    ways = {
        f"diffusers DDPM {b.ddpm_steps}": ("ddpm", b.ddpm_steps),
        f"diffusers DDIM {b.ddim_steps}": ("ddim", b.ddim_steps),
        f"diffusers DPM-Solver {b.nfe}": ("dpm-solver", b.nfe),
        f"ours dpmpp-2m {b.nfe}": ("ours", b.nfe),
    }
    if b.ddpm_minutes is not None and m not in b.ddpm_minutes:
        del ways[f"diffusers DDPM {b.ddpm_steps}"]
    if b.baseline_kinds is not None:
        ways = {k: v for k, v in ways.items() if v[0] in b.baseline_kinds}
    scored = b.baseline_fid_minutes is None or m in b.baseline_fid_minutes
    n = b.n if scored else 64
    rows = []
    for sampler, (kind, steps) in ways.items():
        folder = run_dir / f"eval-n{n}-{kind}{steps}"

        def draw(kind=kind, steps=steps):
            if kind == "ours":
                settings = SampleSettings(n=n, sampler="dpmpp-2m", steps=steps)
                return draw_samples(ours, settings, progress=progress).x
            return base.sample_pipeline(unet, kind, n=n, steps=steps, progress=progress)

        images, seconds = _cached_samples(folder, draw)
        row = {"label": f"diffusers {m:g} min", "x": m, "run": str(run_dir)}
        row |= {"group": f"baseline, {sampler}", "sampler": sampler, "sampling_s": seconds}
        row["samples"] = str(folder / "samples.npz")
        row["train_report"] = trained
        # unscored (grid only): kept out of the tables by speedrun(), shown in the grids
        rows.append(row | (_scores(images, folder, b, progress, device) if scored else {}))
    return rows


def _floor(b: Budget, root: Path, progress: bool, device) -> dict:
    """n real training images (a seeded random subset), scored like the samples."""
    from difusion.data import load_dataset

    folder = root / f"floor-n{b.n}"

    def draw():
        data = load_dataset("fashion-mnist", split="train").data
        return data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[: b.n]]

    images, _ = _cached_samples(folder, draw)
    row = {"label": f"{b.n} real training images", "sampler": "-", "sampling_s": None}
    row["train_report"] = "the floor of the measurement"
    return row | _scores(images, folder, b, progress, device)


def speedrun(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Ours and the diffusers baseline at each wall-clock budget, and the real-data floor; writes
    docs/results/speedrun[-small]/README.md (tables, plots) and results.json."""
    from difusion.training.distributed import default_device

    b = for_budget(budget, BUDGETS)
    name = "speedrun" + ("" if budget in ("10min", "full") else f"-{budget}")
    root = Path(runs_root) / name
    device = default_device()
    floor = _floor(b, root, progress, device)
    rows = []
    for m in b.minutes:
        for i, key in enumerate(b.recipes):
            rows.append(_ours(m, b, root, progress, device, RECIPES[key]))
            if i == 0:  # the baseline right after our first recipe, as the runs always went
                rows += _baseline(m, b, root, progress, device)
    rows += [floor | {"x": m, "group": "real data (floor)"} for m in b.minutes]
    grid_only = [r for r in rows if f"fid_{b.features[0]}" not in r]
    rows = [r for r in rows if r not in grid_only]
    ratio = [
        f"- {r['x']:g} min, {r['group']}: {r[f'fid_{f}'] / floor[f'fid_{f}']:.2f} x the floor ({f})"
        for r in rows
        if r["group"].startswith("ours")
        for f in b.features
    ]
    out_dir = Path(results_root) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = ["", "Samples (the first 64 of each set), ours beside the baseline:", ""]
    shown = {
        DDPM[3]: "ours",
        f"baseline, diffusers DPM-Solver {b.nfe}": "diffusers, its DPM-Solver",
        f"baseline, ours dpmpp-2m {b.nfe}": "diffusers' UNet, our sampler",
        FLOW[3]: "ours, flow matching",
        DEFAULT[3]: "ours, the default recipe",
    }
    drawn = {(r["group"], r["x"]): r for r in rows + grid_only if r["group"] in shown}
    shown = {g: v for g, v in shown.items() if any(g == key[0] for key in drawn)}
    grids += ["| minutes | " + " | ".join(shown.values()) + " |", "|---" * (len(shown) + 1) + "|"]
    for m in b.minutes:
        cells = []
        for group in shown:  # one column per group, in the header's order
            r = drawn.get((group, m))
            if r is None:
                cells.append("")
                continue
            folder = Path(r["samples"]).parent
            png = f"grid-{Path(r['run']).name}-{folder.name}.png"
            shutil.copyfile(folder / "grid.png", out_dir / png)
            unscored = " (grid only, not scored)" if r in grid_only else ""
            cells.append(f"![{r['label']}, {r['sampler']}]({png}){unscored}")
        grids.append(f"| {m:g} | " + " | ".join(cells) + " |")
    exp = Experiment(
        name=name,
        title="The CPU speedrun: Fashion-MNIST FID against training minutes, ours and diffusers'",
        description=(
            f"Each budget trains ours ({', '.join(RECIPES[k][1] for k in b.recipes)}) and "
            "diffusers' unconditional example recipe for the same wall-clock minutes, then "
            f"draws {b.n} samples (seeds "
            f"0..{b.n - 1}) per sampler; FID against the Fashion-MNIST test set "
            f"({b.n_reference or 'all 10,000'} images). The floor row is {b.n} real training "
            "images scored the same way."
        ),
        runs=[],
        evaluation=None,  # type: ignore[arg-type]  # rows are scored here, not by the runner
        x_label="training minutes",
        command=f"difusion experiment speedrun --budget {budget}",
        notes="Ours relative to the floor:\n\n" + "\n".join([*ratio, *grids]),
    )
    return write_results(exp, rows, out_dir)


CUSTOM = {"speedrun": speedrun}
