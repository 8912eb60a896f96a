"""The probability-flow ODE of any path, solved with Euler, Heun or RK4 in flow coordinates.

Every Gaussian path x_t = alpha x_0 + sigma eps is the rectified flow after a change of scale and
time: dividing by alpha + sigma gives

    x^ = x_t / (alpha + sigma) = (1 - tau) x_0 + tau eps,      tau = sigma / (alpha + sigma)

(equal signal-to-noise ratio, Kingma et al. 2021 Sec. 3; the "noise fraction" of ``path.py``). In
these coordinates the ODE of every model is the same, dx^/dtau = E[eps - x_0 | x^] (Liu et al. 2023
eq. 1; Nakkiran et al. 2024 Sec. 4), and a denoiser gives its right-hand side. On a flow run it is
the network's own velocity; on a DDPM run one Euler step of it is exactly DDIM with eta = 0
(the SNR invariance of Kingma et al. 2021 with Liu et al. 2023's rectified flow, checked in
tests/test_flow.py; the Step-by-Step tutorial's own DDIM is on its VE path: sampling/step_by_step.py). Integrating from tau = 1 (noise) down to
tau = 0 (data) on a grid 1 = tau_0 > ... > tau_N = 0, step h = tau_{i+1} - tau_i < 0:

- Euler (order 1, 1 call a step):  x^ <- x^ + h u(x^, tau)                     (Pseudocode 5)
- Heun (order 2, 2 calls):         k1 = u(x^, tau), k2 = u(x^ + h k1, tau + h), x^ <- x^ + h (k1 + k2) / 2
- RK4 (order 4, 4 calls):          the classical Runge-Kutta tableau (1/6, 1/3, 1/3, 1/6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from difusion.errors import ConfigError
from difusion.sampling.step import Step

ODE_SOLVERS = ("euler", "heun", "rk4")
CALLS_PER_STEP = {"euler": 1, "heun": 2, "rk4": 4}

Velocity = Callable[..., torch.Tensor]  # u(x^, tau, y) -> dx^/dtau


def ode_times(steps: int) -> list[float]:
    """``steps`` + 1 evenly spaced noise fractions from 1 (noise) down to 0 (data)."""
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    return [1.0 - i / steps for i in range(steps)] + [0.0]


def ode_timesteps(path, steps: int) -> list[float]:
    """The path's times at evenly spaced noise fractions (``t_max`` and 0 at the ends): the grid of
    the ODE samplers (on the rectified flow, the flow times themselves)."""
    inner = [path.t_at_noise_fraction(tau) for tau in ode_times(steps)[1:-1]]
    return [float(path.t_max), *inner, 0.0]


def ode_velocity(denoiser, path) -> Velocity:
    """u(x^, tau, y) = eps_hat - x0_hat, the denoiser's estimates at the path time of noise fraction
    tau and x_t = (alpha + sigma) x^. Differentiable in x^ when the denoiser is (the likelihood)."""

    def u(xh: torch.Tensor, tau, y: torch.Tensor | None = None) -> torch.Tensor:
        tau = float(tau.flatten()[0]) if torch.is_tensor(tau) else float(tau)
        t = path.t_at_noise_fraction(tau)
        a, s = path.alpha_sigma(t)
        x0, eps = denoiser(xh * (a + s), t, y)
        return eps - x0

    return u


def path_velocity(denoiser, path) -> Velocity:
    """v(x, t, y) = alpha'(t) x0_hat + sigma'(t) eps_hat: the probability-flow ODE in the path's own
    time and coordinates (a flow network's velocity on its path; used for the likelihood on
    continuous paths, whose ends need no change of coordinates)."""

    def v(x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        x0, eps = denoiser(x, t, y)
        return path.velocity(x0, eps, t)

    return v


def solve_ode(
    velocity: Velocity,
    xh: torch.Tensor,
    taus: Sequence[float],
    method: str = "euler",
    *,
    y: torch.Tensor | None = None,
    callback: Callable[[int, float, float, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Integrate dx^/dtau = velocity(x^, tau, y) along ``taus`` (descending) from ``xh``.
    ``callback(i, tau, tau_next, x^_next, x0_hat)`` after each step."""
    check_solver(method)
    x = xh
    ts = list(taus)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True)):
        h = s - t
        k1 = velocity(x, t, y)
        if method == "euler":
            x_s = x + h * k1
        elif method == "heun":
            k2 = velocity(x + h * k1, s, y)
            x_s = x + h * 0.5 * (k1 + k2)  # trapezoid rule
        else:  # classical RK4
            k2 = velocity(x + 0.5 * h * k1, t + 0.5 * h, y)
            k3 = velocity(x + 0.5 * h * k2, t + 0.5 * h, y)
            k4 = velocity(x + h * k3, s, y)
            x_s = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if callback is not None:
            callback(i, t, s, x_s, x - t * k1)  # x0_hat = x^ - tau u on the rectified path
        x = x_s
    return x


def check_solver(method: str) -> None:
    if method not in ODE_SOLVERS:
        raise ConfigError(f"unknown ODE solver {method!r}; choose one of: {', '.join(ODE_SOLVERS)}")


@torch.no_grad()
def sample_ode(
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
    """The ODE solver ``method`` on any denoiser and path, with the shared sampler signature:
    ``timesteps`` are path times, x_T the state at the first; the result is x at the last."""
    ts = list(timesteps)
    taus = [path.noise_fraction(t) for t in ts]
    a, s = path.alpha_sigma(ts[0])

    def report(i, tau, tau_s, xh_s, x0):
        if callback is not None:
            a_s, s_s = path.alpha_sigma(ts[i + 1])
            callback(Step(i, ts[i], ts[i + 1], xh_s * (a_s + s_s), x0))

    xh = solve_ode(ode_velocity(denoiser, path), x_T / (a + s), taus, method, y=y, callback=report)
    a, s = path.alpha_sigma(ts[-1])
    return xh * (a + s)
