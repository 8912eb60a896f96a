"""Checkpoints of the training loop; the format lives in :mod:`difusion.checkpoint` (a bottom
utility, so that the layers below training can read a run back)."""

from difusion.checkpoint import (
    CHECKPOINT,
    FORMAT,
    load_checkpoint,
    load_module,
    restore_optimizer,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINT",
    "FORMAT",
    "load_checkpoint",
    "load_module",
    "restore_optimizer",
    "save_checkpoint",
]
