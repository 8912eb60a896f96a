"""Step-by-Step Diffusion (Nakkiran et al. 2024) on its own VE process: its claims checked exactly on
Gaussian-mixture data, its pseudocode against the lab's samplers, and its training target learned."""

import math

import numpy as np
import pytest
import torch

from difusion.diffusion import step_by_step as S
from difusion.diffusion.losses import step_pair
from difusion.diffusion.oracle import EmpiricalDenoiser, GaussianMixture, MixtureDenoiser
from difusion.diffusion.ve import VEPath
from difusion.errors import ConfigError
from difusion.sampling import sample_ddim
from difusion.sampling.step_by_step import (
    mean_predictor,
    sample_pseudocode2,
    sample_pseudocode3,
)

F64 = torch.float64


def _mix1d():
    return GaussianMixture(
        torch.tensor([0.3, 0.7]), torch.tensor([[-1.0], [1.5]]), torch.tensor([[[0.04]], [[0.09]]])
    )


def _mix2d():
    cov = torch.tensor([[[0.05, 0.02], [0.02, 0.03]], [[0.02, 0.0], [0.0, 0.08]]])
    return GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([[-1.0, 0.5], [1.0, -0.5]]), cov)


def test_claim2_holds_for_the_exact_conditional_expectations():
    # E[x_{t-dt} | x_t] computed from its definition (the marginal at t - dt seen through one step
    # of noise) equals (dt / t) E[x_0 | x_t] + (1 - dt / t) x_t, with E[x_0 | x_t] from the data
    mix, path = _mix2d(), VEPath(3.0, T=100)
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 2
    for k in (1, 2, 7, 50, 100):
        direct = S.exact_step_mean(mix, path, x, k)
        x0 = mix.posterior_mean(x, 1.0, path.sigma(k).item())
        assert torch.allclose(direct, S.step_mean_from_x0(x0, x, k), atol=1e-12), k
        assert torch.allclose(S.x0_from_step_mean(direct, x, k), x0, atol=1e-10), k
    # and the lab's path turns an x_prev output into the same x_0 (posterior_coefs on VE)
    k = 37
    direct = S.exact_step_mean(mix, path, x, k)
    x0_path, _ = path.to_x0_eps("x_prev", direct, x, k)
    assert torch.allclose(x0_path, mix.posterior_mean(x, 1.0, path.sigma(k).item()), atol=1e-9)


def test_the_1d_reverse_conditional_is_a_normalised_mixture_with_the_right_mean():
    mix, path = _mix1d(), VEPath(3.0, T=50)
    for k, x_t in ((1, 0.2), (10, -1.3), (50, 2.5)):
        w, mean, var = S.reverse_conditional_1d(mix, path, x_t, k)
        assert abs(w.sum().item() - 1) < 1e-12 and bool((var > 0).all())
        direct = S.exact_step_mean(mix, path, torch.tensor([[x_t]], dtype=F64), k)
        assert abs((w * mean).sum().item() - direct.item()) < 1e-12


def test_fact1_kl_falls_as_delta_t_squared():
    # Fact 1: p(x_{t-dt} | x_t) is Gaussian with variance sigma_q^2 dt up to terms that vanish with
    # dt; at a fixed tutorial time t = 1/2 the KL to that Gaussian falls as dt^2 (slope 2 in log-log)
    mix = _mix1d()
    Ts = (50, 100, 200, 400, 800)
    kls = [S.fact1_kl(mix, VEPath(3.0, T=T), 0.3, T // 2) for T in Ts]
    slopes = np.diff(np.log(kls)) / np.diff(np.log([1 / T for T in Ts]))
    assert all(1.9 < s < 2.1 for s in slopes), slopes
    assert kls[0] < 1e-3  # and it is small already at 50 steps
    # it is not small for one big step: the reverse conditional is bimodal there
    assert S.fact1_kl(mix, VEPath(3.0, T=2), 0.3, 1) > 0.1


def test_pseudocodes_2_and_3_with_the_exact_mean_reproduce_the_mixture():
    mix, path = _mix1d(), VEPath(3.0, T=1000)
    f = mean_predictor(MixtureDenoiser(mix, path))
    g = torch.Generator().manual_seed(1)
    # start from the exact p_1 (the data plus N(0, sigma_q^2)), so only the sampler is tested
    x1 = mix.sample(10000, generator=g)[0] + 3.0 * torch.randn(10000, 1, generator=g, dtype=F64)
    torch.manual_seed(2)
    stochastic = sample_pseudocode2(f, path, x1)
    deterministic = sample_pseudocode3(f, path, x1)
    for out, extra_var in ((stochastic, S.step_variance(path)), (deterministic, 0.0)):
        right = out[:, 0] > 0.25
        assert abs(right.double().mean().item() - 0.7) < 0.015
        assert abs(out[right].mean().item() - 1.5) < 0.02
        # Pseudocode 2 adds N(0, sigma_q^2 dt) at its last step too: the data's variance plus that
        assert abs(out[right].var().item() - (0.09 + extra_var)) < 0.01
        assert abs(out[~right].var().item() - (0.04 + extra_var)) < 0.01


def test_pseudocode3_is_the_labs_ddim_step_for_step():
    mix, path = _mix2d(), VEPath(4.0, T=200)
    den = MixtureDenoiser(mix, path)
    x1 = torch.randn(500, 2, generator=torch.Generator().manual_seed(3), dtype=F64) * 4
    a, b = [], []
    sample_pseudocode3(mean_predictor(den), path, x1, callback=lambda s: a.append(s.x))
    sample_ddim(den, path, x1, list(range(path.T, -1, -1)), callback=lambda s: b.append(s.x))
    assert len(a) == len(b) == path.T
    for xa, xb in zip(a, b, strict=True):
        assert torch.allclose(xa, xb, atol=1e-10)


def test_the_ddim_step_maps_a_point_mass_exactly():
    # p* = delta(x*): E[x_0 | x_t] = x*, and the lambda-step shrinks x_t - x* by sigma_{t-dt} / sigma_t,
    # so N(x*, sigma_t^2) goes to N(x*, sigma_{t-dt}^2) exactly, and x_0 = x* at the end
    path = VEPath(2.0, T=16)
    star = torch.tensor([[0.7, -1.2]], dtype=F64)

    def f(x, k):
        return S.step_mean_from_x0(star.expand_as(x), x, k)

    x = star + path.sigma(path.T).item() * torch.randn(1000, 2, dtype=F64)
    for k in range(path.T, 0, -1):
        ratio = path.sigma(k - 1).item() / path.sigma(k).item()
        new = x + S.ddim_lambda(path, k) * (f(x, k) - x)
        assert torch.allclose(new - star, ratio * (x - star), atol=1e-12), k
        x = new
    assert torch.allclose(x, star.expand_as(x), atol=1e-12)


def test_the_ddim_step_matches_the_probability_flow_ode_to_first_order():
    # at a fixed tutorial time t, DDIM's step and the Euler step of the VE probability-flow ODE
    # differ by O(dt^2): halving dt divides the gap by about 4
    mix = _mix2d()
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(5), dtype=F64) * 3
    gaps = []
    for T in (100, 200, 400, 800):
        path = VEPath(3.0, T=T)
        k = T // 2
        x0 = mix.posterior_mean(x, 1.0, path.sigma(k).item())
        ddim = x + S.ddim_lambda(path, k) * (S.step_mean_from_x0(x0, x, k) - x)
        gaps.append((ddim - S.pf_ode_euler_step(path, x0, x, k)).abs().max().item())
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert all(3.8 < r < 4.2 for r in ratios), ratios


def test_pseudocode1_pairs_regress_to_the_step_mean():
    # x_{t-dt} drawn first and one step of noise added: the least-squares slope of x_{t-dt} on x_t
    # is E[x_{t-dt} | x_t] / x_t for N(0, v) data, (v + sigma_{t-dt}^2) / (v + sigma_t^2)
    path, v, k = VEPath(2.0, T=10), 0.5, 4
    g = torch.Generator().manual_seed(6)
    x0 = math.sqrt(v) * torch.randn(400000, 1, generator=g, dtype=F64)
    x_t, x_prev = step_pair(path, x0, torch.full((len(x0),), k), g)
    slope = ((x_t * x_prev).sum() / (x_t * x_t).sum()).item()
    expected = (v + path.sigma(k - 1).item() ** 2) / (v + path.sigma(k).item() ** 2)
    assert abs(slope - expected) < 3e-3
    assert abs(x_t.var().item() - (v + path.sigma(k).item() ** 2)) < 0.02


def test_v_converts_on_the_ve_path():
    path = VEPath(5.0, T=100)
    g = torch.Generator().manual_seed(7)
    x0, eps = torch.randn(50, 3, generator=g, dtype=F64), torch.randn(50, 3, generator=g, dtype=F64)
    for k in (1, 30, 100):
        x_t = path.q_sample(x0, k, eps)
        for pred in ("eps", "x0", "v", "mu", "x_prev"):
            out = path.target(pred, x0, eps, k)
            back_x0, back_eps = path.to_x0_eps(pred, out, x_t, k)
            assert torch.allclose(back_x0, x0, atol=1e-9), (pred, k)
            assert torch.allclose(back_eps, eps, atol=1e-9), (pred, k)


def test_the_empirical_optimum_memorises_the_training_set():
    # Sec. 3.7: the exact minimiser of the empirical risk on 12 points only returns those points
    path = VEPath(3.0, T=1000)
    g = torch.Generator().manual_seed(8)
    grid = torch.cartesian_prod(torch.arange(3.0), torch.arange(4.0)).double() - 1.5
    train = grid + 0.1 * torch.randn(12, 2, generator=g, dtype=F64)
    f = mean_predictor(EmpiricalDenoiser(train, path))
    x1 = torch.randn(200, 2, generator=torch.Generator().manual_seed(9), dtype=F64) * 3
    ends = sample_pseudocode3(f, path, x1)
    deterministic = torch.cdist(ends, train).min(dim=1).values
    assert deterministic.median() < 1e-9 and deterministic.quantile(0.95) < 1e-3
    stochastic = torch.cdist(sample_pseudocode2(f, path, x1), train).min(dim=1).values
    # within the noise of Pseudocode 2's last step, sigma_q sqrt(dt) = 0.095 (2-D: median 1.18 sd)
    assert stochastic.median() < 2 * math.sqrt(S.step_variance(path))
    reached = torch.cdist(ends, train).argmin(1)
    assert len(set(reached.tolist())) == 12  # every training point is reached


def test_identities_refuse_another_path():
    from difusion.diffusion import DDPMPath

    with pytest.raises(ConfigError, match="discrete VE path"):
        S.step_variance(DDPMPath.from_schedule("linear", 100))
    with pytest.raises(ConfigError, match="discrete VE path"):
        S.step_variance(VEPath(1.0))


def test_a_small_network_on_the_tutorial_process_learns_and_does_not_memorise(tmp_path):
    # the sbs-toy2d preset (diffusion.path=ve) trained on 16 moons points: its DDIM samples are near
    # the 16 points, but not copies of them, which the exact empirical optimum returns
    from difusion.config import load_config
    from difusion.data import load_dataset
    from difusion.runs import load_run
    from difusion.training.loop import train

    overrides = ["data.n=16", "diffusion.prediction=x0", "diffusion.T=200", "train.steps=800"]
    overrides += ["sample.n=16", "sample.steps=200", "train.threads=1"]
    train(load_config("sbs-toy2d", overrides), tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert run.path.discrete and run.path.T == 200 and run.model.prediction == "x0"
    points = load_dataset("toy2d", distribution="moons", n=16).data.double()
    x1 = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)) * run.path.prior_std(200)
    learned = sample_pseudocode3(mean_predictor(run.model.denoiser(run.settings())), run.path, x1)
    fine = VEPath(5.0, T=4000)
    exact = sample_pseudocode3(mean_predictor(EmpiricalDenoiser(points, fine)), fine, x1.double())
    noise = torch.randn(400, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    nearest_noise = torch.cdist(noise, points).min(1).values.median()
    nearest_exact = torch.cdist(exact, points).min(1).values.median()
    nearest_learned = torch.cdist(learned.double(), points).min(1).values.median()
    assert nearest_exact < 0.01  # the perfect fit copies its training points
    # the network learned where the points are, without copying them
    assert 0.05 < nearest_learned < 0.5 * nearest_noise, (nearest_learned, nearest_noise)


def test_the_elbo_is_a_weighted_regression_in_every_parameterization():
    # Sec. 5: the KL between the true posterior step and the model's N(mu_hat, sigma_q^2 dt) is
    # w || pred_hat - pred ||^2 + const; the constant is the KL at the exact prediction
    from difusion.diffusion.likelihood import normal_kl

    path = VEPath(4.0, T=50)
    g = torch.Generator().manual_seed(10)
    x0, eps = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
    logvar = math.log(S.step_variance(path))
    for k in (2, 5, 50):  # (k = 1 is the decoder term: q(x_0 | x_1, x_0) is a point mass)
        x_t = path.q_sample(x0, k, eps)
        mean, var_tilde, _ = path.posterior(x0, x_t, k)
        for pred in ("x_prev", "x0", "eps", "v"):
            truth = path.target(pred, x0, eps, k)
            wrong = truth + 0.01 * torch.randn(truth.shape, generator=g, dtype=F64)
            x0_hat, _ = path.to_x0_eps(pred, wrong, x_t, k)
            mean_hat = path.posterior(x0_hat, x_t, k)[0]
            kl = normal_kl(mean, var_tilde.log(), mean_hat, torch.full_like(mean, logvar))
            const = normal_kl(mean, var_tilde.log(), mean, torch.full_like(mean, logvar))
            w = S.elbo_weight(path, k, pred)
            assert torch.allclose(kl - const, w * (wrong - truth) ** 2, rtol=1e-8), (pred, k)
    assert S.elbo_weight(path, 10, "eps") == pytest.approx(1 / 20)  # dt / (2 t) at t = 10 dt
