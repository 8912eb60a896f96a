"""The one in-memory dataset type every source returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    """A whole dataset held in memory as tensors, so loading never throttles training.

    ``data`` is ``(N, C, H, W)`` float32 in [-1, 1] for images, or ``(N, D)`` float32 for points
    (2-D toy data, roughly unit scale). ``labels`` is ``(N,)`` int64 where the source has classes.
    """

    name: str
    data: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"image"`` for (N, C, H, W) data, ``"points"`` for (N, D) data."""
        return "image" if self.data.dim() == 4 else "points"

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. (1, 28, 28) or (2,)."""
        return tuple(self.data.shape[1:])

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None

    def __len__(self) -> int:
        return self.data.shape[0]
