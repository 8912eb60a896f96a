"""Per-image random streams, so that an image depends on its seed and not on the batch it is in."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PerImageNoise:
    """One torch.Generator per image. ``randn(shape)`` returns (N, *shape[1:]) where row i is drawn
    from generator i: image i sees the same x_T and the same z at every step whatever N is."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        shape = tuple(shape)
        if shape[0] != len(self.generators):
            raise ValueError(f"asked for {shape[0]} noise rows but there are {len(self)} seeds")
        rows = [torch.randn(shape[1:], generator=g) for g in self.generators]
        return torch.stack(rows).to(self.device)

    __call__ = randn


def seeds_for(n: int, seed: int = 0) -> list[int]:
    """The seeds of images 0..n-1 of a sampling run with base seed ``seed``: seed + i."""
    return [seed + i for i in range(n)]
