"""Figures and numbers of docs/energy-based-models.md, made by the lab's own training loop.

Trains the page's runs (each skipped if RUNS/NAME already holds a finished run; OMP_NUM_THREADS=1
and train.threads=1, one run at a time): the presets ebm-toy2d (contrastive divergence), dsm-toy2d
and dsm-digits (denoising score matching) with training seeds 0, 1, 2; ebm-toy2d without its
Gaussian reference (ebm.base_std=0); and the DDPM preset toy2d, whose eps-network is then sampled by
annealed Langevin on the score -eps / sigma. Writes docs/results/ebm/results.json (every run's
measures.json, the command and the training seconds) and README.md, and docs/figures/ebm_*.png.
From the repository root:

    OMP_NUM_THREADS=1 python docs/figures/make_ebm_figures.py [--runs runs]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from difusion.config import load_config  # noqa: E402
from difusion.ebm import load_ebm  # noqa: E402
from difusion.ebm.ddpm_score import data_scale_sigmas, ddpm_langevin, times_for_sigmas  # noqa: E402
from difusion.ebm.energy import energy_score  # noqa: E402
from difusion.ebm.langevin import annealed_langevin, geometric_sigmas, langevin_step  # noqa: E402
from difusion.ebm.models import sigmas_of  # noqa: E402
from difusion.ebm.score import level_score, tweedie_denoise  # noqa: E402
from difusion.ebm.scoring import start_noise, test_data, train_data  # noqa: E402
from difusion.metrics.two_d import sliced_wasserstein  # noqa: E402
from difusion.runs import load_run  # noqa: E402
from difusion.training.loop import train  # noqa: E402

OUT = Path(__file__).resolve().parent
RESULTS = OUT.parent / "results" / "ebm"
PRESETS = ["ebm-toy2d", "dsm-toy2d", "dsm-digits"]
SEEDS = (1, 2)
RUNS = {name: (name, []) for name in PRESETS}
RUNS.update({f"{p}-seed{s}": (p, [f"train.seed={s}"]) for p in PRESETS for s in SEEDS})
RUNS["ebm-toy2d-no-reference"] = ("ebm-toy2d", ["ebm.base_std=0"])
DDPM = ("ddpm-toy2d", "toy2d", ["train.threads=1"])  # run name, preset, overrides
# annealed Langevin on the DDPM eps-network: the DDPM times nearest to a geometric ladder of
# sigma_t / alpha_t from 3 down to the smallest the T = 200 schedule has (t = 1)
DDPM_LADDER = (3.0, 20)  # sigma_max, levels


def train_runs(runs: Path) -> dict:
    results = {}
    todo = {**RUNS, DDPM[0]: (DDPM[1], DDPM[2])}
    for name, (preset, over) in todo.items():
        run = runs / name
        command = " ".join(["difusion train", preset, *over, "--out", str(run)])
        if not (run / "report.md").is_file():
            start = time.perf_counter()
            train(load_config(preset, over), run, overwrite=True, progress=False)
            print(f"{name}: trained in {time.perf_counter() - start:.0f} s")
        last = (run / "metrics.jsonl").read_text().strip().splitlines()[-1]
        entry = {"command": command, "train_seconds": json.loads(last)["elapsed_s"]}
        if (run / "measures.json").is_file():
            entry["measures"] = json.loads((run / "measures.json").read_text())
        results[name] = entry
        print(name, json.dumps(entry))
    return results


def seed_spread(results: dict) -> dict:
    out = {}
    for p in PRESETS:
        vals = [
            results[n]["measures"]["sliced_w1_samples"]
            for n in [p] + [f"{p}-seed{s}" for s in SEEDS]
        ]
        out[p] = {"min": min(vals), "mean": sum(vals) / len(vals), "max": max(vals)}
    return out


def ddpm_langevin_measures(runs: Path, fig_path: Path) -> dict:
    """Annealed Langevin on the DDPM run's eps-network read as a score, next to its own ancestral
    sampler: both 2000 samples against the test points."""
    run = load_run(runs / DDPM[0])
    cfg = run.config
    path, denoiser = run.path, run.model.denoiser()
    sigma_min = path.alpha_sigma(1)[1] / path.alpha_sigma(1)[0]
    times = times_for_sigmas(path, geometric_sigmas(DDPM_LADDER[0], sigma_min, DDPM_LADDER[1]))
    sigmas = data_scale_sigmas(path, times)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2000, 2, generator=g) * float(sigmas[0])
    eps = 2e-5 * (float(sigmas[-1]) / 0.01) ** 2  # Song & Ermon's eps at sigma_L = 0.01, rescaled
    start = time.perf_counter()
    x = ddpm_langevin(denoiser, path, times, x0, eps, 50, g)
    seconds = time.perf_counter() - start
    test = test_data(load_config("dsm-toy2d"))
    gen = torch.Generator().manual_seed(1)
    rows = test[torch.randperm(len(test), generator=gen)[:2000]]
    import numpy as np

    ancestral = torch.from_numpy(np.load(runs / DDPM[0] / "samples.npz")["points"]).float()
    out = {
        "what": "sliced W1 to 2000 random test points; annealed Langevin on -eps_hat / sigma in the "
        f"data's scale, {len(times)} DDPM times, 50 steps each, eps {eps:.3g}",
        "times": times,
        "sigma_max": float(sigmas[0]),
        "sigma_min": float(sigmas[-1]),
        "sliced_w1_langevin": sliced_wasserstein(x, rows),
        "sliced_w1_ddpm_ancestral": sliced_wasserstein(ancestral[:2000], rows),
        "langevin_seconds": round(seconds, 1),
        "ddpm_steps": cfg.diffusion.T,
    }
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=120)
    for ax, pts, title in [
        (axes[0], ancestral, f"DDPM ancestral, {cfg.diffusion.T} steps"),
        (axes[1], x, f"annealed Langevin on -eps/sigma, {len(times)} x 50 steps"),
    ]:
        ax.scatter(*rows.T, s=1, c="0.75")
        ax.scatter(*pts[:2000].T, s=1, c="C1")
        ax.set(xlim=(-3, 3), ylim=(-3, 3), title=title, aspect="equal")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(fig_path)
    plt.close(fig)
    return out


def energy_figure(runs: Path, fig_path: Path) -> None:
    """The learned energy on a grid with a few SGLD chains from noise, the samples, and the run
    without the Gaussian reference."""
    model = load_ebm(runs / "ebm-toy2d")
    cfg = model.config
    lim = 3.0
    u = torch.linspace(-lim, lim, 121)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        energy = model(grid).reshape(121, 121)
    g = torch.Generator().manual_seed(0)
    x = start_noise(cfg, 12, 2, g)
    chains = [x]
    score = energy_score(model)
    for _ in range(cfg.ebm.sample_steps):
        x = langevin_step(x, score(x), cfg.ebm.step_size, g)
        chains.append(x)
    chains = torch.stack(chains, 1)
    data = train_data(cfg)[
        torch.randperm(8000, generator=torch.Generator().manual_seed(0))[:3000]
    ]  # the moons are ordered
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), dpi=120)
    ax = axes[0]
    ax.contourf(u, u, (energy - energy.min()).clamp(max=30), levels=30, cmap="viridis")
    for c in chains:
        ax.plot(c[:, 0], c[:, 1], lw=0.6, c="w")
        ax.plot(c[-1, 0], c[-1, 1], "o", ms=3, c="C1")
    ax.set(title="E(x) - min E (clipped at 30) and 12 SGLD chains", aspect="equal")
    for ax, name, title in [
        (axes[1], "ebm-toy2d", f"samples: {cfg.ebm.sample_steps} SGLD steps from noise"),
        (axes[2], "ebm-toy2d-no-reference", "the same without the N(0, I) reference"),
    ]:
        pts = torch.from_numpy(__import__("numpy").load(runs / name / "samples.npz")["samples"])
        ax.scatter(*data.T, s=1, c="0.75")
        ax.scatter(*pts.T, s=1, c="C1")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal")
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(fig_path)
    plt.close(fig)


def score_figure(runs: Path, fig_path: Path) -> None:
    """The learned score field s(x, sigma) at three noise levels, and annealed Langevin's chains."""
    model = load_ebm(runs / "dsm-toy2d")
    cfg = model.config
    sigmas = sigmas_of(cfg)
    u = torch.linspace(-3, 3, 21)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
    data = train_data(cfg)[
        torch.randperm(8000, generator=torch.Generator().manual_seed(0))[:3000]
    ]  # the moons are ordered
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), dpi=120)
    for ax, i in zip(axes[:3], [0, len(sigmas) // 2, len(sigmas) - 4], strict=True):
        sigma = float(sigmas[i])
        with torch.no_grad():
            s = model(grid, torch.full((len(grid),), sigma)) * sigma  # sigma s: unit scale
        ax.scatter(*data.T, s=1, c="0.75")
        ax.quiver(grid[:, 0], grid[:, 1], s[:, 0], s[:, 1], color="C0", angles="xy")
        ax.set(title=f"sigma s(x, sigma) at sigma = {sigma:.3g}", aspect="equal")
    trace: list = []
    g = torch.Generator().manual_seed(0)
    x = start_noise(cfg, 500, 2, g)
    score = level_score(model, sigmas)
    x = annealed_langevin(score, x, sigmas, cfg.ebm.sample_eps, cfg.ebm.sample_steps, g, trace)
    ax = axes[3]
    for i, pts in enumerate(trace[::3] + [trace[-1]]):
        ax.scatter(*pts.T, s=1, alpha=0.6, label=f"after level {min(3 * i, len(trace) - 1) + 1}")
    ax.set(xlim=(-3, 3), ylim=(-3, 3), title="annealed Langevin: the chains level by level",
           aspect="equal")  # fmt: skip
    ax.legend(fontsize=6, markerscale=4)
    for a in axes:
        a.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(fig_path)
    plt.close(fig)


def digits_figure(runs: Path, fig_path: Path) -> None:
    """Annealed Langevin on the digits: 10 chains (rows) at the end of every third level, then the
    Tweedie step."""
    model = load_ebm(runs / "dsm-digits")
    cfg = model.config
    sigmas = sigmas_of(cfg)
    g = torch.Generator().manual_seed(0)
    x = start_noise(cfg, 10, 64, g)
    trace: list = []
    score = level_score(model, sigmas)
    x = annealed_langevin(score, x, sigmas, cfg.ebm.sample_eps, cfg.ebm.sample_steps, g, trace)
    final = tweedie_denoise(score(x, len(sigmas) - 1), x, float(sigmas[-1]))
    columns = [0, 5, 10, 15, 20, 25, len(sigmas) - 1]
    fig, axes = plt.subplots(10, len(columns) + 1, figsize=(len(columns) + 1, 10.4), dpi=100)
    for r in range(10):
        for c, level in enumerate(columns):
            axes[r, c].imshow(
                trace[level][r].reshape(8, 8).clamp(-1, 1), cmap="gray", vmin=-1, vmax=1
            )
            if r == 0:
                axes[r, c].set_title(f"sigma {float(sigmas[level]):.2g}", fontsize=7)
        axes[r, -1].imshow(final[r].reshape(8, 8).clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        if r == 0:
            axes[r, -1].set_title("Tweedie", fontsize=7)
    for a in axes.flat:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(fig_path)
    plt.close(fig)


def write_readme(results: dict, spread: dict, ddpm: dict) -> None:
    lines = [
        "# Energy-based models and score matching",
        "",
        "Sliced Wasserstein-1 distance (256 random directions) of each run's samples to as many "
        "random test points, next to two yardsticks of the same size: train points against test "
        "points (the floor a perfect sampler would reach, up to sampling noise) and the chains' "
        "starting noise against test points. toy2d: two moons, 2000 samples; digits: the 297 test "
        "images as 64-vectors on [-1, 1]. Training seconds: the loop's own clock on a 2-core CPU "
        "shared with other jobs (1 thread). Seeds 0, 1, 2 for each preset (the spread below); the "
        "sampling seed is 0 throughout. The toy2d points are generated from the training seed, so "
        "the moons (and their floor) differ a little between seeds.",
        "",
        "Reproduce: `OMP_NUM_THREADS=1 python docs/figures/make_ebm_figures.py --runs runs` "
        "(`results.json` holds every run's `measures.json` and its command).",
        "",
        "| run | command | training s | sliced W1 samples | floor (train vs test) | start noise |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "measures" not in r:
            continue
        m = r["measures"]
        lines.append(
            f"| {name} | `{r['command']}` | {r['train_seconds']:.0f} | "
            f"{m['sliced_w1_samples']:.3f} | {m['sliced_w1_data_floor']:.3f} | "
            f"{m['sliced_w1_start_noise']:.3f} |"
        )
    lines += ["", "Seed spread of the samples' sliced W1 (train.seed = 0, 1, 2):", "",
              "| preset | min | mean | max |", "|---|---|---|---|"]  # fmt: skip
    for p, s in spread.items():
        lines.append(f"| {p} | {s['min']:.3f} | {s['mean']:.3f} | {s['max']:.3f} |")
    lines += [
        "",
        f"The DDPM run `{results[DDPM[0]]['command']}` ({ddpm['ddpm_steps']} steps) sampled two "
        "ways, 2000 samples each against 2000 random test points: its own ancestral sampler, "
        f"sliced W1 {ddpm['sliced_w1_ddpm_ancestral']:.3f}; annealed Langevin on its eps-network "
        f"read as the score -eps / sigma ({len(ddpm['times'])} levels sigma_t / alpha_t from "
        f"{ddpm['sigma_max']:.2f} to {ddpm['sigma_min']:.3f}, 50 steps each), sliced W1 "
        f"{ddpm['sliced_w1_langevin']:.3f}.",
        "",
    ]
    (RESULTS / "README.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = train_runs(args.runs)
    spread = seed_spread(results)
    ddpm = ddpm_langevin_measures(args.runs, OUT / "ebm_ddpm_langevin.png")
    energy_figure(args.runs, OUT / "ebm_energy_toy2d.png")
    score_figure(args.runs, OUT / "ebm_score_field.png")
    digits_figure(args.runs, OUT / "ebm_digits_annealed.png")
    payload = {"runs": results, "seed_spread_sliced_w1": spread, "ddpm_langevin": ddpm}
    (RESULTS / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    write_readme(results, spread, ddpm)
    print(f"written: {RESULTS / 'results.json'}, {RESULTS / 'README.md'}, {OUT}/ebm_*.png")


if __name__ == "__main__":
    main()
