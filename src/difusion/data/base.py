"""The one in-memory dataset type every source returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from difusion.errors import DifusionError


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


def check_image_options(name: str, image_size: int | None, channels: int | None) -> None:
    """Refuse an ``image_size`` that is not a positive integer and ``channels`` other than 1 or 3."""
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise DifusionError(f"{name}: image_size must be a positive integer, got {image_size!r}.")
    if channels is not None and channels not in (1, 3):
        raise DifusionError(f"{name}: channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")


def pixels_to_tensor(images: np.ndarray) -> torch.Tensor:
    """8-bit pixels 0..255 as float32 in [-1, 1]: ``x / 255 * 2 - 1``, done in place on the copy."""
    pixels = images.astype(np.float32)
    pixels /= 127.5
    pixels -= 1.0
    return torch.from_numpy(pixels)
