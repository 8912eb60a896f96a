"""The ODE log-likelihood: exact for a Gaussian under its analytic flow; Hutchinson is unbiased."""

import math

import pytest
import torch

from difusion.diffusion.flow import FlowPath, GaussianFlow
from difusion.diffusion.likelihood_ode import (
    bits_per_dim,
    dequantize,
    divergence_exact,
    divergence_hutchinson,
    ode_log_likelihood,
)


@pytest.mark.parametrize("kind,sigma_min", [("rectified", 0.0), ("ot", 0.1)])
def test_ode_likelihood_of_a_gaussian_is_its_density(kind, sigma_min):
    g = GaussianFlow(FlowPath(kind, sigma_min), torch.tensor([1.0, -2.0]), 0.7)
    x0 = g.mu + 1.3 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0)).double()
    log_p, x1 = ode_log_likelihood(lambda x, t, y=None: g.velocity(x, t), x0, steps=40)
    exact = g.log_prob(x0, 0.0)  # N(mu, s^2 + sigma_min^2)
    assert torch.allclose(log_p, exact, atol=1e-6), (log_p - exact).abs().max()
    # the ODE maps the data point to the noise it came from
    assert torch.allclose(g.flow_map(x1, 0.0), x0, atol=1e-6)
    # a wrong density would not match: the same points under N(mu, s^2) (sigma_min ignored)
    if sigma_min:
        wrong = GaussianFlow(FlowPath(), g.mu, 0.7).log_prob(x0, 0.0)
        assert (wrong - log_p).abs().mean() > 0.01


def _field():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))
    return net.double()


def test_hutchinson_is_unbiased_against_the_exact_divergence():
    net = _field()
    x = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    v = net(x)
    exact = divergence_exact(v, x)
    # the exact divergence is the trace of the Jacobian
    jac = torch.autograd.functional.jacobian(lambda a: net(a).sum(0), x.detach())  # (6, 8, 6)
    trace = torch.stack([jac[:, n, :].diagonal().sum() for n in range(8)])
    assert torch.allclose(exact, trace, atol=1e-10)
    g = torch.Generator().manual_seed(1)
    k = 20000
    xs = x.detach().repeat(k, 1).requires_grad_(True)
    vs = net(xs)
    z = torch.randint(0, 2, xs.shape, generator=g).double() * 2 - 1
    est = divergence_hutchinson(vs, xs, z).reshape(k, 8)
    mean, se = est.mean(0), est.std(0) / math.sqrt(k)
    assert ((mean - exact.detach()).abs() < 4 * se + 1e-9).all(), (mean, exact, se)
    assert (est.std(0) > 0).all()  # a real estimator, not the exact value


def test_hutchinson_likelihood_is_unbiased():
    # a nonlinear 6-D field: the trajectory does not depend on z, so the Hutchinson log-likelihood
    # averages to the exact-divergence one (same solver), with a spread that is not zero
    net = _field()
    x0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(2)).double()
    field = lambda x, t, y=None: net(x)  # noqa: E731
    exact, _ = ode_log_likelihood(field, x0, steps=4)
    k = 4000
    est, _ = ode_log_likelihood(
        field,
        x0.repeat(k, 1),
        steps=4,
        divergence="hutchinson",
        generator=torch.Generator().manual_seed(3),
    )
    se = est.std() / math.sqrt(k)
    assert est.std() > 1e-3 and abs(est.mean() - exact[0]) < 4 * se, (est.mean(), exact, se)


def test_bits_per_dim_convention():
    # a density of 2^-D (uniform on a box of side 2) on bins of width 2/255 gives every bin the
    # probability (1/255)^D: bits/dim = 1 - log2(2/255) = log2(255), about 8 bits a pixel
    d = 784
    log_p = torch.tensor([-d * math.log(2.0)], dtype=torch.float64)
    assert abs(bits_per_dim(log_p, d).item() - math.log2(255.0)) < 1e-9
    x = torch.zeros(1000, 3)
    dq = dequantize(x, torch.Generator().manual_seed(0))
    assert dq.abs().max() <= 1 / 255 and dq.std() > 0.5 / 255


def test_ode_likelihood_of_a_ddpm_denoiser_is_the_data_density():
    """The probability-flow ODE of a DDPM path, driven by the exact denoiser of a Gaussian mixture
    and run in rectified-flow coordinates (sampling/ode.py), gives the mixture's log-density: the
    ODE likelihood of a DDPM model is the same computation as a flow model's."""
    from difusion.diffusion import DDPMPath
    from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
    from difusion.diffusion.schedules import make_betas
    from difusion.sampling.ode import ode_velocity

    path = DDPMPath(make_betas("cosine", 1000))
    mix = GaussianMixture(
        torch.tensor([0.3, 0.7]),
        torch.tensor([[-0.6, 0.2], [0.5, -0.3]]),
        torch.stack([0.05 * torch.eye(2), torch.tensor([[0.08, 0.03], [0.03, 0.04]])]),
    )
    x0, _ = mix.sample(100, torch.Generator().manual_seed(0))
    velocity = ode_velocity(MixtureDenoiser(mix, path), path)
    log_p, _ = ode_log_likelihood(velocity, x0, steps=100)
    comp = torch.distributions.MultivariateNormal(mix.mu, mix.cov)
    exact = torch.logsumexp(mix.pi.log() + comp.log_prob(x0[:, None, :]), dim=1)
    assert (log_p - exact).abs().max() < 0.02, (log_p - exact).abs().max()


def test_model_denoiser_keeps_its_graph_only_when_asked():
    """The ODE likelihood differentiates a trained network through ModelDenoiser; samplers must not
    pay for a graph. A network whose eps is 2 x_t: d(sum eps)/dx_t = 2 per element."""
    from difusion.diffusion import DDPMPath
    from difusion.diffusion.schedules import make_betas
    from difusion.sampling import ModelDenoiser

    path = DDPMPath(make_betas("cosine", 1000))
    net = lambda x, t, y=None: 2 * x  # noqa: E731
    x = torch.randn(3, 4, requires_grad=True)
    _, eps = ModelDenoiser(net, path, differentiable=True)(x, 500)
    (g,) = torch.autograd.grad(eps.sum(), x)
    assert torch.allclose(g, torch.full_like(g, 2.0))
    _, eps = ModelDenoiser(net, path)(x, 500)
    assert not eps.requires_grad


@pytest.mark.parametrize("kind,sigma_min", [("rectified", 0.0), ("ot", 0.1)])
def test_ode_likelihood_in_the_paths_own_time_is_exact_on_flow_paths(kind, sigma_min):
    """A flow run's likelihood integrates its ODE in its own time (sampling/ode.py path_velocity):
    with the exact denoiser of a Gaussian the result is the closed-form density of the (smoothed)
    data, also on the OT path, whose data end x_0 + sigma_min eps is not the rectified flow's."""
    from difusion.diffusion.flow import FlowPath, GaussianFlow
    from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
    from difusion.sampling.ode import path_velocity

    path = FlowPath(kind, sigma_min)
    mu, s = torch.tensor([0.5, -0.3]), 0.4
    den = MixtureDenoiser(
        GaussianMixture(torch.ones(1), mu[None], (s**2 * torch.eye(2))[None]), path
    )
    velocity = path_velocity(lambda x, t, y=None: den(x, t.clamp(1e-6, 1 - 1e-6), y), path)
    x0 = mu + (s**2 + sigma_min**2) ** 0.5 * torch.randn(50, 2, dtype=torch.float64)
    log_p, _ = ode_log_likelihood(velocity, x0, steps=100)
    assert (log_p - GaussianFlow(path, mu, s).log_prob(x0, 0.0)).abs().max() < 1e-5
