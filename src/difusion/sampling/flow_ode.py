"""ODE solvers for flow matching, and the adapters that make a velocity field a denoiser and back.

Sampling a flow model integrates dx/dt = v(x, t) from x_1 ~ N(0, I) at t = 1 down to t = 0 on a
grid 1 = t_0 > t_1 > ... > t_N = 0, step h = t_{i+1} - t_i < 0 (Nakkiran et al. Pseudocode 5 is the
Euler case):

- Euler (order 1, 1 call a step):  x <- x + h v(x, t)
- Heun (order 2, 2 calls):         k1 = v(x, t), k2 = v(x + h k1, t + h), x <- x + h (k1 + k2) / 2
- RK4 (order 4, 4 calls):          the classical Runge-Kutta tableau (1/6, 1/3, 1/3, 1/6).

Every Gaussian path x_t = alpha x_0 + sigma eps is the rectified path after a change of scale and
time: dividing by (alpha + sigma) gives x_t / (alpha + sigma) = (1 - tau) x_0 + tau eps with
tau = sigma / (alpha + sigma) (equal signal-to-noise ratio, Kingma et al. 2021). So a velocity
network is a denoiser on the DDPM path (``VelocityDenoiser``: every DDPM sampler runs on a flow
model) and a denoiser is a velocity field (``DenoiserVelocity``: the flow solvers run on a DDPM
model). With the flow Euler step this is Nakkiran et al.'s claim that DDIM is the Euler method
of the linear flow (tests/test_flow.py checks it numerically).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.diffusion.flow import TIME_SCALE, FlowPath
from difusion.diffusion.path import is_fractional
from difusion.errors import ConfigError
from difusion.sampling.ddpm import Step

FLOW_SOLVERS = ("euler", "heun", "rk4")
CALLS_PER_STEP = {"euler": 1, "heun": 2, "rk4": 4}

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def flow_times(steps: int) -> list[float]:
    """``steps`` + 1 evenly spaced times from 1 (noise) down to 0 (data)."""
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    return [1.0 - i / steps for i in range(steps)] + [0.0]


def _vec(t: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


@torch.no_grad()
def solve_flow(
    velocity: Velocity,
    x1: torch.Tensor,
    times: Sequence[float],
    method: str = "euler",
    *,
    y: torch.Tensor | None = None,
    path: FlowPath | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t, y) along ``times`` (descending) from x1 with ``method``.

    ``path`` (default: rectified) only serves the x_0 estimate x - ... handed to ``callback``."""
    if method not in FLOW_SOLVERS:
        raise ConfigError(
            f"unknown ODE solver {method!r}; choose one of: {', '.join(FLOW_SOLVERS)}"
        )
    path = path or FlowPath()
    x = x1
    ts = list(times)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        h = s - t
        k1 = velocity(x, _vec(t, x), y)
        if method == "euler":
            x_s = x + h * k1
        elif method == "heun":
            k2 = velocity(x + h * k1, _vec(s, x), y)
            x_s = x + h * 0.5 * (k1 + k2)  # trapezoid rule
        else:  # classical RK4
            mid = _vec(t + 0.5 * h, x)
            k2 = velocity(x + 0.5 * h * k1, mid, y)
            k3 = velocity(x + 0.5 * h * k2, mid, y)
            k4 = velocity(x + h * k3, _vec(s, x), y)
            x_s = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if callback is not None:
            callback(Step(i, t, s, x_s, path.x0_eps(x, t, k1)[0]))
        x = x_s
    return x


class NetworkVelocity:
    """A trained network as the velocity field v_theta(x, t, y); the network sees 1000 t
    (``TIME_SCALE``), the time scale its sinusoidal embedding was built for. Differentiable in x."""

    def __init__(self, network: torch.nn.Module, autocast_dtype: torch.dtype | None = None):
        self.network, self.autocast_dtype = network, autocast_dtype

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        # no torch.no_grad here: the likelihood (likelihood_ode) differentiates through it
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        with torch.autocast(
            x.device.type, self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = self.network(x, TIME_SCALE * t, y)
        return out.to(x.dtype)


def _times_vector(t, x: torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(t):
        return t
    if is_fractional(t):
        return torch.full((x.shape[0],), float(t), dtype=torch.float64)
    return torch.full((x.shape[0],), int(t), dtype=torch.long)


class VelocityDenoiser:
    """A velocity field seen as a denoiser on a DDPM path (any Gaussian path with alpha_t, sigma_t).

    At DDPM time t, x_t = alpha x_0 + sigma eps has the noise-to-signal ratio r = sigma / alpha of
    the flow time tau with b_tau / a_tau = r; the flow state is x_tau = (a_tau / alpha) x_t
    (rectified: tau = sigma / (alpha + sigma), x_tau = x_t / (alpha + sigma)), and
    x_0 = x_tau - tau v, eps = x_tau + (1 - tau) v (``FlowPath.x0_eps``). ``clip_x0`` clamps the
    x_0 estimate to [-1, 1] and recomputes eps from it, as ``ModelDenoiser`` does for images.
    """

    def __init__(self, velocity: Velocity, flow: FlowPath, path, *, clip_x0: bool = False):
        self.velocity, self.flow, self.path, self.clip_x0 = velocity, flow, path, clip_x0

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        t_vec = _times_vector(t, x_t)
        alpha, sigma = self.path.alpha_t(t_vec, x_t), self.path.sigma_t(t_vec, x_t)
        tau = self.flow.time_at_ratio((sigma / alpha).flatten(1)[:, 0].double().cpu())
        tau = tau.to(x_t.device, x_t.dtype)
        scale = self.flow.a(tau).reshape(alpha.shape) / alpha  # x_tau = (a_tau / alpha) x_t
        x_tau = scale * x_t
        v = self.velocity(x_tau, tau, y)
        x0, eps = self.flow.x0_eps(x_tau, tau, v)
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x_t - alpha * x0) / sigma.clamp(min=1e-12)
        return x0, eps


class DenoiserVelocity:
    """A denoiser on a DDPM path seen as the velocity field of a flow path: at flow time tau take
    the DDPM time t of equal signal-to-noise ratio (``path.t_at_log_snr``, clamped to [1, T]),
    x_t = x_tau (alpha_t + sigma_t) / (a_tau + b_tau), and v = a' x_0_hat + b' eps_hat."""

    def __init__(self, denoiser, path, flow: FlowPath | None = None):
        self.denoiser, self.path, self.flow = denoiser, path, flow or FlowPath()

    def ddpm_time(self, tau: float) -> float:
        """The DDPM time with the same log-SNR as flow time ``tau`` (T at tau = 1)."""
        r = float(self.flow.ratio(tau))
        if r == float("inf"):
            return float(self.path.T)
        if r <= 0.0:
            return 1.0
        return float(self.path.t_at_log_snr(-2.0 * torch.log(torch.tensor(r, dtype=torch.float64))))

    def __call__(self, x_tau: torch.Tensor, tau: torch.Tensor, y: torch.Tensor | None = None):
        t0 = float(tau.flatten()[0])
        t = self.ddpm_time(t0)
        a, s = self.path.alpha_sigma(t)
        # differentiable in x_tau when the denoiser is (the ODE likelihood's divergence needs it:
        # ModelDenoiser(..., differentiable=True)); a sampler's x_tau needs no graph, so none is built
        x_t = x_tau * (a + s) / float(self.flow.a(t0) + self.flow.b(t0))
        x0, eps = self.denoiser(x_t, t, y)
        return self.flow.velocity(x0, eps, t0)


def sample_flow_ode(
    method: str,
    denoiser,
    path,
    x_T: torch.Tensor,
    timesteps: Sequence[float],
    *,
    y: torch.Tensor | None = None,
    noise: Callable | None = None,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    """The flow ODE solver ``method`` run on any denoiser over the DDPM ``path`` (the shared sampler
    signature): ``timesteps`` are DDPM times, mapped to rectified-flow times tau = sigma/(alpha+sigma);
    x_T starts at x_T / (alpha_T + sigma_T) and the result is at tau = 0, where both paths are x_0."""
    flow = FlowPath()
    taus = []
    for t in timesteps:
        a, s = path.alpha_sigma(t)
        taus.append(s / (a + s))
    a_T, s_T = path.alpha_sigma(timesteps[0])
    velocity = DenoiserVelocity(denoiser, path, flow)
    ts = list(timesteps)

    def relabel(step: Step) -> None:  # report DDPM times to the caller
        if callback is not None:
            callback(Step(step.index, ts[step.index], ts[step.index + 1], step.x, step.x0))

    return solve_flow(velocity, x_T / (a_T + s_T), taus, method, y=y, path=flow, callback=relabel)


def flow_grid_timesteps(path, steps: int) -> list[float]:
    """DDPM times whose rectified-flow times tau = sigma / (alpha + sigma) are evenly spaced from 1
    to 0 (T and 0 at the ends): the grid of the fm-* samplers on a DDPM path."""
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    dv = DenoiserVelocity(None, path)
    inner = [dv.ddpm_time(tau) for tau in flow_times(steps)[1:-1]]
    return [float(path.T), *inner, 0.0]
