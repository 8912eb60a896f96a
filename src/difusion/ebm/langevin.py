"""Langevin dynamics: drawing samples from a density known only through its score grad log p(x).

Stochastic-gradient Langevin dynamics (Welling & Teh 2011, eq. 4, with the data term replaced by
the model's own score; Song & Ermon 2019, eq. 4) moves every point a half step up the score and adds
Gaussian noise of the step's variance:

    x <- x + (eps / 2) grad_x log p(x) + sqrt(eps) z,   z ~ N(0, I)

As eps -> 0 and the number of steps -> inf the chain's law tends to p (an Euler-Maruyama step of
the Langevin diffusion dx = (1/2) grad log p dt + dW, whose stationary law is p). For an energy,
grad log p = -grad E: the normalizing constant Z never appears.

Annealed Langevin (Song & Ermon 2019, Algorithm 1) runs such chains on the noisy densities
p_sigma = p * N(0, sigma^2 I) for a ladder sigma_1 > ... > sigma_L, T steps each, with the step
alpha_i = eps sigma_i^2 / sigma_L^2 shrinking with the noise, each level starting where the last
one stopped: the wide levels move mass between modes, the narrow ones sharpen it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Score = Callable[[torch.Tensor], torch.Tensor]  # x -> grad_x log p(x)
LevelScore = Callable[[torch.Tensor, int], torch.Tensor]  # (x, i) -> grad log p_{sigma_i}(x)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z ~ N(0, I) of ``x``'s shape, drawn on the CPU from ``generator`` (the same on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def langevin_step(
    x: torch.Tensor, score: torch.Tensor, step: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One SGLD step x + (eps/2) score + sqrt(eps) z (Welling & Teh 2011, eq. 4)."""
    return x + 0.5 * step * score + math.sqrt(step) * noise_like(x, generator)


def sgld(
    score_fn: Score,
    x: torch.Tensor,
    step: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` Langevin steps of size ``step`` from ``x`` on the score ``score_fn``."""
    for _ in range(steps):
        x = langevin_step(x, score_fn(x), step, generator)
    return x


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> torch.Tensor:
    """sigma_1 = sigma_max > ... > sigma_L = sigma_min, a geometric sequence (Song & Ermon 2019,
    Sec. 4.2: the ratio sigma_{i-1} / sigma_i is the same at every level)."""
    if levels == 1:
        return torch.tensor([float(sigma_min)])
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), levels)


def annealed_langevin(
    score_fn: LevelScore,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    eps: float,
    steps: int,
    generator: torch.Generator | None = None,
    trace: list | None = None,
) -> torch.Tensor:
    """Song & Ermon 2019, Algorithm 1: for i = 1..L, alpha_i = eps sigma_i^2 / sigma_L^2, then
    ``steps`` Langevin steps x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) z, where
    ``score_fn(x, i)`` is the score of the data convolved with N(0, sigma_i^2 I). ``trace``, if
    given, receives the chains at the end of every level."""
    sigma_last = float(sigmas[-1])
    for i, sigma in enumerate(sigmas.tolist()):
        alpha = eps * sigma**2 / sigma_last**2  # the step shrinks with the noise (Algorithm 1)
        for _ in range(steps):
            x = langevin_step(x, score_fn(x, i), alpha, generator)
        if trace is not None:
            trace.append(x.detach().clone())
    return x
