"""The DDPM U-Net (Ho et al. 2020, App. B), with the class conditioning and AdaGN of ADM.

A PixelCNN++-like U-Net (Salimans et al. 2017; Ronneberger et al. 2015) that maps a noisy
image ``x_t`` and its timestep ``t`` to an image of the same shape (e.g. the noise ``eps``):

* ``len(channel_mult)`` resolution levels; level ``i`` has ``base_channels * channel_mult[i]``
  channels and ``num_res_blocks`` residual blocks, each followed by self-attention if
  ``i in attention_levels``; every level but the last ends with a stride-2 downsample.
* a middle block ResBlock -> SelfAttention -> ResBlock at the lowest resolution.
* a mirrored up path with ``num_res_blocks + 1`` blocks per level: each block takes the
  concatenation of the current features with one skip connection popped from the down path.

* optionally a space-to-depth input (``patch_size`` p > 1): each p x p patch of pixels becomes
  p^2 channels at 1/p of the resolution (``pixel_unshuffle``), and the output is folded back
  (``pixel_shuffle``). This is the invertible downsampling that simple diffusion (Hoogeboom et
  al. 2023) uses to keep feature maps small, and DiT's patchify with a linear patch
  embedding replaced by the first convolution. No information is lost; the full-resolution level
  is skipped, which is most of a small U-Net's cost.

With ``base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_levels=(1,)``
(16x16 of a 32x32 image), ``dropout=0.1, use_scale_shift_norm=False`` this is DDPM's CIFAR-10
model (35.7M parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from difusion.nn.layers import (
    ConditionEmbedding,
    Downsample,
    ResBlock,
    SelfAttention2d,
    Upsample,
    group_norm,
    zero_init,
)


class UNetBlock(nn.Module):
    """A ResBlock, optionally followed by self-attention: the unit of every U-Net level."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        attention: bool,
        num_heads: int,
        dropout: float,
        use_scale_shift_norm: bool,
    ) -> None:
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim, dropout, use_scale_shift_norm)
        self.attn = SelfAttention2d(out_channels, num_heads) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


class UNet(nn.Module):
    """Noise-prediction network ``eps_theta(x_t, t[, y])`` for images of any size ``H x W``.

    Args:
        in_channels: image channels (1 for MNIST-like data, 3 for CIFAR).
        out_channels: output channels; defaults to ``in_channels``.
        base_channels: channels at the first level (DDPM's ``ch``); the time embedding has
            ``4 * base_channels`` dimensions.
        channel_mult: channel multiplier of each resolution level.
        num_res_blocks: residual blocks per level in the down path (one more in the up path).
        attention_levels: indices into ``channel_mult`` of the levels with self-attention
            (level 0 is the full resolution).
        num_heads: attention heads.
        dropout: dropout rate inside the residual blocks (DDPM: 0.1 on CIFAR-10).
        num_classes: if set, the network is class-conditional; label ``num_classes`` is the
            null class ("no label"), used when ``y`` is None.
        use_scale_shift_norm: inject the embedding as ``GroupNorm(h) * (1 + scale) + shift``
            (ADM) instead of adding it (DDPM).
        patch_size: side of the pixel patches folded into channels at the input (1: none); the
            image's height and width must be multiples of it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        base_channels: int = 64,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (2,),
        num_heads: int = 4,
        dropout: float = 0.0,
        num_classes: int | None = None,
        use_scale_shift_norm: bool = True,
        patch_size: int = 1,
    ) -> None:
        super().__init__()
        for level in attention_levels:
            if not 0 <= level < len(channel_mult):
                raise ValueError(
                    f"attention level {level} is not an index into channel_mult={channel_mult}"
                )
        self.in_channels = in_channels
        self.out_channels = out_channels if out_channels is not None else in_channels
        self.num_classes = num_classes
        if patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
        self.patch_size = patch_size
        emb_dim = 4 * base_channels

        def block(c_in: int, c_out: int, attention: bool) -> UNetBlock:
            return UNetBlock(
                c_in, c_out, emb_dim, attention, num_heads, dropout, use_scale_shift_norm
            )

        # Conditioning: time embedding, plus a class embedding with a null class.
        self.embed = ConditionEmbedding(base_channels, emb_dim, num_classes)

        # Down path. `skip_channels` records the channels of every tensor pushed as a skip.
        self.conv_in = nn.Conv2d(
            in_channels * patch_size**2, base_channels, kernel_size=3, padding=1
        )
        skip_channels = [base_channels]
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        ch = base_channels
        for level, mult in enumerate(channel_mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(ch, base_channels * mult, level in attention_levels))
                ch = base_channels * mult
                skip_channels.append(ch)
            self.down_blocks.append(blocks)
            if level < len(channel_mult) - 1:  # every level but the last halves the size
                self.downsamples.append(Downsample(ch))
                skip_channels.append(ch)

        # Middle: ResBlock -> Attention -> ResBlock at the lowest resolution.
        self.mid_block1 = block(ch, ch, attention=True)
        self.mid_block2 = block(ch, ch, attention=False)

        # Up path: mirrored levels, each block eats one skip connection.
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                c_in = ch + skip_channels.pop()
                blocks.append(block(c_in, base_channels * mult, level in attention_levels))
                ch = base_channels * mult
            self.up_blocks.append(blocks)
            if level > 0:  # every level but the first doubles the size
                self.upsamples.append(Upsample(ch))
        assert not skip_channels, "every skip connection must be used exactly once"

        # Output: GroupNorm -> SiLU -> zero-initialised conv, so the untrained model outputs 0.
        self.out = nn.Sequential(
            group_norm(ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(ch, self.out_channels * patch_size**2, kernel_size=3, padding=1)),
        )

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """Predict from ``x`` ``(N, C, H, W)``, timesteps ``t`` ``(N,)`` and labels ``y`` ``(N,)``.

        ``t`` may be integer or float, of any scale; it goes straight to the sinusoidal
        embedding. ``y`` is int64; ``None`` means "no label" (the null class).
        """
        emb = self.embed(t, y, x.shape[0])
        p = self.patch_size
        if p > 1:
            if x.shape[-2] % p or x.shape[-1] % p:
                raise ValueError(
                    f"a {x.shape[-2]}x{x.shape[-1]} image does not split into {p}x{p} patches; "
                    "set model.patch_size to a divisor of its height and width"
                )
            x = nn.functional.pixel_unshuffle(x, p)  # (N, C p^2, H/p, W/p)

        h = self.conv_in(x)
        skips = [h]
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
                skips.append(h)

        h = self.mid_block2(self.mid_block1(h, emb), emb)

        for i, blocks in enumerate(self.up_blocks):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsamples):
                h = self.upsamples[i](h, size=skips[-1].shape[-2:])  # size of the next skip
        out = self.out(h)
        return nn.functional.pixel_shuffle(out, p) if p > 1 else out
