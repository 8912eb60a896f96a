"""Animated GIFs of the reverse process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from difusion.files import atomic_path


def save_gif(
    frames: list[np.ndarray], path: str | Path, seconds: float = 4.0, hold: float = 1.5
) -> Path:
    """Write uint8 RGB frames as a looping GIF lasting ``seconds``, holding the last frame ``hold`` s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    per_frame = max(20, int(1000 * seconds / max(1, len(frames))))
    durations = [per_frame] * (len(images) - 1) + [int(1000 * hold)]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
            optimize=False,
        )
    return path
