"""Flow matching: the path algebra, the ODE solvers' orders on an analytic flow, DDIM = flow Euler,
and a velocity network as a denoiser of its path (every sampler runs on it)."""

import math

import pytest
import torch

from difusion.diffusion import DDPMPath
from difusion.diffusion.flow import FlowPath, GaussianFlow
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
from difusion.sampling import ModelDenoiser, ddim_timesteps, sample_ddim
from difusion.sampling.ode import ode_times, sample_ode, solve_ode
from difusion.sampling.samplers import timesteps_for


def solve_flow(velocity, x1, times, method, callback=None):
    """The generic solver on a native flow time (t = tau on the rectified path)."""
    return solve_ode(velocity, x1, times, method, callback=callback)


flow_times = ode_times


@pytest.mark.parametrize("kind,sigma_min", [("rectified", 0.0), ("ot", 0.1)])
def test_path_ends_target_and_inverse(kind, sigma_min):
    p = FlowPath(kind, sigma_min)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.allclose(p.q_sample(x0, 1.0, eps), eps)  # t = 1 is pure noise
    assert torch.allclose(p.q_sample(x0, 0.0, eps), x0 + sigma_min * eps)  # t = 0: smoothed data
    t = torch.rand(5, generator=g, dtype=torch.float64)
    # the target is the time derivative of the path (finite difference)
    h = 1e-4
    x0, eps = x0.double(), eps.double()
    fd = (p.q_sample(x0, t + h, eps) - p.q_sample(x0, t - h, eps)) / (2 * h)
    assert torch.allclose(fd, p.velocity(x0, eps, t), atol=1e-6)
    if kind == "rectified":
        assert torch.allclose(p.velocity(x0, eps, t), eps - x0)
    # (x_t, v) -> (x_0, eps) inverts the path
    x_t, v = p.q_sample(x0, t, eps), p.velocity(x0, eps, t)
    x0_hat, eps_hat = p.to_x0_eps("velocity", v, x_t, t)
    assert torch.allclose(x0_hat, x0, atol=1e-10) and torch.allclose(eps_hat, eps, atol=1e-10)
    # the SNR map: sigma / alpha at t_at_log_snr(-2 log r) is r
    r = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    tr = p.t_at_log_snr(-2 * r.log())
    assert torch.allclose(p.sigma(tr) / p.alpha(tr), r)


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
    x_t = g.path.q_sample(x0, t, eps)
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


def _oracle_velocity(mix):
    """The exact flow-matching velocity of the mixture: E[eps - x_0 | x_tau] from E[x_0 | x_tau]."""
    den = MixtureDenoiser(mix, FlowPath())

    def v(x, tau, y=None):
        tau = torch.as_tensor(tau, dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
        x0, eps = den(x.double(), tau.expand(x.shape[0]), y)
        return eps - x0

    return v


class _VelocityNet(torch.nn.Module):
    """A "network" that outputs the mixture's exact velocity at network time 1000 t."""

    def __init__(self, mix):
        super().__init__()
        self.v = _oracle_velocity(mix)

    def forward(self, x, t_net, y=None):
        return self.v(x, t_net.double() / 1000.0, y)


def test_vp_ddim_is_rectified_flow_euler_at_equal_snr():
    # DDIM (eta = 0) on the DDPM path and the Euler method on the linear flow, each driven by the
    # exact predictor of its own path, give the same trajectory in the flow's coordinates
    # x / (alpha + sigma) at the matched times tau = sigma / (alpha + sigma): the SNR invariance of
    # Kingma et al. 2021 (Sec. 3) with Liu et al. 2023's rectified flow. (Not the Step-by-Step
    # tutorial's Claim 4, which is about its variance-exploding DDIM: tests/test_step_by_step.py.)
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
        callback=lambda i, t, s, x, x0: flow_states.append(x),
    )
    for k, (xd, xf) in enumerate(zip(ddim_states, flow_states, strict=True)):
        assert torch.allclose(xd / scales[k + 1], xf, atol=1e-8), k
    # and the end point is the data distribution's neighbourhood (not a trivial agreement)
    assert (ddim_states[-1].mean(0) - mix.sample(20000)[0].mean(0)).norm() < 0.2


def test_a_velocity_network_is_a_denoiser_of_its_path_and_matches_ddpm_at_equal_snr():
    # ModelDenoiser turns the velocity into (x_0, eps) on the flow path; at the flow time with the
    # DDPM time's SNR and x scaled by 1 / (alpha + sigma), both oracles are the same function.
    mix = _mixture()
    path, flow = DDPMPath.from_schedule("linear", 1000), FlowPath()
    ddpm_oracle = MixtureDenoiser(mix, path)
    as_den = ModelDenoiser(_VelocityNet(mix), flow, "velocity")
    x = torch.randn(64, 2, dtype=torch.float64)
    for t in (1, 17, 250, 600.5, 999):
        a, s = path.alpha_sigma(t)
        tau = flow.t_at_noise_fraction(path.noise_fraction(t))
        x0_d, eps_d = ddpm_oracle(x, t)
        x0_f, eps_f = as_den(x / (a + s), tau)
        assert torch.allclose(x0_d, x0_f.double(), atol=1e-5), t
        assert torch.allclose(eps_d, eps_f.double(), atol=1e-5), t


def test_ddim_on_a_flow_model_matches_fm_euler_on_it_and_ddim_on_ddpm():
    # every sampler runs on a velocity model's own path; with the DDPM grid carried over by
    # log-SNR, DDIM on the flow model equals flow-Euler on the same grid (equal SNR), and
    # equals DDIM on the DDPM oracle (the samplers are scale-equivariant: x_flow = x_ddpm / (a + s))
    mix = _mixture()
    path, flow = DDPMPath.from_schedule("cosine", 1000), FlowPath()
    den = ModelDenoiser(_VelocityNet(mix), flow, "velocity")
    ts = timesteps_for("ddim", flow, 8, grid_path=path)
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_start = flow.prior_std(ts[0]) * x_T
    a = sample_ddim(den, flow, x_start, ts)
    b = sample_ode("euler", den, flow, x_start, ts)
    assert torch.allclose(a, b, atol=1e-5)
    c = sample_ddim(MixtureDenoiser(mix, path), path, x_T, ddim_timesteps(path.T, 8))
    assert torch.allclose(a, c, atol=1e-4)
    assert (a.mean(0) - mix.sample(20000)[0].mean(0)).norm() < 0.3  # and they reach the data


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
