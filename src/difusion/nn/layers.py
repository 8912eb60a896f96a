"""Building blocks of the denoising networks: time embedding, residual block, attention, resampling.

The blocks follow the DDPM U-Net (Ho et al. 2020, "Denoising Diffusion Probabilistic Models",
App. B), which is a PixelCNN++-style U-Net with a Transformer time embedding, plus the
"scale-shift" conditioning of Nichol & Dhariwal 2021 ("Improved DDPM") and Dhariwal & Nichol
2021 ("Diffusion Models Beat GANs", the ADM architecture).

Shapes: images are ``(N, C, H, W)``, timesteps ``t`` are ``(N,)``, embeddings ``(N, emb_dim)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --------------------------------------------------------------------------------------------
# Timestep and class embeddings
# --------------------------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of the timesteps ``t`` (Vaswani et al. 2017, Sec. 3.5; DDPM Sec. 4).

    For ``half = dim // 2`` frequencies ``f_k = exp(-ln(max_period) * k / half)``, ``k < half``::

        emb(t) = [cos(t * f_0), ..., cos(t * f_{half-1}), sin(t * f_0), ..., sin(t * f_{half-1})]

    The frequencies run geometrically from 1 down to (almost) ``1 / max_period``, so integer
    steps ``t`` in 0..999 and continuous ``t`` are both embedded; for ``t`` in [0, 1] only the
    fastest frequencies vary much, so scale ``t`` up (e.g. by 1000) before calling.

    Args:
        t: ``(N,)`` timesteps, integer or float.
        dim: embedding size; an odd ``dim`` gets a final column of zeros.
        max_period: the longest period, 10000 as in the Transformer.

    Returns:
        ``(N, dim)`` float32 tensor.
    """
    if t.dim() != 1:
        raise ValueError(f"timestep_embedding expects t of shape (N,), got {tuple(t.shape)}")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    frequencies = torch.exp(-math.log(max_period) * k / half)  # f_k, shape (half,)
    angles = t.float()[:, None] * frequencies[None, :]  # t * f_k, shape (N, half)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))  # one zero column
    return emb


class TimeEmbedding(nn.Module):
    """``t -> sinusoid(t) -> Linear -> SiLU -> Linear`` (DDPM App. B: ``ch -> 4 ch -> 4 ch``)."""

    def __init__(self, base_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.base_channels = base_channels
        self.mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.base_channels))


class ClassEmbedding(nn.Module):
    """A learned vector per class, plus one extra "null" class meaning "no label".

    Class ``num_classes`` is the null class (the empty condition of classifier-free guidance,
    Ho & Salimans 2022): ``y=None`` embeds every example as null, and a trainer can drop labels by
    setting some entries of ``y`` to ``num_classes``.
    """

    def __init__(self, num_classes: int, emb_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes + 1, emb_dim)

    def forward(self, y: Tensor | None, batch_size: int) -> Tensor:
        if y is None:  # the null class for every example
            y = torch.full((batch_size,), self.num_classes, device=self.embedding.weight.device)
        return self.embedding(y)


class ConditionEmbedding(nn.Module):
    """The conditioning vector ``emb = TimeEmbedding(t) [+ ClassEmbedding(y)]`` of a denoiser.

    With ``num_classes=None`` the network is unconditional and passing labels is an error; with
    ``num_classes=K``, ``y=None`` means the null class ``K`` for every example.
    """

    def __init__(self, base_channels: int, emb_dim: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.time_embed = TimeEmbedding(base_channels, emb_dim)
        self.class_embed = None if num_classes is None else ClassEmbedding(num_classes, emb_dim)

    def forward(self, t: Tensor, y: Tensor | None, batch_size: int) -> Tensor:
        if t.dim() == 0:
            t = t.expand(batch_size)  # one timestep for the whole batch
        emb = self.time_embed(t)
        if self.class_embed is not None:
            emb = emb + self.class_embed(y, batch_size)
        elif y is not None:
            raise ValueError(
                "class labels y were given, but this network was built with num_classes=None; "
                "build it with num_classes=K to condition on K classes"
            )
        return emb


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def num_groups(channels: int, max_groups: int = 32) -> int:
    """The largest divisor of ``channels`` that is at most ``max_groups``."""
    return max(g for g in range(1, min(channels, max_groups) + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (Wu & He 2018) with 32 groups as in DDPM, or fewer if 32 does not divide."""
    return nn.GroupNorm(num_groups(channels), channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Set all parameters of ``module`` to zero, so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


# --------------------------------------------------------------------------------------------
# Residual block and attention
# --------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Residual block conditioned on an embedding ``emb`` (of time, and optionally class).

    ``x -> GroupNorm -> SiLU -> Conv3x3 -> (+ emb) -> GroupNorm -> SiLU -> Dropout -> Conv3x3``,
    added to ``x`` (through a 1x1 conv when the channel count changes).

    The embedding is injected in one of two ways:

    * additive (DDPM): ``h = h + Linear(SiLU(emb))`` before the second GroupNorm;
    * scale-shift (``use_scale_shift_norm=True``, Improved DDPM / ADM, "AdaGN"):
      ``h = GroupNorm(h) * (1 + scale) + shift`` with ``(scale, shift) = Linear(SiLU(emb))``.

    The last conv is zero-initialised, so the block starts as its skip path.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
    ) -> None:
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, emb_out))
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))
        if in_channels == out_channels:
            self.skip: nn.Module = nn.Identity()
        else:
            self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb_proj(emb)[:, :, None, None]  # (N, C or 2C, 1, 1)
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions of a feature map, with a residual.

    DDPM uses it at the 16x16 resolution (App. B; single-head, as in PixelSNAIL / SAGAN);
    ADM uses several heads. ``x + proj(Attention(GroupNorm(x)))`` with a zero-initialised
    ``proj``, so the block starts as the identity.
    """

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide channels={channels}")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)  # q, k, v: 1x1 "NIN" layers
        self.proj = zero_init(nn.Conv2d(channels, channels, kernel_size=1))

    def attend(self, x: Tensor) -> Tensor:
        """``softmax(q k^T / sqrt(d)) v`` per head, before the output projection."""
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x))  # (N, 3C, H, W)
        # -> (3, N, heads, H*W, C/heads): positions become the sequence dimension
        qkv = qkv.reshape(n, 3, self.num_heads, c // self.num_heads, h * w).permute(1, 0, 2, 4, 3)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, H*W, C/heads)
        return out.permute(0, 1, 3, 2).reshape(n, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(self.attend(x))


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv (rounding up: 28 -> 14 -> 7 -> 4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to an exact ``size``, then a 3x3 conv.

    Taking the target size (the size of the matching skip connection) instead of a factor 2
    makes odd sizes work: 4 -> 7 -> 14 -> 28.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


# --------------------------------------------------------------------------------------------
# Utilities
# --------------------------------------------------------------------------------------------


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
