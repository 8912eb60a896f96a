"""Make docs/figures/explorer-segmentation.png: what the explorer's Segmentation (U-Net) tab shows,
drawn by the functions the tab calls (``difusion.app.explorer.segmentation_image`` and
``segmentation_view``), for a synthetic cells image.

Run from the repository root:

    python docs/figures/make_explorer_segmentation.py            # trains a small run first
    python docs/figures/make_explorer_segmentation.py RUN_DIR    # or shows a run of yours

Without RUN_DIR it trains the seg-cells preset with an 8-channel, depth-2 U-Net (tiles 92 -> 52)
for 150 steps into /tmp/difusion-seg-figure (about three minutes on a busy 2-core CPU). Seeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from difusion.app import explorer as ex  # noqa: E402
from difusion.viz import save_figure  # noqa: E402

HERE = Path(__file__).resolve().parent
SMALL = [
    "train.steps=150",
    "train.minutes=null",
    "segmentation.base_channels=8",
    "segmentation.depth=2",
    "segmentation.tile=92",
    "segmentation.n_train=10",
    "segmentation.n_test=2",
    "segmentation.image_size=128",
    "segmentation.eval_real=false",
]


def small_run() -> Path:
    from difusion.config import load_config
    from difusion.training.loop import train

    out = Path("/tmp/difusion-seg-figure")
    if (out / "checkpoint.safetensors").is_file():
        return out
    return train(load_config("seg-cells", SMALL), out, progress=False).run_dir


def main() -> Path:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else small_run()
    registry = ex.RunRegistry([run_dir])
    image, truth = ex.segmentation_image("synthetic cells", seed=7, size=160)
    view = ex.segmentation_view(registry, str(run_dir), image, truth)
    print(view.summary)
    panels = [
        ("input (synthetic cells, seed 7)", view.input),
        ("p(cell | x), overlap-tile", view.probability_map),
        ("weight map w(x) of the truth (Eq. 2)", view.weight_map),
        (f"instances: {int(view.instances.max())} cells", view.instances_map),
        ("tiles: output (solid), input (dashed)", view.tiles_map),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, picture) in zip(axes, panels, strict=True):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return save_figure(fig, HERE / "explorer-segmentation.png", dpi=90)


if __name__ == "__main__":
    print(main())
