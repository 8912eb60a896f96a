"""A denoiser turns (x_t, t, condition) into estimates of x_0 and eps. Samplers need nothing else."""

from __future__ import annotations

from typing import Protocol

import torch

from difusion.diffusion.parameterization import eps_from_x0, to_x0_eps
from difusion.diffusion.path import is_fractional


class Denoiser(Protocol):
    def __call__(
        self, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x_0 estimate, eps estimate) for x_t at time t."""
        ...


class ModelDenoiser:
    """A trained network seen as a denoiser: run it, then convert its output (eps, x0 or v) with the path.

    ``clip_x0`` clamps the x_0 estimate to the data range [-1, 1] and recomputes eps from it, as
    Ho et al.'s sampler does for images (it leaves eq. 11 unchanged when no clipping happens).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        path,
        prediction: str = "eps",
        *,
        clip_x0: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ):
        self.network, self.path, self.prediction = network, path, prediction
        self.clip_x0, self.autocast_dtype = clip_x0, autocast_dtype

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        n = x_t.shape[0]
        if torch.is_tensor(t):
            t_vec = t
        elif is_fractional(t):  # a time between the table's steps (Karras grids)
            t_vec = torch.full((n,), float(t), dtype=torch.float64)
        else:
            t_vec = torch.full((n,), int(t), dtype=torch.long)
        alpha, sigma = self.path.alpha_t(t_vec, x_t), self.path.sigma_t(t_vec, x_t)
        device_type = x_t.device.type
        with torch.autocast(
            device_type, self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = self.network(x_t, t_vec.to(x_t.device, x_t.dtype), y)
        x0, eps = to_x0_eps(self.prediction, out.float(), x_t, alpha, sigma)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = eps_from_x0(x_t, x0, alpha, sigma)
        return x0, eps
