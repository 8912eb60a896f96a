"""Figures and numbers of docs/normalizing-flows.md, made by the lab's own training loop.

Trains the three presets (each skipped if RUNS/NAME already holds a finished run), then copies
their pictures here and prints each run's measures.json. From the repository root:

    python docs/figures/make_nflow_figures.py [--runs runs]

Writes docs/figures/nflow_*.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from difusion.config import load_config
from difusion.training.loop import train

OUT = Path(__file__).resolve().parent
FIGURES = {
    "realnvp-toy2d": {"density.png": "nflow_toy2d_density.png",
                      "samples_scatter.png": "nflow_toy2d_samples.png"},
    "realnvp-digits": {"samples.png": "nflow_realnvp_digits_samples.png"},
    "idf-digits": {"samples.png": "nflow_idf_digits_samples.png"},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    for preset, pictures in FIGURES.items():
        run = args.runs / preset
        if not (run / "measures.json").is_file():
            start = time.perf_counter()
            train(load_config(preset), run, overwrite=True, progress=False)
            print(f"{preset}: trained in {time.perf_counter() - start:.0f} s")
        for source, target in pictures.items():
            shutil.copyfile(run / source, OUT / target)
        m = json.loads((run / "measures.json").read_text())
        print(preset, json.dumps(m))


if __name__ == "__main__":
    main()
