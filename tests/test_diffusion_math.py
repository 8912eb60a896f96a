"""Closed forms of the DDPM Gaussian path (design tier 1)."""

import math

import pytest
import torch

from difusion.diffusion import DDPMPath, make_betas
from difusion.diffusion.parameterization import target, to_x0_eps
from difusion.errors import ConfigError


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_schedule_endpoints_and_monotonicity(name):
    path = DDPMPath.from_schedule(name, 1000)
    assert path.alpha_bar.dtype == torch.float64
    assert path.alpha_bar[0] == 1.0
    assert torch.all(path.beta[1:] > 0) and torch.all(path.beta[1:] < 1)
    assert torch.all(torch.diff(path.alpha_bar) < 0)  # strictly more noise every step
    assert path.alpha_bar[-1] < 1e-3  # almost pure noise at t = T


def test_linear_schedule_values_and_rescaling():
    b = make_betas("linear", 1000)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    # Rescaled for T = 250: 4x the betas, and nearly the same terminal alpha_bar.
    b250 = make_betas("linear", 250)
    assert b250[0].item() == pytest.approx(4e-4) and b250[-1].item() == pytest.approx(0.08)
    ab1000 = torch.cumprod(1 - b, 0)[-1]
    ab250 = torch.cumprod(1 - b250, 0)[-1]
    assert math.log(ab250) == pytest.approx(math.log(ab1000), rel=0.05)


def test_cosine_schedule_matches_its_alpha_bar_formula():
    T, s = 1000, 0.008
    path = DDPMPath.from_schedule("cosine", T)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    expected = f / f[0]
    # Equal until the 0.999 clip of beta bites at the very end.
    assert torch.allclose(path.alpha_bar[:990], expected[:990], rtol=1e-10)
    assert path.beta.max().item() == pytest.approx(0.999)


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="linear, cosine, sigmoid"):
        make_betas("quadratic", 10)


def test_q_sample_equals_t_single_steps_composed():
    """q(x_t|x_0) (eq. 4) equals t applications of q(x_t|x_{t-1}) (eq. 2): Monte Carlo moments."""
    torch.manual_seed(0)
    path = DDPMPath.from_schedule("linear", 1000)
    x0 = torch.tensor([[1.5, -0.5]]).repeat(50_000, 1)
    t = 300
    x = x0.clone()
    for step in range(1, t + 1):
        x = path.q_step(x, step, torch.randn_like(x))
    ab = path.alpha_bar[t].item()
    assert torch.allclose(x.mean(0), math.sqrt(ab) * x0[0], atol=0.02)
    assert torch.allclose(x.var(0), torch.full((2,), 1 - ab), rtol=0.04)
    direct = path.q_sample(x0, t, torch.randn_like(x0))
    assert torch.allclose(direct.mean(0), x.mean(0), atol=0.02)


def test_posterior_is_bayes_rule_on_gaussian_data():
    """With x_0 ~ N(m, v) the joint of (x_{t-1}, x_t) is Gaussian; its conditional on (x_t, x_0)
    computed by Bayes' rule must equal eqs. 6-7."""
    path = DDPMPath.from_schedule("cosine", 100)
    # t = 1 is degenerate (x_0 is known): the posterior is the point x_0.
    mean, beta_tilde, _ = path.posterior(torch.tensor([[0.7]]), torch.tensor([[-1.3]]), 1)
    assert mean.item() == pytest.approx(0.7) and beta_tilde.item() == 0.0
    for t in [2, 37, 100]:
        ab_prev = path.alpha_bar[t - 1].item()
        a_t = path.alpha_table[t].item()
        # x_{t-1} | x_0 ~ N(sqrt(ab_prev) x0, 1 - ab_prev); x_t | x_{t-1} ~ N(sqrt(a_t) x_{t-1}, 1 - a_t).
        # Bayes: precision = 1/(1-ab_prev) + a_t/(1-a_t).
        prec = 1 / (1 - ab_prev) + a_t / (1 - a_t)
        x0, xt = (
            torch.tensor([[0.7]], dtype=torch.float64),
            torch.tensor([[-1.3]], dtype=torch.float64),
        )
        mean_bayes = (
            math.sqrt(ab_prev) * 0.7 / (1 - ab_prev) + math.sqrt(a_t) * -1.3 / (1 - a_t)
        ) / prec
        mean, beta_tilde, beta = path.posterior(x0, xt, t)
        assert mean.item() == pytest.approx(mean_bayes, rel=1e-6, abs=1e-9)
        assert beta_tilde.item() == pytest.approx(1 / prec, rel=1e-6, abs=1e-12)
        assert beta.item() == pytest.approx(path.beta[t].item(), rel=1e-6)
        # Eq. 7's coefficients in Ho et al.'s own names agree with the general formula.
        ab_t, b_t = path.alpha_bar[t], path.beta[t]
        coef = (ab_prev**0.5 * b_t / (1 - ab_t)) * 0.7 + (
            a_t**0.5 * (1 - ab_prev) / (1 - ab_t)
        ) * -1.3
        assert mean.item() == pytest.approx(coef.item(), rel=1e-6, abs=1e-9)
        assert path.beta_tilde[t].item() == pytest.approx(1 / prec, rel=1e-6, abs=1e-12)


def test_skip_posterior_is_bayes_rule():
    """Respaced posterior q(x_s | x_t, x_0) for s < t - 1, by Bayes' rule on the two marginals."""
    path = DDPMPath.from_schedule("linear", 1000)
    t, s = 800, 500
    ab_t, ab_s = path.alpha_bar[t].item(), path.alpha_bar[s].item()
    a_ts = ab_t / ab_s  # x_t | x_s ~ N(sqrt(a_ts) x_s, 1 - a_ts)
    prec = 1 / (1 - ab_s) + a_ts / (1 - a_ts)
    mean_bayes = (math.sqrt(ab_s) * 0.2 / (1 - ab_s) + math.sqrt(a_ts) * 0.9 / (1 - a_ts)) / prec
    mean, var, _ = path.posterior(
        torch.tensor([[0.2]], dtype=torch.float64), torch.tensor([[0.9]], dtype=torch.float64), t, s
    )
    assert mean.item() == pytest.approx(mean_bayes, rel=1e-6)
    assert var.item() == pytest.approx(1 / prec, rel=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_parameterization_round_trips(prediction):
    torch.manual_seed(1)
    path = DDPMPath.from_schedule("cosine", 1000)
    x0, eps = torch.randn(64, 3), torch.randn(64, 3)
    t = torch.randint(1, 1001, (64,))
    a, s = path.alpha_t(t, x0), path.sigma_t(t, x0)
    xt = a * x0 + s * eps
    out = target(prediction, x0, eps, a, s)
    x0_hat, eps_hat = to_x0_eps(prediction, out.double(), xt.double(), a.double(), s.double())
    assert torch.allclose(x0_hat.float(), x0, atol=1e-3 if prediction == "eps" else 1e-5)
    assert torch.allclose(eps_hat.float(), eps, atol=1e-3 if prediction == "x0" else 1e-5)


def test_v_is_alpha_eps_minus_sigma_x0():
    path = DDPMPath.from_schedule("linear", 1000)
    x0, eps = torch.ones(1, 1), torch.full((1, 1), 2.0)
    a, s = path.alpha_t(500, x0), path.sigma_t(500, x0)
    assert target("v", x0, eps, a, s).item() == pytest.approx((a * 2 - s * 1).item())
    assert (a**2 + s**2).item() == pytest.approx(1.0)


def test_eps_parameterized_mean_equals_eq_11():
    """The posterior mean at x0_hat(eps) equals (1/sqrt(alpha_t))(x_t - beta_t/sqrt(1-alpha_bar_t) eps)."""
    torch.manual_seed(2)
    path = DDPMPath.from_schedule("linear", 1000)
    xt, eps = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    for t in [2, 100, 999]:
        a, s = path.alpha_t(t, xt), path.sigma_t(t, xt)
        x0_hat, _ = to_x0_eps("eps", eps, xt, a, s)
        mean, _, _ = path.posterior(x0_hat, xt, t)
        eq11 = (xt - path.beta[t] / (1 - path.alpha_bar[t]).sqrt() * eps) / path.alpha_table[
            t
        ].sqrt()
        assert torch.allclose(mean, eq11, atol=1e-10)


def test_rescaled_linear_schedule_refuses_beta_above_one():
    assert make_betas("linear", 21).max() < 1
    with pytest.raises(ConfigError, match="diffusion.T > 20"):
        make_betas("linear", 10)
