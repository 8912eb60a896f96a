"""Figures and numbers of docs/latent-variable-models.md, made by the lab's own training loop.

Trains the hierarchical and diffusion-based VAEs of the page on scikit-learn's 8x8 digits (each
skipped if RUNS/NAME already holds a finished run; OMP_NUM_THREADS=1 and train.threads=1, one run at
a time), copies every run's measures.json into docs/results/hvae-digits/results.json with the
command and the training time, writes the table docs/results/hvae-digits/README.md, and draws the
sample grids and the bound of each model term by term. From the repository root:

    OMP_NUM_THREADS=1 python docs/figures/make_hvae_figures.py [--runs runs]

Writes docs/figures/hvae_*.png and docs/results/hvae-digits/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from difusion.config import load_config  # noqa: E402
from difusion.training.loop import train  # noqa: E402

OUT = Path(__file__).resolve().parent
RESULTS = OUT.parent / "results" / "hvae-digits"
RUNS = {  # name: (preset, overrides)
    "hvae-digits": ("hvae-digits", []),
    "hvae-topdown-digits": ("hvae-digits", ["hvae.inference=top-down"]),
    "hvae-vamp-digits": ("hvae-vamp-digits", []),
    "dhvae-digits": ("dhvae-digits", []),
    "dhvae-beta0.2-digits": ("dhvae-digits", ["hvae.beta=0.2"]),
    "dhvae-beta0.9-digits": ("dhvae-digits", ["hvae.beta=0.9"]),
}
GRIDS = ["hvae-digits", "hvae-vamp-digits", "dhvae-digits"]
SEEDS = (1, 2)  # the three presets again with these training seeds: the spread over seeds
RUNS.update(
    {f"{name}-seed{seed}": (name, [f"train.seed={seed}"]) for name in GRIDS for seed in SEEDS}
)


def run_all(runs: Path) -> dict:
    results = {}
    for name, (preset, over) in RUNS.items():
        run = runs / name
        command = " ".join(["difusion train", preset, *over, "--out", str(run)])
        if not (run / "measures.json").is_file():
            start = time.perf_counter()
            train(load_config(preset, over), run, overwrite=True, progress=False)
            print(f"{name}: trained and scored in {time.perf_counter() - start:.0f} s")
        m = json.loads((run / "measures.json").read_text())
        last = (run / "metrics.jsonl").read_text().strip().splitlines()[-1]
        seconds = json.loads(last)["elapsed_s"]  # the training steps alone, as the loop logged
        results[name] = {"command": command, "train_seconds": seconds, "measures": m}
        print(name, json.dumps(m))
    return results


def write_table(results: dict) -> None:
    lines = [
        "# Hierarchical and diffusion-based VAEs on the 8x8 digits",
        "",
        "Test split of scikit-learn's digits (the last 297 images), bits per dimension on the "
        "17-level data (categorical p(x | z1), so the bounds are code lengths of the discrete "
        "images; no dequantization). -ELBO averages 128 draws of q per image; the IWAE bound "
        "(Burda et al. 2016) log-mean-exps the same number of draws. Seed 0 unless named; the "
        "spread over seeds is the second table. The uniform model over 17 levels: 4.087. "
        "The training seconds are the loop's own clock on a 2-core CPU shared with other jobs: "
        "they vary with its load (compare the seeds of one preset).",
        "",
        "Reproduce: `OMP_NUM_THREADS=1 python docs/figures/make_hvae_figures.py --runs runs` "
        "(one `difusion train` per row, the command below; `results.json` holds every run's "
        "`measures.json`).",
        "",
        "| run | command | training s (shared CPU, 1 thread) | -ELBO bits/dim | IWAE bits/dim | "
        "gap | terms (bits/dim) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        m = r["measures"]
        terms = ", ".join(f"{k} {v:.3f}" for k, v in m["terms_bits_per_dim"].items())
        secs = f"{r['train_seconds']:.0f}"
        lines.append(
            f"| {name} | `{r['command']}` | {secs} | {m['test_bits_per_dim']:.3f} | "
            f"{m['test_iwae_bits_per_dim']:.3f} | "
            f"{m['test_bits_per_dim'] - m['test_iwae_bits_per_dim']:.3f} | {terms} |"
        )
    lines += [
        "",
        f"Seed spread: each preset trained with train.seed = 0, {', '.join(map(str, SEEDS))} "
        "(min, mean and max over the three runs):",
        "",
        "| preset | -ELBO min | -ELBO mean | -ELBO max | IWAE min | IWAE mean | IWAE max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in GRIDS:
        rows = [results[name]] + [results[f"{name}-seed{s}"] for s in SEEDS]
        cells = []
        for key in ("test_bits_per_dim", "test_iwae_bits_per_dim"):
            v = [r["measures"][key] for r in rows]
            cells += [f"{min(v):.3f}", f"{sum(v) / len(v):.3f}", f"{max(v):.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (RESULTS / "README.md").write_text("\n".join(lines) + "\n")


def figure_grids(runs: Path) -> None:
    fig, axes = plt.subplots(2, len(GRIDS), figsize=(3.2 * len(GRIDS), 6.6), dpi=120)
    for j, name in enumerate(GRIDS):
        for i, (file, what) in enumerate(
            [("samples.png", "x ~ p(x | z1)"), ("samples_mean.png", "E[x | z1]")]
        ):
            axes[i, j].imshow(Image.open(runs / name / file), cmap="gray")
            axes[i, j].set_title(f"{name}\n{what}", fontsize=8)
            axes[i, j].axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "hvae_samples.png")
    plt.close(fig)


def figure_terms(results: dict) -> None:
    names = [n for n in results if n.startswith("dhvae") and "seed" not in n]
    names.sort(key=lambda n: results[n]["measures"]["beta"])
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    for i, name in enumerate(names):
        m = results[name]["measures"]
        bottom = 0.0
        for k, (term, v) in enumerate(m["terms_bits_per_dim"].items()):
            ax.bar(i, v, bottom=bottom, color=plt.cm.viridis(k / 6), label=term if i == 0 else None)
            bottom += v
        ax.text(i, bottom + 0.03, f"{bottom:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"beta = {results[n]['measures']['beta']:g}" for n in names])
    ax.set_ylabel("test -ELBO, bits/dim")
    ax.set_title("The diffusion-based VAE (T = 5), its bound term by term")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(OUT / "hvae_dhvae_terms.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    results = run_all(args.runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_table(results)
    figure_grids(args.runs)
    figure_terms(results)


if __name__ == "__main__":
    main()
