"""The learning-rate plan: linear warm-up, then cosine decay over the run's progress in [0, 1]."""

from __future__ import annotations

import math


def lr_factor(step: int, progress: float, warmup_steps: int, min_ratio: float) -> float:
    """warm-up min(1, (step + 1) / warmup) times a cosine from 1 down to ``min_ratio`` at progress 1.

    ``progress`` is the fraction of the run done, in steps or in wall-clock time, so a run with a
    time budget reaches the end of its schedule exactly when the time is up.
    """
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    p = min(max(progress, 0.0), 1.0)
    return warm * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))
