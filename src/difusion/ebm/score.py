"""A noise-conditional score network s_theta(x, sigma) ~ grad_x log p_sigma(x), p_sigma = p * N(0,
sigma^2 I), trained by denoising score matching (Vincent 2011; Song & Ermon 2019, eqs. 5-6).

For x~ = x + sigma z, the score of the noising kernel is grad log q(x~ | x) = -(x~ - x) / sigma^2
= -z / sigma, and regressing s on it has the same minimizer as regressing on the unknown
grad log p_sigma(x~) (Vincent 2011). Song & Ermon average the levels with
lambda(sigma) = sigma^2, so every level's term has the same size:

    L = (1/L) sum_i sigma_i^2 (1/2) E || s(x~, sigma_i) + (x~ - x) / sigma_i^2 ||^2
      = (1/L) sum_i (1/2) E || sigma_i s(x~, sigma_i) + z ||^2

Read with eps = -sigma s, this is DDPM's eps-prediction loss: the eps-network is this score
network, s(x_t, t) = -eps_hat(x_t, t) / sigma_t (ddpm_score.py).
"""

from __future__ import annotations

import torch
from torch import nn

from difusion.ebm.langevin import noise_like
from difusion.nn.mlp import mlp


class NoiseConditionalScore(nn.Module):
    """s_theta(x, sigma) = f_theta(x, log sigma) / sigma: an MLP that reads the point and the log of
    the noise level, its output divided by sigma (Song & Ermon 2020, "Improved Techniques", Technique 3:
    the score's size grows as 1 / sigma)."""

    def __init__(self, dim: int, hidden: int, depth: int):
        super().__init__()
        self.dim = dim
        self.net = mlp(dim + 1, dim, hidden, depth)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x (N, ...), sigma (N,) -> the score, x's shape."""
        flat = x.flatten(1)
        sigma = sigma.reshape(-1, 1).to(flat)
        out = self.net(torch.cat([flat, sigma.log()], dim=1)) / sigma
        return out.view_as(x)


def dsm_loss(
    model: nn.Module, x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Song & Ermon's eq. 6 with lambda(sigma) = sigma^2, one level drawn uniformly per example:
    (1/2) || sigma s(x + sigma z, sigma) + z ||^2 summed over the dimensions, averaged."""
    i = torch.randint(len(sigmas), (len(x),), generator=generator)
    sigma = sigmas[i].to(x)
    z = noise_like(x, generator)
    shape = (-1,) + (1,) * (x.dim() - 1)
    x_noisy = x + sigma.view(shape) * z  # x~ = x + sigma z
    residual = sigma.view(shape) * model(x_noisy, sigma) + z  # sigma (s - (-(x~ - x) / sigma^2))
    loss = 0.5 * residual.flatten(1).pow(2).sum(1).mean()
    return loss, {}


def tweedie_denoise(score: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x0 | x] = x + sigma^2 grad log p_sigma(x) (Tweedie's formula; Efron 2011): the last step
    after annealed Langevin, which removes the sigma_L noise the chains still carry (the final
    denoising step of Jolicoeur-Martineau et al. 2021)."""
    return x + sigma**2 * score


def level_score(model: nn.Module, sigmas: torch.Tensor):
    """The network as annealed Langevin reads it: (x, i) -> s_theta(x, sigma_i), without gradients."""

    def score(x: torch.Tensor, i: int) -> torch.Tensor:
        with torch.no_grad():
            return model(x, torch.full((len(x),), float(sigmas[i]), device=x.device))

    return score
