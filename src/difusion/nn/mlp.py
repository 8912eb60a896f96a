"""A small residual MLP denoiser ``eps_theta(x_t, t[, y])`` for low-dimensional (2-D) toy data.

The U-Net's ideas without the convolutions: a sinusoidal time embedding (DDPM Sec. 4), an
optional class embedding with a null class, and pre-norm residual blocks that each receive the
embedding, like the U-Net's ResBlock (DDPM App. B).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from difusion.nn.layers import ConditionEmbedding, zero_init


def mlp(
    inp: int, out: int, hidden: int, depth: int, act: type[nn.Module] = nn.SiLU
) -> nn.Sequential:
    """A plain MLP: ``depth`` hidden layers of width ``hidden``, each a linear map and ``act``, then
    a linear layer to ``out`` (the small networks of the hierarchical VAEs and the EBMs)."""
    layers: list[nn.Module] = []
    width = inp
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, out))


class MLPBlock(nn.Module):
    """``h + Linear(SiLU(Linear(LayerNorm(h)) + Linear(SiLU(emb))))``: a residual MLP block."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden))
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(self.norm(h)) + self.emb_proj(emb)))


class MLPDenoiser(nn.Module):
    """Maps points ``x`` ``(N, dim)``, timesteps ``t`` ``(N,)`` and labels ``y`` to ``(N, dim)``.

    Args:
        dim: dimension of a data point (2 for toy data).
        hidden: width of the hidden layers and of the time/class embedding.
        depth: number of residual blocks.
        num_classes: if set, class-conditional; label ``num_classes`` (or ``y=None``) is the
            null class.
        out_dim: output size (default ``dim``; ``2 * dim`` for a learned variance).
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 256,
        depth: int = 4,
        num_classes: int | None = None,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_classes = num_classes
        self.embed = ConditionEmbedding(hidden, hidden, num_classes)
        self.input_proj = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(MLPBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(
            nn.LayerNorm(hidden), nn.SiLU(), zero_init(nn.Linear(hidden, out_dim or dim))
        )

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.embed(t, y, x.shape[0])
        h = self.input_proj(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)
