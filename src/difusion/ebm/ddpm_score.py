"""A DDPM eps-network is a noise-conditional score network (Song & Ermon 2019; Ho et al. 2020,
Sec. 3.2; Song et al. 2021, "Score-Based Generative Modeling through SDEs", Sec. 4).

On a Gaussian path x_t = alpha_t x0 + sigma_t eps, Tweedie's formula gives the score of the noisy
marginal q_t from the best denoiser (Efron 2011; Vincent 2011):

    grad log q_t(x_t) = -(x_t - alpha_t E[x0 | x_t]) / sigma_t^2 = -E[eps | x_t] / sigma_t

so score(x_t, t) = -eps_hat(x_t, t) / sigma_t. On the variance-preserving path the noisy point is
also scaled by alpha_t; y = x_t / alpha_t is the data plus noise of std sigma_t / alpha_t, the
"data-scale" variable of Song & Ermon's ladder, with score grad log p_y(y) = alpha_t grad log
q_t(alpha_t y) = -alpha_t eps_hat(alpha_t y, t) / sigma_t. A ladder of DDPM times is thus a ladder
sigma_i = sigma_t / alpha_t of noise levels, and annealed Langevin (langevin.py) samples on it.
"""

from __future__ import annotations

import torch

from difusion.ebm.langevin import LevelScore, annealed_langevin


def eps_to_score(eps: torch.Tensor, sigma_t: torch.Tensor) -> torch.Tensor:
    """Tweedie: grad log q_t(x_t) = -E[eps | x_t] / sigma_t."""
    return -eps / sigma_t


def path_score(denoiser, path):
    """(x_t, t) -> grad log q_t(x_t) of any lab denoiser ((x_t, t) -> (x0, eps): a trained run's
    ModelDenoiser or the exact oracle.MixtureDenoiser) on its path."""

    def score(x_t: torch.Tensor, t) -> torch.Tensor:
        _, eps = denoiser(x_t, t)
        return eps_to_score(eps, path.sigma_t(t, x_t).to(eps))

    return score


def data_scale_sigmas(path, times: list) -> torch.Tensor:
    """The noise levels sigma_t / alpha_t of the times ``times``: the VE ladder the path walks."""
    return torch.tensor([path.sigma(torch.tensor(t)).item() / path.alpha(torch.tensor(t)).item()
                         for t in times])  # fmt: skip


def times_for_sigmas(path, sigmas: torch.Tensor) -> list[int]:
    """For each level sigma_i, the integer DDPM time t in 1..T whose sigma_t / alpha_t is nearest
    to it in log scale: the times at which a trained eps-network walks a chosen ladder."""
    t = torch.arange(1, path.T + 1)
    log_ratio = (path.sigma(t) / path.alpha(t)).log()
    return [int(t[(log_ratio - float(s.log())).abs().argmin()]) for s in sigmas]


def data_scale_score(denoiser, path, times: list) -> LevelScore:
    """(y, i) -> grad log p(y) for y = x_t / alpha_t at t = times[i]:
    -alpha_t eps_hat(alpha_t y, t) / sigma_t."""

    def score(y: torch.Tensor, i: int) -> torch.Tensor:
        t = times[i]
        a, s = path.alpha_t(t, y).to(y), path.sigma_t(t, y).to(y)
        _, eps = denoiser(a * y, t)
        return -a * eps.to(y) / s

    return score


def ddpm_langevin(
    denoiser,
    path,
    times: list,
    x: torch.Tensor,
    eps: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Annealed Langevin (Song & Ermon, Algorithm 1) on a DDPM denoiser's scores: the levels are
    sigma_i = sigma_{t_i} / alpha_{t_i} for the decreasing times ``times``, the chains run in the
    data's scale and start from ``x``."""
    sigmas = data_scale_sigmas(path, times)
    return annealed_langevin(
        data_scale_score(denoiser, path, times), x, sigmas, eps, steps, generator
    )
