"""Where the segmentation images come from: synthetic cells (the default, no download), the real
StarDist pair, or the 2018 Data Science Bowl nuclei from StarDist's ``dsb2018.zip``."""

from __future__ import annotations

import numpy as np

from difusion.config import SEGMENTATION_SOURCES as SOURCES
from difusion.errors import ConfigError

EVAL_SOURCES = ("synthetic", "stardist", "dsb2018-sample", "dsb2018")


def load_images(
    source: str, split: str, n: int, size: int = 192, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(images, instance masks)``: ``n`` of them from ``source``.

    ``synthetic``: train images from ``seed``, test images from ``seed + 1`` (disjoint).
    ``stardist`` / ``dsb2018-sample``: the single real 512x512 pair (whatever ``split``).
    ``dsb2018``: the first ``n`` images of the archive's train or test split.
    """
    if source == "synthetic":
        from difusion.data.cells import synthetic_set

        x, y = synthetic_set(n, size, seed if split == "train" else seed + 1)
        return list(x), list(y)
    if source in ("stardist", "dsb2018-sample"):
        from difusion.data.stardist_wheel import load_stardist_pair

        img, mask = load_stardist_pair()
        return [img], [mask]
    if source == "dsb2018":
        from difusion.data.dsb2018 import load_dsb2018

        rows = load_dsb2018(split, limit=n)
        return [r[1] for r in rows], [r[2] for r in rows]
    raise ConfigError(
        f"unknown segmentation data {source!r}; choose one of: {', '.join(EVAL_SOURCES)}"
    )


__all__ = ["EVAL_SOURCES", "SOURCES", "load_images"]
