"""DDIM inversion and interpolation through the noise (Song et al. 2021, Sec. 5.4 and eq. 14).

Deterministic DDIM (eta = 0) is the Euler discretisation of an ODE, so it can be run the other way,
from an image x_0 up to a latent x_T that DDIM maps back to (nearly) the same image. From t to a
later time s the step is eq. 12 with the roles swapped:

    x_s = alpha_s x0_hat(x_t, t) + sigma_s eps_hat(x_t, t)    (on DDPM, alpha_s = sqrt(alpha_bar_s)),

on any path.

The estimates are taken at the current point (an explicit Euler step, first order, so the
reconstruction error shrinks as the grid gets finer). At t = 0 the network has no noise to predict,
so the first step evaluates it at the grid's first positive time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.sampling.ddpm import Step


@torch.no_grad()
def invert_ddim(
    denoiser,
    path,
    x0: torch.Tensor,
    timesteps: Sequence[int],
    *,
    y: torch.Tensor | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Encode images to x_T by running DDIM (eta = 0) up the grid. ``timesteps`` is the sampling
    grid (descending, as ``ddim_timesteps`` gives it, ending at 0); it is walked in reverse."""
    ts = sorted(timesteps)
    x = x0
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        x0_hat, eps = denoiser(x, t if t > 0 else ts[1], y)
        a_s, s_s = path.alpha_sigma(s)
        x = a_s * x0_hat + s_s * eps  # eq. 12 with eta = 0, upwards
        if callback is not None:
            callback(Step(i, t, s, x, x0_hat))
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (per example), as DDIM's Sec. 5.3 uses:
    Gaussian noise lives near a sphere, and slerp keeps the interpolants there (lerp would shrink
    them toward the origin, where no x_T is ever drawn)."""
    dims = tuple(range(1, a.dim()))
    cos = (a * b).sum(dims, keepdim=True) / (
        torch.linalg.vector_norm(a, dim=dims, keepdim=True)
        * torch.linalg.vector_norm(b, dim=dims, keepdim=True)
    )
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    alpha = torch.as_tensor(alpha, dtype=a.dtype)
    sin = torch.sin(theta).clamp(min=1e-8)
    return (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / sin
