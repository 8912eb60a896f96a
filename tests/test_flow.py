"""Flow matching: the path algebra, the ODE solvers' orders on an analytic flow, DDIM = flow Euler,
and the adapters between velocities and denoisers."""

import math

import pytest
import torch

from difusion.diffusion import DDPMPath
from difusion.diffusion.flow import FlowPath, GaussianFlow
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
from difusion.sampling import ddim_timesteps, sample_ddim
from difusion.sampling.flow_ode import (
    DenoiserVelocity,
    VelocityDenoiser,
    flow_times,
    sample_flow_ode,
    solve_flow,
)


@pytest.mark.parametrize("kind,sigma_min", [("rectified", 0.0), ("ot", 0.1)])
def test_path_ends_target_and_inverse(kind, sigma_min):
    p = FlowPath(kind, sigma_min)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.allclose(p.sample(x0, 1.0, eps), eps)  # t = 1 is pure noise
    assert torch.allclose(p.sample(x0, 0.0, eps), x0 + sigma_min * eps)  # t = 0 is (smoothed) data
    t = torch.rand(5, generator=g)
    # the target is the time derivative of the path (finite difference)
    h = 1e-4
    fd = (
        p.sample(x0.double(), t.double() + h, eps.double())
        - p.sample(x0.double(), t.double() - h, eps.double())
    ) / (2 * h)
    assert torch.allclose(fd, p.target(x0, t, eps).double(), atol=1e-6)
    if kind == "rectified":
        assert torch.allclose(p.target(x0, t, eps), eps - x0)
    # (x_t, v) -> (x_0, eps) inverts the path
    x_t, v = p.sample(x0, t, eps), p.target(x0, t, eps)
    x0_hat, eps_hat = p.x0_eps(x_t, t, v)
    assert torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, eps, atol=1e-5)
    # the SNR map: b/a at time_at_ratio(r) is r
    r = torch.tensor([0.5, 1.0, 3.0])
    assert torch.allclose(p.ratio(p.time_at_ratio(r)), r.double())


def _gauss(kind="rectified", sigma_min=0.0, s=0.5):
    return GaussianFlow(FlowPath(kind, sigma_min), torch.tensor([2.0, -1.0]), s)


def _vel(g):
    return lambda x, t, y=None: g.velocity(x, t)


def test_analytic_velocity_is_the_posterior_expectation():
    # v*(x, t) = E[eps - x_0 | x_t = x], checked by Monte Carlo over a thin slab of x_t
    g = _gauss()
    gen = torch.Generator().manual_seed(1)
    x0 = g.mu + g.s * torch.randn(400_000, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(400_000, 2, generator=gen, dtype=torch.float64)
    t = 0.4
    x_t = g.path.sample(x0, t, eps)
    near = (x_t - torch.tensor([0.8, -0.2], dtype=torch.float64)).norm(dim=1) < 0.05
    mc = (eps - x0)[near].mean(0)
    exact = g.velocity(torch.tensor([[0.8, -0.2]], dtype=torch.float64), t)[0]
    assert near.sum() > 500 and torch.allclose(mc, exact, atol=0.05), (mc, exact)


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
@pytest.mark.parametrize("kind,sigma_min", [("rectified", 0.0), ("ot", 0.05)])
def test_solvers_reach_the_target_with_their_order(method, order, kind, sigma_min):
    g = _gauss(kind, sigma_min, s=2.0)
    x1 = torch.randn(10_000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = g.flow_map(x1, 0.0)
    # the exact endpoint is N(mu, s^2 + sigma_min^2): the target distribution
    assert torch.allclose(exact.mean(0), g.mu, atol=0.1)
    assert abs(exact.std(0).mean().item() - math.hypot(g.s, sigma_min)) < 0.05
    errors = []
    for n in (8, 16, 32, 64):
        x = solve_flow(_vel(g), x1, flow_times(n), method)
        errors.append((x - exact).norm(dim=1).mean().item())
    ratios = [errors[i] / errors[i + 1] for i in range(3)]
    measured = math.log2(ratios[-1])
    assert abs(measured - order) < 0.25, (errors, ratios)
    assert errors[-1] < 0.06


def test_one_euler_step_lands_on_the_mean():
    # at t = 1, x_1 = eps, so v*(x_1, 1) = x_1 - E[x_0]: one Euler step sends every sample to the data
    # mean (why one network call gives a blur), whatever the data distribution's spread
    g = _gauss()
    x1 = torch.randn(100, 2, dtype=torch.float64)
    x = solve_flow(_vel(g), x1, flow_times(1), "euler")
    assert torch.allclose(x, g.mu.expand_as(x), atol=1e-12)


def _mixture():
    mu = torch.tensor([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]])
    cov = torch.stack(
        [0.1 * torch.eye(2), 0.3 * torch.eye(2), torch.tensor([[0.2, 0.1], [0.1, 0.2]])]
    )
    return GaussianMixture(torch.tensor([0.3, 0.3, 0.4]), mu, cov)


class _FlowPathAsGaussian:
    """The rectified flow path with alpha = 1 - t, sigma = t, for the mixture oracle."""

    def alpha_t(self, t, like):
        return (1 - torch.as_tensor(t, dtype=like.dtype)).reshape(-1, *([1] * (like.dim() - 1)))

    def sigma_t(self, t, like):
        return torch.as_tensor(t, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _oracle_velocity(mix):
    """The exact flow-matching velocity of the mixture: E[eps - x_0 | x_tau] from E[x_0 | x_tau]."""
    den = MixtureDenoiser(mix, _FlowPathAsGaussian())

    def v(x, tau, y=None):
        tau = tau.double().clamp(1e-9, 1 - 1e-9)
        x0, eps = den(x.double(), tau, y)
        return eps - x0

    return v


def test_ddim_is_flow_euler_nakkiran_claim():
    # DDIM (eta = 0) on the DDPM path and the Euler method on the linear flow, each driven by the
    # exact predictor of its own path, give the same trajectory in the flow's coordinates
    # x / (alpha + sigma) at the matched times tau = sigma / (alpha + sigma).
    mix = _mixture()
    path = DDPMPath.from_schedule("cosine", 1000)
    ts = ddim_timesteps(path.T, 10)
    x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ddim_states = []
    sample_ddim(
        MixtureDenoiser(mix, path), path, x_T, ts, callback=lambda s: ddim_states.append(s.x)
    )
    taus, scales = [], []
    for t in ts:
        a, s = path.alpha_sigma(t)
        taus.append(s / (a + s))
        scales.append(a + s)
    flow_states = []
    solve_flow(
        _oracle_velocity(mix),
        x_T / scales[0],
        taus,
        "euler",
        callback=lambda s: flow_states.append(s.x),
    )
    for k, (xd, xf) in enumerate(zip(ddim_states, flow_states, strict=True)):
        assert torch.allclose(xd / scales[k + 1], xf, atol=1e-8), k
    # and the end point is the data distribution's neighbourhood (not a trivial agreement)
    assert (ddim_states[-1].mean(0) - mix.sample(20000)[0].mean(0)).norm() < 0.2


def test_velocity_denoiser_and_denoiser_velocity_are_inverse():
    mix = _mixture()
    path = DDPMPath.from_schedule("linear", 1000)
    oracle = MixtureDenoiser(mix, path)
    as_den = VelocityDenoiser(_oracle_velocity(mix), FlowPath(), path)
    x = torch.randn(64, 2, dtype=torch.float64)
    for t in (1, 17, 250, 600.5, 999):
        a, b = oracle(x, t), as_den(x, t)
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6), t
    # a denoiser seen as a velocity is the flow oracle's velocity
    as_vel = DenoiserVelocity(oracle, path)
    v = _oracle_velocity(mix)
    for tau in (0.05, 0.3, 0.7, 0.95):
        tv = torch.full((64,), tau, dtype=torch.float64)
        assert torch.allclose(as_vel(x, tv), v(x, tv), atol=1e-4), tau


def test_ddim_on_a_flow_model_matches_fm_euler_on_it():
    # every DDPM sampler runs on a velocity model through VelocityDenoiser; the fm-* samplers run on
    # any denoiser. DDIM on the adapted velocity equals flow-Euler on the matched grid.
    mix = _mixture()
    path = DDPMPath.from_schedule("cosine", 1000)
    den = VelocityDenoiser(_oracle_velocity(mix), FlowPath(), path)
    ts = ddim_timesteps(path.T, 8)
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = sample_ddim(den, path, x_T, ts)
    b = sample_flow_ode("euler", MixtureDenoiser(mix, path), path, x_T, ts)
    assert torch.allclose(a, b, atol=1e-6)


def test_mixture_flow_matches_the_gaussian_flow_and_moves_the_base_to_the_data():
    from difusion.diffusion.flow import MixtureFlow

    # one component each: the Gaussian flow from N(0, I)
    mf = MixtureFlow(torch.tensor([[2.0, -1.0]]), 0.5, torch.zeros(1, 2), 1.0)
    g = _gauss()
    x = torch.randn(10, 2, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        assert torch.allclose(mf.velocity(x, t), g.velocity(x, t), atol=1e-12)
    # a ring base to four clusters: RK4 carries base samples onto the clusters
    angle = torch.linspace(0, 2 * math.pi, 33)[:-1]
    ring = torch.stack([angle.cos(), angle.sin()], 1).double() * 2
    data = torch.tensor([[3.0, 3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, -3.0]], dtype=torch.float64)
    mf = MixtureFlow(data, 0.1, ring, 0.1)
    x1 = ring[torch.randint(32, (400,))] + 0.1 * torch.randn(400, 2, dtype=torch.float64)
    x = solve_flow(lambda x, t, y=None: mf.velocity(x, t), x1, flow_times(50), "rk4")
    nearest = torch.cdist(x, data).min(1).values
    assert nearest.median() < 0.2, nearest.median()
