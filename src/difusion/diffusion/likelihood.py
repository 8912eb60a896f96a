"""The variational bound of DDPM in bits per dimension (Ho et al. 2020 eq. 5; Nichol & Dhariwal 2021).

    L_vlb = L_0 + L_1 + ... + L_{T-1} + L_T
    L_T     = KL(q(x_T | x_0) || N(0, I))                         the prior term (no parameters)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))       for t = 2..T
    L_0     = -log p(x_0 | x_1)                                   the decoder at t = 1

Every term is a KL between two diagonal Gaussians except L_0, which for images is the probability
mass the Gaussian p(x_0 | x_1) puts on the pixel's bin (eq. 13): width 2/255 for 8-bit images, 2/16
for the 17 grey levels of the 8x8 digits, 2/(L - 1) for L levels in general. Terms here are means
over dimensions, in bits: their sum is a bound on -log2 P(x_0) / D.
"""

from __future__ import annotations

import math

import torch

from difusion.errors import DifusionError

LOG2 = math.log(2.0)
PIXEL_LEVELS = 256  # 8-bit images


def check_on_grid(x: torch.Tensor, levels: int, what: str = "the data") -> None:
    """Refuse data that is not on the grid of ``levels`` values in [-1, 1] (k -> 2k/(L-1) - 1):
    a likelihood with bins of the wrong width is a wrong number, not a rough one."""
    if levels < 2:
        raise DifusionError(f"a discrete likelihood needs at least 2 levels, got {levels}")
    k = (x.double() + 1) * (levels - 1) / 2
    off = float((k - k.round()).abs().max()) if x.numel() else 0.0
    if off > 1e-3 or float(x.min()) < -1 - 1e-6 or float(x.max()) > 1 + 1e-6:
        raise DifusionError(
            f"{what} is not on {levels} levels in [-1, 1] (a value is {off:.2f} of a bin off the "
            "grid): give the likelihood the data's own number of levels"
        )


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats:
    0.5 (logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^-logvar2 - 1)."""
    return 0.5 * (
        logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
        - 1.0
    )


def discretized_gaussian_log_likelihood(
    x0: torch.Tensor, mean, log_scale, levels: int = PIXEL_LEVELS
) -> torch.Tensor:
    """log p(x_0 | x_1) for data on ``levels`` values in [-1, 1] (Ho et al. eq. 13), elementwise,
    in nats.

    The bin of x is [x - h, x + h] with h = 1/(L - 1) (1/255 for 8-bit images); the first bin
    extends to -inf and the last to +inf, so the L probabilities sum to 1. ``log_scale`` is log
    sigma (half the log-variance).
    """
    half = 1.0 / (levels - 1)
    centered = x0 - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centered + half))
    cdf_minus = torch.special.ndtr(inv_std * (centered - half))
    # The edge bins: x = -1 has P(X <= -1 + h), x = 1 has P(X >= 1 - h).
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_bin = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    edge = 1.0 - half / 2  # halfway into the edge bins' inner half
    return torch.where(
        x0 < -edge, log_cdf_plus, torch.where(x0 > edge, log_one_minus_cdf_min, log_bin)
    )


def gaussian_log_likelihood(x0: torch.Tensor, mean, logvar) -> torch.Tensor:
    """log N(x_0; mean, e^logvar) elementwise, in nats: the decoder for continuous data."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x0 - mean) ** 2 * torch.exp(-logvar))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """The mean over every dimension but the batch."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def prior_bits(path, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, s^2 I)) per example, mean over dimensions, in bits, with
    s = ``path.prior_std(T)`` where the samplers start: 1 on DDPM, sqrt(1 + sigma_max^2) on VE."""
    t = torch.full((x0.shape[0],), path.T, dtype=torch.long)
    alpha, sigma = path.alpha_t(t, x0), path.sigma_t(t, x0)
    prior_logvar = torch.full_like(x0, 2.0 * math.log(path.prior_std(path.T)))
    kl = normal_kl(alpha * x0, 2.0 * torch.log(sigma), torch.zeros_like(x0), prior_logvar)
    return mean_flat(kl) / LOG2


def vlb_term_bits(
    path,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    model_mean: torch.Tensor,
    model_logvar: torch.Tensor,
    *,
    decoder: str = "discretized",
    levels: int = PIXEL_LEVELS,
) -> torch.Tensor:
    """L_{t-1} for each example (mean over dimensions, in bits): the KL of eq. 5 where t > 1, the
    decoder's -log p(x_0 | x_1) where t = 1 (``discretized`` for images on ``levels`` values,
    ``gaussian`` for continuous data)."""
    true_mean, beta_tilde, _ = path.posterior(x0, x_t, t)
    true_logvar = torch.log(beta_tilde.clamp(min=1e-20)).expand_as(x0)
    kl = mean_flat(normal_kl(true_mean, true_logvar, model_mean, model_logvar)) / LOG2
    if decoder == "discretized":
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar, levels)
    else:
        nll = -gaussian_log_likelihood(x0, model_mean, model_logvar)
    decoder_bits = mean_flat(nll) / LOG2
    return torch.where(t.to(x0.device) == 1, decoder_bits, kl)


@torch.no_grad()
def vlb_bits_per_dim(
    denoiser,
    path,
    x0: torch.Tensor,
    *,
    variance: str = "beta",
    decoder: str = "discretized",
    levels: int = PIXEL_LEVELS,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole bound, term by term: (L_vlb per example, the mean of each term L_0..L_T), in bits/dim.

    Every t = 1..T is evaluated once per example on a fresh x_t ~ q(x_t | x_0), so the sum is an
    unbiased one-sample estimate of eq. 5 for each image. ``denoiser.with_variance`` supplies the
    x_0 estimate (the mean is the posterior mean there) and, with ``variance="learned"``, v.
    ``callback(t)`` is called after each t (for a progress bar). The discretized decoder's bins
    are those of ``levels`` values; data off that grid is refused (:func:`check_on_grid`).
    """
    from difusion.diffusion.variance import fixed_log_variance, learned_log_variance

    if decoder == "discretized":
        check_on_grid(x0, levels)
    n = x0.shape[0]
    terms = torch.zeros(path.T + 1, dtype=torch.float64)
    total = prior_bits(path, x0).double()
    terms[path.T] = total.mean()
    for t_int in range(path.T, 0, -1):
        t = torch.full((n,), t_int, dtype=torch.long)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = path.q_sample(x0, t, eps)
        x0_hat, _, v = denoiser.with_variance(x_t, t, y)
        mean = path.posterior(x0_hat, x_t, t)[0]
        if variance == "learned":
            logvar = learned_log_variance(path, t, t - 1, v)
        else:
            logvar = fixed_log_variance(path, t, t - 1, variance, x_t)
        term = vlb_term_bits(
            path, x0, x_t, t, mean, logvar, decoder=decoder, levels=levels
        ).double()
        terms[t_int - 1] = term.mean()
        total += term
        if callback is not None:
            callback(t_int)
    return total, terms
