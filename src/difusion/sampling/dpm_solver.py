"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep solver
of the probability-flow ODE written in the half log-SNR lambda_t = log(alpha_t / sigma_t).

In lambda the ODE for the data prediction x_theta has an exactly integrable linear part, so from t
to s (h = lambda_s - lambda_t > 0)

    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D,

with D = x_theta(x_t, t) for the first order (this is DDIM with eta = 0), and for the second order
the multistep correction that reuses the previous step's prediction (r = h_prev / h):

    D = (1 + 1/(2r)) x_theta(x_t, t) - 1/(2r) x_theta(x_prev, t_prev).

The first step has no history and is first order; so is the last step to t = 0 (sigma = 0, h = inf),
which returns the data prediction itself, as diffusers does with ``final_sigmas_type="zero"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from difusion.sampling.ddpm import Step


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[float],
    *,
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) from timesteps[0] down to timesteps[-1]; one network call per step.

    ``noise`` is accepted for the common signature and unused (the solver is deterministic).
    """
    x = x_T
    ts = list(timesteps)
    x0_prev, h_prev = None, None
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0, _ = denoiser(x, t, y)
        a_t, sig_t = path.alpha_sigma(t)
        a_s, sig_s = path.alpha_sigma(s)
        if sig_s == 0.0:
            x = x0  # last step, first order: e^{-h} = 0 leaves the data prediction
        else:
            # lambda_t = -inf where alpha_t = 0 (zero terminal SNR): h = inf, e^{-h} = 0, and the
            # first step is the data prediction scaled in, as the limit of the formula says.
            lam_t = math.log(a_t / sig_t) if a_t > 0 else -math.inf
            h = math.log(a_s / sig_s) - lam_t
            if x0_prev is None:
                d = x0  # DPM-Solver++(1) = DDIM
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (sig_s / sig_t) * x - a_s * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(Step(i, t, s, x, x0))
    return x
