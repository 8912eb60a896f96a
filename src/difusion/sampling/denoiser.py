"""A denoiser turns (x_t, t, condition) into estimates of x_0 and eps. Samplers need nothing else."""

from __future__ import annotations

from typing import Protocol

import torch

from difusion.diffusion.parameterization import STEP_MEANS, eps_from_x0
from difusion.diffusion.path import is_fractional, time_vector
from difusion.diffusion.variance import split_output
from difusion.errors import ConfigError


class Denoiser(Protocol):
    def __call__(
        self, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x_0 estimate, eps estimate) for x_t at time t."""
        ...


class ModelDenoiser:
    """A trained network seen as a denoiser: run it at the network time ``path.time_scale * t``, then
    turn its output (eps, x0, v, mu or a flow velocity) into (x_0, eps) with ``path.to_x0_eps``.
    Every model of the lab is sampled through this one class.

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
        t_vec = time_vector(t, x_t.shape[0])
        if self.prediction in STEP_MEANS and is_fractional(t_vec):
            raise ConfigError(
                f"a model that predicts {self.prediction} (E[x_(t-1) | x_t]) lives on the integer "
                "time grid; sample it with --sampler ddpm, ddim or dpmpp-2m"
            )
        net_t = t_vec.to(x_t.device, x_t.dtype)
        if self.path.time_scale != 1.0:  # the one map from path time to network time
            net_t = self.path.time_scale * net_t
        with torch.autocast(
            x_t.device.type, self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = self.network(x_t, net_t, y)
        pred, v = split_output(out.float(), self.learn_sigma)
        x0, eps = self.path.to_x0_eps(self.prediction, pred, x_t, t_vec)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = eps_from_x0(x_t, x0, self.path.alpha_t(t_vec, x_t), self.path.sigma_t(t_vec, x_t))
        return x0, eps, v
