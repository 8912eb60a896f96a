"""Flow matching as an objective of the training loop (Lipman et al. 2023; Liu et al. 2023).

Nakkiran et al. 2024, Sec. 4 (Pseudocode 4, flow-matching training loss): draw x_0 from the data,
eps ~ N(0, I) and t ~ U[0, 1]; regress the network on the pointwise velocity of the path,

    L = E || v_theta(x_t, t) - (a'_t x_0 + b'_t eps) ||^2,    rectified: x_t = (1 - t) x_0 + t eps,
                                                              target eps - x_0,

with t = 0 data and t = 1 noise (see ``difusion.diffusion.flow``). The network is the same U-Net
(or MLP) as for diffusion; it receives 1000 t, the scale its time embedding was built for.
Options: the OT path with sigma_min, mini-batch optimal-transport coupling of x_0 and eps
(Tong et al. 2023; Pooladian et al. 2023), and reflow (Liu et al. Sec. 2.2): retrain on pairs
(eps, x_0 = ODE(eps)) drawn from a finished flow run, starting from its weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from difusion.config import Config
from difusion.diffusion.flow import FlowPath
from difusion.errors import ConfigError
from difusion.sampling.denoiser import ModelDenoiser
from difusion.sampling.ode import ode_times, ode_velocity, solve_ode
from difusion.training.diffusion_objective import GenerativeObjective
from difusion.training.objectives import register


def ot_couple(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Reorder ``eps`` so that (x0_i, eps_i) is the optimal-transport matching of the batch under
    the squared Euclidean cost: min over permutations pi of sum_i ||x0_i - eps_pi(i)||^2 (exact,
    Hungarian algorithm; Tong et al. 2023 eq. 9 with a mini-batch)."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x0.flatten(1).double(), eps.flatten(1).double()).pow(2)
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return eps[torch.as_tensor(cols, device=eps.device)]


def sample_times(
    n: int, generator: torch.Generator, kind: str = "uniform", mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """n training times in (0, 1): uniform, or logit-normal (Esser et al. 2024, eq. 19),
    pi(t) = 1 / (std sqrt(2 pi)) 1 / (t (1 - t)) exp(-(logit(t) - mean)^2 / (2 std^2)),
    drawn as t = sigmoid(mean + std n) with n ~ N(0, 1)."""
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def flow_matching_loss(
    model: torch.nn.Module,
    path: FlowPath,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The conditional flow-matching loss (Lipman et al. eq. 9): mean ||v_theta(x_t, t) - v||^2."""
    x_t = path.q_sample(x0, t, eps)  # x_t = alpha_t x_0 + sigma_t eps
    target = path.velocity(x0, eps, t)  # u = alpha'_t x_0 + sigma'_t eps  (rectified: eps - x_0)
    with torch.autocast(x0.device.type, autocast_dtype, enabled=autocast_dtype is not None):
        pred = model(x_t, path.time_scale * t, y)  # the network's time input is 1000 t
    return F.mse_loss(pred.float(), target.float())


class FlowObjective(GenerativeObjective):
    """Draw x_0 (or a reflow pair), eps and t; return the flow-matching loss."""

    loss_label = "flow matching loss"

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.pairs: tuple[torch.Tensor, torch.Tensor] | None = None
        if cfg.flow.reflow:
            self.pairs = self._reflow_pairs(cfg, device)
        else:
            self.data = self.dataset.data.to(device)

    def _reflow_pairs(self, cfg: Config, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, x_0) with x_0 the teacher's ODE solution from eps (Liu et al. Algorithm 1,
        "reflow"); the student starts from the teacher's weights."""
        from difusion.precision import autocast_dtype
        from difusion.runs import load_run

        teacher = load_run(cfg.flow.reflow, device)
        if teacher.config.objective != "flow":
            raise ConfigError(f"flow.reflow={cfg.flow.reflow} is not a flow run")
        if tuple(teacher.shape) != tuple(self.dataset.shape):
            raise ConfigError(f"flow.reflow: teacher data shape {teacher.shape} differs")
        try:
            self.network.load_state_dict(teacher.network.state_dict())
        except RuntimeError:
            raise ConfigError(
                "flow.reflow: the teacher's network has another architecture; copy its model section"
            ) from None
        f = cfg.flow
        amp = autocast_dtype(teacher.config.train.precision, torch.device(device))
        den = ModelDenoiser(teacher.network, teacher.path, "velocity", autocast_dtype=amp)
        velocity = ode_velocity(den, teacher.path)
        g = torch.Generator().manual_seed(cfg.train.seed + 12345)
        eps = torch.randn(f.reflow_pairs, *self.dataset.shape, generator=g)
        times = ode_times(f.reflow_steps)
        with torch.no_grad():
            x0 = [solve_ode(velocity, e.to(device), times, f.reflow_solver) for e in eps.split(256)]
        return eps.to(device), torch.cat(x0).float()

    def describe(self) -> str:
        what = super().describe()
        if self.pairs is not None:
            what = f"reflow of {self.cfg.flow.reflow}: {len(self.pairs[0])} ODE pairs"
        return f"{what}, {self.path.describe()}"

    def batch(self, generator: torch.Generator, size: int):
        """(x_0, y, None), or a reflow pair (x_0, None, eps)."""
        if self.pairs is None:
            return (*super().batch(generator, size), None)
        idx = torch.randint(len(self.pairs[0]), (size,), generator=generator)
        self.last_indices = idx
        idx = idx.to(self.device)
        return self.pairs[1][idx], None, self.pairs[0][idx]

    def loss(self, model, batch, generator, autocast_dtype):
        x0, y, eps = batch
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator).to(x0.device)
            if self.cfg.flow.ot_coupling:
                eps = ot_couple(x0, eps)
        f = self.cfg.flow
        t = sample_times(x0.shape[0], generator, f.time_sampling, f.logit_mean, f.logit_std)
        t = t.to(x0.device)
        return flow_matching_loss(model, self.path, x0, eps, t, y, autocast_dtype), {}

    def preview(self, model, out: Path, autocast_dtype) -> None:
        """16 samples with 20 Euler steps."""
        self.preview_grid(model, out, autocast_dtype, steps=20)

    def report_lines(self) -> list[str]:
        f = self.cfg.flow
        lines = [f"- {self.path.describe()}, t = 0 data, t = 1 noise; network time input 1000 t"]
        if f.time_sampling == "logit-normal":
            lines.append(f"- t ~ logit-normal(mean {f.logit_mean:g}, std {f.logit_std:g})")
        if f.ot_coupling:
            lines.append("- mini-batch optimal-transport coupling of x_0 and eps")
        if f.reflow:
            lines.append(
                f"- reflow of {f.reflow}: {f.reflow_pairs} pairs, {f.reflow_steps} "
                f"{f.reflow_solver} steps"
            )
        return lines


register("flow", FlowObjective)
