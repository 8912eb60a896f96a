"""The U-Net of Ronneberger, Fischer & Brox 2015 ("U-Net: Convolutional Networks for Biomedical
Image Segmentation", Fig. 1), for segmentation.

Contracting path: per level two unpadded 3x3 convolutions, each followed by a ReLU, then a 2x2 max
pool with stride 2; the channels double at every level, 64 -> 128 -> 256 -> 512 -> 1024 in the
paper (``base_channels=64, depth=4``). Expanding path: a 2x2 up-convolution that halves the
channels, concatenation with the centre crop of the contracting path's feature map at that level
("crop-and-concatenate": unpadded convolutions lose a border of 2 px per convolution), two 3x3
convolutions + ReLU. A final 1x1 convolution maps to the class scores. With valid convolutions a
572x572 tile gives a 388x388 output (Sec. 2); :func:`output_size` and :func:`legal_input_sizes`
expose that arithmetic. ``padding="same"`` gives the variant most later code uses (output size =
input size, no crop needed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from difusion.errors import DifusionError

PADDINGS = ("valid", "same")


def output_size(n: int, depth: int = 4, padding: str = "valid") -> int:
    """Output side of the U-Net for an input side ``n`` (Ronneberger et al. 2015, Sec. 2).

    Valid: each 3x3 convolution removes 2 px, each pool halves (the size must be even there), each
    up-convolution doubles; ``572 -> 388`` for ``depth=4``. Same: ``n`` itself (``n`` must be a
    multiple of ``2**depth``). Raises :class:`DifusionError` (one line, naming the nearest legal
    sizes) for an illegal ``n``.
    """
    if padding == "same":
        if n <= 0 or n % 2**depth:
            lo = max(2**depth, n // 2**depth * 2**depth)
            raise DifusionError(
                f"input size {n} is illegal for the same-padding U-Net of depth {depth}: it must "
                f"be a multiple of {2**depth} (e.g. {lo} or {lo + 2**depth})"
            )
        return n
    _check_padding(padding)
    out = _valid_trace(n, depth)
    if out is None:
        raise _illegal(n, depth)
    return out


def _valid_trace(n: int, depth: int) -> int | None:
    """Follow a side ``n`` through the valid U-Net; None where a pool meets an odd size or a
    feature map vanishes."""
    s = n
    for _ in range(depth):
        s -= 4  # two unpadded 3x3 convolutions
        if s <= 0 or s % 2:
            return None
        s //= 2  # 2x2 max pool, stride 2
    s -= 4  # the bottom level's two convolutions
    for _ in range(depth):
        if s <= 0:
            return None
        s = 2 * s - 4  # 2x2 up-convolution, then two 3x3 convolutions
    return s if s > 0 else None


def input_for_bottom(b: int, depth: int) -> int:
    """Input side whose bottom feature map (after its two convolutions) has side ``b``:
    ``2**depth * (b + 4) + 4 * (2**depth - 1)`` (invert ``s -> (s - 4) / 2`` ``depth`` times)."""
    return 2**depth * (b + 4) + 4 * (2**depth - 1)


def legal_input_sizes(depth: int = 4, up_to: int = 1024, padding: str = "valid") -> list[int]:
    """All legal input sides ``<= up_to``; for the valid U-Net they step by ``2**depth``."""
    if padding == "same":
        return list(range(2**depth, up_to + 1, 2**depth))
    _check_padding(padding)
    inputs = range(input_for_bottom(1, depth), up_to + 1, 2**depth)  # bottom sides b = 1, 2, ...
    return [n for n in inputs if _valid_trace(n, depth) is not None]


def nearest_legal_input(n: int, depth: int = 4, padding: str = "valid") -> int:
    """The smallest legal input side ``>= n`` (for tiles whose output must cover ``n`` pixels)."""
    for m in legal_input_sizes(depth, max(n, 8) + 2 ** (depth + 3), padding):
        if m >= n:
            return m
    raise DifusionError(f"no legal input size near {n} for depth {depth}")  # pragma: no cover


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise DifusionError(f"padding must be valid or same, got {padding!r}")


def _illegal(n: int, depth: int) -> DifusionError:
    sizes = legal_input_sizes(depth, max(n, 0) + 2 ** (depth + 2) + input_for_bottom(1, depth))
    below = [m for m in sizes if m < n][-1:]
    above = [m for m in sizes if m > n][:1]
    near = " or ".join(str(m) for m in below + above)
    return DifusionError(
        f"input size {n} is illegal for the valid-convolution U-Net of depth {depth} (every "
        f"max-pool needs an even size and the output must be non-empty); use {near}, "
        f"legal sizes are {sizes[0]}, {sizes[0] + 2**depth}, ... in steps of {2**depth}"
    )


def center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The centre ``size`` window of ``x`` (N, C, H, W): the "crop" of crop-and-concatenate."""
    h, w = x.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (Fig. 1's blue arrows); unpadded if valid."""

    def __init__(self, c_in: int, c_out: int, padding: str, norm: bool) -> None:
        pad = 0 if padding == "valid" else 1
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers.append(nn.Conv2d(c, c_out, 3, padding=pad, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNetSeg(nn.Module):
    """Ronneberger et al. 2015, Fig. 1: logits ``(N, num_classes, H', W')`` of an image.

    Args:
        in_channels: image channels (1 for the paper's grey-value microscopy images).
        num_classes: output classes of the final 1x1 convolution (2: background, cell).
        base_channels: channels of the first level (64 in the paper); level ``k`` has
            ``base_channels * 2**k``.
        depth: number of max-pools (4 in the paper: 64 ... 1024 channels).
        padding: ``valid`` (the paper: unpadded convolutions, output smaller than input) or
            ``same`` (zero padding, output = input).
        dropout: dropout at the end of the contracting path (Sec. 3.1; 0 = none).
        batch_norm: batch normalisation after each convolution (not in the paper; off).

    Weights are drawn from a Gaussian with std ``sqrt(2 / N)``, ``N`` the fan-in (Sec. 3).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = 4,
        padding: str = "valid",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        _check_padding(padding)
        if depth < 1 or base_channels < 1:
            raise DifusionError(
                f"depth and base_channels must be >= 1, got {depth}, {base_channels}"
            )
        self.depth, self.padding = depth, padding
        self.in_channels, self.num_classes = in_channels, num_classes
        widths = [base_channels * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(c, w, padding, batch_norm))
            c = w
        self.bottom = DoubleConv(c, widths[-1], padding, batch_norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up_convs = nn.ModuleList()
        self.up = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up_convs.append(nn.ConvTranspose2d(w_low, w, kernel_size=2, stride=2))
            self.up.append(DoubleConv(2 * w, w, padding, batch_norm))  # skip + upsampled
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] * 4
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))  # Sec. 3: std sqrt(2/N)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def output_size(self, n: int) -> int:
        """Output side for input side ``n`` (:func:`output_size`)."""
        return output_size(n, self.depth, self.padding)

    def margin(self, n: int) -> int:
        """Pixels lost on each side: ``(n - output_size(n)) / 2`` (92 for 572 -> 388)."""
        return (n - self.output_size(n)) // 2

    def forward(self, x: Tensor) -> Tensor:
        """Class scores of ``x`` ``(N, C, H, W)``; an illegal ``H`` or ``W`` is a one-line error."""
        for n in x.shape[-2:]:
            self.output_size(int(n))
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)  # 2x2 max pool, stride 2
        h = self.dropout(self.bottom(h))
        for up_conv, block in zip(self.up_convs, self.up, strict=True):
            h = up_conv(h)  # 2x2 up-convolution halving the channels
            skip = center_crop(skips.pop(), (h.shape[-2], h.shape[-1]))
            h = block(torch.cat([skip, h], dim=1))  # crop-and-concatenate
        return self.head(h)  # 1x1 convolution to the class scores


__all__ = [
    "UNetSeg",
    "center_crop",
    "input_for_bottom",
    "legal_input_sizes",
    "nearest_legal_input",
    "output_size",
]
