"""Experiments of the U-Net chapter: the border weight map, elastic deformation with few training
images, and synthetic-to-real transfer on the StarDist nuclei image. Each trains small U-Nets
through the one training loop (reusing finished runs, resuming killed ones) and writes a results
page with a table, a plot, the command and the time it took here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from difusion.experiments.page import figure, machine, write_page
from difusion.experiments.spec import for_budget
from difusion.experiments.training import train_run

# Training steps of one run, seeds per setting, training-set sizes and extra overrides, by budget.
# small is a smoke test of the whole path (a tiny U-Net, seconds); full is what the results show.
BUDGETS = {
    "small": {
        "steps": 4,
        "seeds": [0],
        "n_train": [3],
        "n_test": 1,
        "extra": [
            "segmentation.base_channels=4",
            "segmentation.depth=2",
            "segmentation.tile=92",
            "segmentation.image_size=96",
            "train.batch_size=2",
            "segmentation.eval_real=false",
        ],
    },
    # Sized for the shared 2-core machine these pages were made on (about 0.7 s per step of the
    # seg-cells U-Net): one seed and 5 or 20 training images; add seeds / 100 images if you can.
    "full": {
        "steps": 150,
        "seeds": [0],  # the weight-map experiment runs every seed; the elastic one the first
        "n_train": [5, 20],
        "n_test": 8,
        "extra": [],
    },
}


def _scores(run_dir: Path) -> dict:
    return json.loads((run_dir / "scores.json").read_text())


def _minutes(run_dir: Path) -> float:
    """Wall-clock training minutes of a run, from its last metrics line."""
    lines = (run_dir / "metrics.jsonl").read_text().strip().splitlines()
    return float(json.loads(lines[-1]).get("elapsed_s", 0.0)) / 60.0 if lines else 0.0


def _setup(run_dir: Path) -> str:
    """What the runs were: steps, batch, the U-Net's size and tiles (from a run's config)."""
    from difusion.config import load_run_config

    cfg = load_run_config(run_dir)
    s = cfg.segmentation
    return (
        f"{cfg.train.steps} steps of batch {cfg.train.batch_size} per run; U-Net with "
        f"{s.base_channels} channels at the first level, depth {s.depth}, {s.padding} "
        f"convolutions, {s.tile}x{s.tile} tiles; synthetic images of {s.image_size}x{s.image_size}"
    )


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def _bar_plot(groups: dict[str, list[float]], labels: list[str], ylabel: str, out: Path) -> None:
    """Grouped bars: one group per key of ``groups`` (values per label); the dots are seeds."""
    width = 0.8 / max(len(groups), 1)
    with figure(out, figsize=(6, 3.5), dpi=100) as ax:
        for k, (name, values) in enumerate(groups.items()):
            xs = np.arange(len(labels)) + k * width
            means = [np.mean(v) if len(v) else np.nan for v in values]
            ax.bar(xs, means, width, label=name)
            for x, v in zip(xs, values, strict=True):
                ax.plot([x] * len(v), v, "k.", ms=4)
        ax.set_xticks(np.arange(len(labels)) + width * (len(groups) - 1) / 2, labels)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)


def _common(b: dict, seed: int) -> list[str]:
    return [
        f"train.steps={b['steps']}",
        f"train.seed={seed}",
        f"segmentation.n_test={b['n_test']}",
        *b["extra"],
    ]


def weight_map_experiment(budget: str, runs_root: Path, results_root: Path, progress: bool) -> Path:
    """With and without the border term of Eq. 2 (w0 = 10 vs class balancing alone): the share of
    touching pairs separated and instance AP at IoU 0.5, instances by connected components."""
    b = for_budget(budget, BUDGETS)
    t_start = time.perf_counter()
    rows = []
    for seed in b["seeds"]:  # seed by seed, so an interrupted experiment has pairs to show
        for use_map in (True, False):
            label = f"{'map' if use_map else 'nomap'}-s{seed}"
            run_dir = runs_root / f"seg-weight-map-{budget}" / label
            overrides = [*_common(b, seed), f"segmentation.weight_map={str(use_map).lower()}"]
            state = train_run("seg-cells", overrides, run_dir, progress)
            rows.append((use_map, seed, state, run_dir, _scores(run_dir)))
    out = results_root / ("seg-weight-map" + ("-small" if budget == "small" else ""))
    table = [
        "| weight map | seed | Dice | IoU | AP@0.5 | touching pairs separated | train min | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for use_map, seed, state, run_dir, s in rows:
        u = s["unet"]
        table.append(
            f"| {'w_c + border (w0 = 10)' if use_map else 'w_c only'} | {seed} | {_fmt(u['dice'])} "
            f"| {_fmt(u['iou'])} | {_fmt(u['ap50'])} | {_fmt(u['separated_share'])} "
            f"({u['touching_pairs']} pairs) | {_minutes(run_dir):.1f} | {state} |"
        )
    otsu = rows[0][4]["otsu_watershed"]
    table.append(
        f"| Otsu + watershed (no training) | - | {_fmt(otsu['dice'])} | {_fmt(otsu['iou'])} "
        f"| {_fmt(otsu['ap50'])} | {_fmt(otsu['separated_share'])} | - | - |"
    )
    groups = {
        name: [
            [r[4]["unet"][k] for r in rows if r[0] == use_map] for k in ("ap50", "separated_share")
        ]
        for name, use_map in (("with weight map", True), ("without", False))
    }
    _bar_plot(groups, ["AP@0.5", "pairs separated"], "share", out / "weight_map.png")
    minutes = (time.perf_counter() - t_start) / 60
    return write_page(
        out,
        [
            "# With and without the border weight map",
            "",
            "Ronneberger et al. 2015, Eq. 2: the weight map adds `w0 exp(-(d1 + d2)^2 / (2 sigma^2))` "
            "to the class-balancing weights, so the thin background lines between touching cells "
            "cost much more when misclassified. Same U-Net, data, seed and steps; only the border "
            f"term differs. {_setup(rows[0][3])}; 20 training images; scored on "
            f"{b['n_test']} held-out synthetic images, instances = connected components of the "
            "predicted foreground (so a merged pair of cells is one instance).",
            "",
            *table,
            "",
            "![AP and separated pairs](weight_map.png)",
            "",
            f"Command: `difusion experiment seg-weight-map --budget {budget}`; "
            f"this page took {minutes:.1f} min on {machine()} (reused runs cost nothing).",
        ],
    )


def elastic_experiment(budget: str, runs_root: Path, results_root: Path, progress: bool) -> Path:
    """With and without elastic deformation (flips, rotations and grey values stay on) when
    training on 5, 20 or 100 synthetic images."""
    b = for_budget(budget, BUDGETS)
    t_start = time.perf_counter()
    rows = []
    for n in b["n_train"]:
        for elastic in (True, False):
            for seed in b["seeds"][:1]:
                label = f"n{n}-{'elastic' if elastic else 'plain'}-s{seed}"
                run_dir = runs_root / f"seg-elastic-{budget}" / label
                if n == 20 and elastic:  # the same run as the weight-map experiment's
                    run_dir = runs_root / f"seg-weight-map-{budget}" / f"map-s{seed}"
                overrides = [
                    *_common(b, seed),
                    f"segmentation.n_train={n}",
                    f"segmentation.elastic={str(elastic).lower()}",
                ]
                state = train_run("seg-cells", overrides, run_dir, progress)
                rows.append((n, elastic, seed, state, run_dir, _scores(run_dir)))
    out = results_root / ("seg-elastic" + ("-small" if budget == "small" else ""))
    table = [
        "| training images | elastic | seed | Dice | AP@0.5 | pairs separated | train min | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, elastic, seed, state, run_dir, s in rows:
        u = s["unet"]
        table.append(
            f"| {n} | {'yes' if elastic else 'no'} | {seed} | {_fmt(u['dice'])} | "
            f"{_fmt(u['ap50'])} | {_fmt(u['separated_share'])} | {_minutes(run_dir):.1f} | {state} |"
        )
    labels = [str(n) for n in b["n_train"]]
    groups = {
        f"{'elastic' if e else 'no elastic'}": [
            [r[5]["unet"]["ap50"] for r in rows if r[0] == n and r[1] == e] for n in b["n_train"]
        ]
        for e in (True, False)
    }
    _bar_plot(groups, labels, "AP@0.5 (held-out)", out / "elastic.png")
    minutes = (time.perf_counter() - t_start) / 60
    return write_page(
        out,
        [
            "# Elastic deformation with few training images",
            "",
            "Ronneberger et al. 2015, Sec. 3.1: random elastic deformations (a 3x3 grid of "
            'displacements with 10 px standard deviation, bicubic interpolation) are "the key '
            'concept to train a segmentation network with very few annotated images". Flips, '
            "rotations and grey-value changes stay on in both arms. "
            f"{_setup(rows[0][4])}; scored on {b['n_test']} held-out synthetic images.",
            "",
            *table,
            "",
            "![AP against training images](elastic.png)",
            "",
            f"Command: `difusion experiment seg-elastic --budget {budget}`; "
            f"this page took {minutes:.1f} min on {machine()} (reused runs cost nothing).",
        ],
    )


def real_experiment(budget: str, runs_root: Path, results_root: Path, progress: bool) -> Path:
    """Trained on synthetic cells only, scored on the real StarDist nuclei image (512x512, 125
    nuclei) next to Otsu + watershed; instances by components and by watershed."""
    from difusion.data.stardist_wheel import load_stardist_pair
    from difusion.metrics.segmentation import (
        instances_from_foreground,
        otsu_watershed,
        segmentation_scores,
    )
    from difusion.segmentation.inference import foreground_probability, save_comparison
    from difusion.segmentation.objective import load_segmentation_run

    b = for_budget(budget, BUDGETS)
    t_start = time.perf_counter()
    image, truth = load_stardist_pair()  # a one-line error says how to fetch it
    rows = []
    picture = None
    for seed in b["seeds"]:
        run_dir = runs_root / f"seg-weight-map-{budget}" / f"map-s{seed}"
        train_run("seg-cells", _common(b, seed), run_dir, progress)
        cfg, net, step = load_segmentation_run(run_dir)
        t0 = time.perf_counter()
        p = foreground_probability(net, image, cfg.segmentation.tile)
        seconds = time.perf_counter() - t0
        fg = p > 0.5
        for method in ("components", "watershed"):
            inst = instances_from_foreground(fg, method)
            rows.append((f"U-Net (seed {seed}), {method}", segmentation_scores(truth, fg, inst)))
            if picture is None and method == "components":
                picture = inst
        rows[-1][1]["seconds"] = seconds
    fg, inst = otsu_watershed(image)
    rows.append(("Otsu + watershed", segmentation_scores(truth, fg, inst)))
    out = results_root / ("seg-real" + ("-small" if budget == "small" else ""))
    out.mkdir(parents=True, exist_ok=True)
    save_comparison([image], [truth], [picture], [inst], out / "stardist_overlay.png")
    table = [
        "| method | Dice | IoU | pixel error | AP@0.5 | precision | recall | pairs separated | cells found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        share = s["separated"] / s["touching_pairs"] if s["touching_pairs"] else float("nan")
        table.append(
            f"| {name} | {_fmt(s['dice'])} | {_fmt(s['iou'])} | {_fmt(s['pixel_error'])} | "
            f"{_fmt(s['ap50'])} | {_fmt(s['precision50'])} | {_fmt(s['recall50'])} | "
            f"{_fmt(share)} ({s['touching_pairs']} pairs) | {s['n_pred']} / {s['n_true']} |"
        )
    (out / "scores.json").write_text(json.dumps(dict(rows), indent=2) + "\n")
    minutes = (time.perf_counter() - t_start) / 60
    return write_page(
        out,
        [
            "# Synthetic to real: the StarDist nuclei image",
            "",
            "The U-Nets of the weight-map experiment (trained on synthetic cells only, "
            f"{b['steps']} steps) segment the real 512x512 fluorescence image that ships in the "
            "`stardist==0.9.2` wheel (`difusion fetch stardist`; 125 annotated nuclei from the "
            "2018 Data Science Bowl). One image: these numbers say how this image went, not how "
            "the method does on nuclei in general.",
            "",
            *table,
            "",
            "![image, truth, U-Net, Otsu + watershed](stardist_overlay.png)",
            "",
            f"Command: `difusion experiment seg-real --budget {budget}` (after "
            f"`difusion fetch stardist`); this page took {minutes:.1f} min on {machine()}.",
        ],
    )


CUSTOM = {
    "seg-weight-map": weight_map_experiment,
    "seg-elastic": elastic_experiment,
    "seg-real": real_experiment,
}
