"""A denoiser turns (x_t, t, condition) into estimates of x_0 and eps. Samplers need nothing else."""

from __future__ import annotations

from typing import Protocol

import torch

from difusion.diffusion.parameterization import eps_from_x0
from difusion.diffusion.path import is_fractional
from difusion.diffusion.variance import predicted_x0_eps, split_output
from difusion.errors import ConfigError


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
    ``learn_sigma``: the network also outputs v, the log-variance interpolation of improved DDPM;
    samplers that use it call :meth:`with_variance`, the others ignore it.
    ``differentiable``: keep autograd on (by default the denoiser runs under no_grad).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        path,
        prediction: str = "eps",
        *,
        clip_x0: bool = False,
        autocast_dtype: torch.dtype | None = None,
        learn_sigma: bool = False,
        differentiable: bool = False,
    ):
        self.network, self.path, self.prediction = network, path, prediction
        self.clip_x0, self.autocast_dtype = clip_x0, autocast_dtype
        self.learn_sigma = learn_sigma
        self.differentiable = differentiable  # keep the graph (the ODE likelihood's divergence)

    def __call__(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        x0, eps, _ = self.with_variance(x_t, t, y)
        return x0, eps

    def with_variance(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        """(x_0 estimate, eps estimate, v) where v is the learned-variance output (None if fixed)."""
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            return self._with_variance(x_t, t, y)

    def _with_variance(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        n = x_t.shape[0]
        if torch.is_tensor(t):
            t_vec = t
        elif is_fractional(t):  # a time between the table's steps (Karras grids)
            t_vec = torch.full((n,), float(t), dtype=torch.float64)
        else:
            t_vec = torch.full((n,), int(t), dtype=torch.long)
        if self.prediction == "mu" and is_fractional(t_vec):
            raise ConfigError(
                "a model that predicts mu_tilde lives on the integer time grid; sample it with "
                "--sampler ddpm, ddim or dpmpp-2m"
            )
        alpha, sigma = self.path.alpha_t(t_vec, x_t), self.path.sigma_t(t_vec, x_t)
        device_type = x_t.device.type
        with torch.autocast(
            device_type, self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = self.network(x_t, t_vec.to(x_t.device, x_t.dtype), y)
        pred, v = split_output(out.float(), self.learn_sigma)
        x0, eps = predicted_x0_eps(self.path, self.prediction, pred, x_t, t_vec)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = eps_from_x0(x_t, x0, alpha, sigma)
        return x0, eps, v
