"""Improved DDPM's pieces against closed forms: KL, the discretized decoder, the bound on Gaussian
data, importance sampling, loss weightings, learned variances and zero-terminal SNR."""

import math

import pytest
import torch

from difusion.diffusion import DDPMPath
from difusion.diffusion.importance import LossAwareSampler
from difusion.diffusion.likelihood import (
    discretized_gaussian_log_likelihood,
    normal_kl,
    vlb_bits_per_dim,
)
from difusion.diffusion.losses import diffusion_loss
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
from difusion.diffusion.schedules import make_betas, rescale_zero_terminal_snr
from difusion.diffusion.variance import (
    learned_log_variance,
)
from difusion.diffusion.weighting import loss_weight


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    lv1, lv2 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    ours = normal_kl(m1, lv1, m2, lv2)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()),
        torch.distributions.Normal(m2, (0.5 * lv2).exp()),
    )
    assert torch.allclose(ours, ref, atol=1e-5)
    assert normal_kl(m1, lv1, m1, lv1).abs().max() < 1e-6


@pytest.mark.parametrize("mean,log_scale", [(0.0, -3.0), (0.3, -1.0), (-0.98, -4.0), (0.9, 0.5)])
def test_discretized_decoder_sums_to_one_over_the_256_bins(mean, log_scale):
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0
    logp = discretized_gaussian_log_likelihood(
        levels, torch.full_like(levels, mean), torch.full_like(levels, log_scale)
    )
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    # Of the inner bins, the one that holds the mean gets the most mass (the two edge bins also
    # hold the tails beyond -1 and 1).
    inner = logp[1:-1]
    assert levels[1:-1][inner.argmax()].item() == pytest.approx(mean, abs=1 / 127.5)


def test_importance_sampler_weights_are_unbiased():
    T = 20
    sampler = LossAwareSampler(T, history=10, uniform_mix=0.001)
    L = torch.logspace(1, -3, T, dtype=torch.float64)  # terms that differ by 10^4, like L_t
    for _ in range(10):
        sampler.update(torch.arange(1, T + 1), L)
    p = sampler.probabilities()
    assert p.sum().item() == pytest.approx(1.0)
    assert not torch.allclose(p, torch.full_like(p, 1 / T))  # it does prefer the large terms
    # E_p[w L_t] = sum_t p_t L_t / (T p_t) = mean_t L_t, exactly ...
    assert (p * L / (T * p)).sum().item() == pytest.approx(L.mean().item(), rel=1e-12)
    # ... and by Monte Carlo, with less variance than uniform sampling.
    g = torch.Generator().manual_seed(0)
    t, w = sampler.sample(200_000, g)
    est = (w * L[t - 1]).mean().item()
    assert est == pytest.approx(L.mean().item(), rel=0.01)
    var_is = (w * L[t - 1]).var().item()
    var_uniform = L.var().item()
    assert var_is < 0.1 * var_uniform


def test_importance_sampler_is_uniform_until_every_term_has_a_history():
    sampler = LossAwareSampler(5, history=3)
    sampler.update(torch.tensor([1, 1, 1, 2]), torch.ones(4))
    assert torch.allclose(sampler.probabilities(), torch.full((5,), 0.2, dtype=torch.float64))
    state = sampler.state()
    other = LossAwareSampler(5, history=3)
    other.load_state(state)
    assert torch.equal(other.counts, sampler.counts)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("weighting", ["min-snr", "trunc-snr"])
def test_weightings_are_one_weight_on_the_x0_error_seen_three_ways(prediction, weighting):
    """w_pred ||pred error||^2 must equal w_x0(SNR) ||x_0 error||^2 for the same estimate."""
    path = DDPMPath.from_schedule("cosine", 1000)
    t = torch.tensor([1, 10, 100, 400, 700, 999])
    x0 = torch.randn(6, 4, dtype=torch.float64)
    eps = torch.randn(6, 4, dtype=torch.float64)
    a, s = path.alpha_t(t, x0), path.sigma_t(t, x0)
    x_t = a * x0 + s * eps
    x0_hat = x0 + 0.1 * torch.randn(6, 4, dtype=torch.float64)  # some estimate
    eps_hat = (x_t - a * x0_hat) / s
    v, v_hat = a * eps - s * x0, a * eps_hat - s * x0_hat
    snr = (a**2 / s**2).reshape(-1)
    err = {"eps": eps - eps_hat, "x0": x0 - x0_hat, "v": v - v_hat}[prediction]
    lhs = loss_weight(weighting, prediction, snr, 5.0) * err.pow(2).sum(1)
    w_x0 = snr.clamp(max=5.0) if weighting == "min-snr" else snr.clamp(min=1.0)
    rhs = w_x0 * (x0 - x0_hat).pow(2).sum(1)
    assert torch.allclose(lhs, rhs, rtol=1e-9)


def test_min_snr_weights_are_the_papers_closed_forms():
    snr = torch.tensor([0.01, 0.5, 1.0, 5.0, 20.0, 1000.0], dtype=torch.float64)
    g = 5.0
    expected = {
        "eps": torch.minimum(snr, torch.tensor(g)) / snr,
        "x0": torch.minimum(snr, torch.tensor(g)),
        "v": torch.minimum(snr, torch.tensor(g)) / (snr + 1),
    }
    for pred, want in expected.items():
        assert torch.allclose(loss_weight("min-snr", pred, snr, g), want)
    assert torch.equal(loss_weight("uniform", "eps", snr), torch.ones_like(snr))


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_zero_terminal_snr(name):
    betas = make_betas(name, 1000)
    new = rescale_zero_terminal_snr(betas)
    old_ab, new_ab = torch.cumprod(1 - betas, 0), torch.cumprod(1 - new, 0)
    assert new_ab[-1].item() == 0.0
    assert old_ab[-1].item() > 0.0
    assert new_ab[0].item() == pytest.approx(old_ab[0].item(), rel=1e-12)
    assert bool((new_ab[1:] <= new_ab[:-1]).all())
    assert bool(((new >= 0) & (new <= 1)).all())


def test_learned_variance_interpolates_between_beta_and_beta_tilde():
    path = DDPMPath.from_schedule("linear", 100)
    t = torch.tensor([2, 50, 100])
    ones, zeros = torch.ones(3, 1), torch.zeros(3, 1)
    assert torch.allclose(
        learned_log_variance(path, t, t - 1, ones).exp().squeeze(), path.beta[t].float(), rtol=1e-4
    )
    assert torch.allclose(
        learned_log_variance(path, t, t - 1, zeros).exp().squeeze(),
        path.beta_tilde[t].float(),
        rtol=1e-4,
    )
    half = learned_log_variance(path, t, t - 1, 0.5 * ones).exp().squeeze()
    assert torch.allclose(
        half, (path.beta[t] * path.beta_tilde[t]).sqrt().float(), rtol=1e-4
    )  # geometric mean
    # At t = 1 beta-tilde is 0; its log is clipped to beta-tilde_2, as in improved DDPM.
    t1 = torch.tensor([1])
    assert learned_log_variance(path, t1, t1 - 1, torch.zeros(1, 1)).exp().item() == pytest.approx(
        path.beta_tilde[2].item(), rel=1e-5
    )


def test_mu_prediction_round_trip():
    path = DDPMPath.from_schedule("cosine", 1000)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([1, 2, 500, 1000])
    x_t = path.q_sample(x0, t, torch.randn(4, 3, dtype=torch.float64))
    eps = (x_t - path.alpha_t(t, x0) * x0) / path.sigma_t(t, x0)
    mu = path.target("mu", x0, eps, t)
    c_x0, c_xt, _, _ = path.posterior_coefs(t, t - 1, x0)
    assert torch.allclose(mu, c_x0 * x0 + c_xt * x_t, atol=1e-10)  # Ho et al. eq. 7
    x0_hat, eps_hat = path.to_x0_eps("mu", mu, x_t, t)
    assert torch.allclose(x0_hat, x0, atol=1e-8) and torch.allclose(eps_hat, eps, atol=1e-6)


class _WithVariance:
    def __init__(self, denoiser):
        self.denoiser = denoiser

    def with_variance(self, x_t, t, y=None):
        x0, eps = self.denoiser(x_t, t, y)
        return x0, eps, None


def test_bound_with_the_optimal_denoiser_is_above_the_exact_nll_and_tightens_with_T():
    """Gaussian data N(mu, s^2 I): -log p is known; the VLB with the exact E[x_0|x_t] is above it
    and approaches it as T grows (with sigma^2 = beta_t, the right choice for data of about unit
    variance; beta-tilde keeps a gap from the first steps, Ho et al. Sec. 3.2)."""
    s = 0.5
    mix = GaussianMixture(torch.ones(1), torch.tensor([[0.3, -0.2]]), s**2 * torch.eye(2)[None])
    g = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(4000, g)
    x0 = x0.float()
    exact = 0.5 * math.log2(2 * math.pi * math.e * s**2)  # bits per dimension
    bound, se = {}, {}
    for T, var in ((10, "beta"), (1000, "beta"), (1000, "beta_tilde")):
        path = DDPMPath.from_schedule("cosine", T)
        den = _WithVariance(MixtureDenoiser(mix, path))
        total, terms = vlb_bits_per_dim(
            den, path, x0, variance=var, decoder="gaussian", generator=g
        )
        bound[T, var] = total.mean().item()
        se[T, var] = total.std().item() / math.sqrt(len(total))
        assert bound[T, var] > exact - 3 * se[T, var]
        assert terms.sum().item() == pytest.approx(bound[T, var], rel=1e-6)
    assert bound[10, "beta"] - exact > 0.06  # a coarse chain pays for it ...
    assert bound[1000, "beta"] - exact < 0.04  # ... a fine one is nearly tight
    assert bound[10, "beta"] > bound[1000, "beta"] + 3 * se[1000, "beta"]
    assert bound[1000, "beta_tilde"] - exact > 0.5  # the small variance's gap does not close


def test_hybrid_loss_trains_only_the_variance_through_the_vlb():
    """With the stop-gradient of eq. 16 the VLB term sends no gradient to the mean channels."""
    path = DDPMPath.from_schedule("linear", 100)
    x0 = torch.rand(8, 1, 4, 4) * 2 - 1

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = torch.nn.Parameter(torch.zeros(1))
            self.v = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t, y=None):
            return torch.cat([x * 0 + self.mean, x * 0 + self.v], dim=1)

    net = Net()
    g = torch.Generator().manual_seed(0)
    loss, vlb_t, extras = diffusion_loss(
        net, path, x0, loss="hybrid", learn_sigma=True, hybrid_lambda=1.0, generator=g
    )
    grads = torch.autograd.grad(loss, [net.mean, net.v])
    g2 = torch.Generator().manual_seed(0)
    mse_only, _, _ = diffusion_loss(
        net, path, x0, loss="hybrid", learn_sigma=True, hybrid_lambda=0.0, generator=g2
    )
    grads_mse = torch.autograd.grad(mse_only, [net.mean, net.v])
    assert torch.allclose(grads[0], grads_mse[0])  # the mean learns from L_simple alone
    assert grads_mse[1].item() == 0.0 and grads[1].abs().item() > 0  # the variance from L_vlb
    assert {"mse", "vlb_term"} <= set(extras) and vlb_t.shape == (8,)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp-2m"])
def test_samplers_start_from_pure_noise_with_zero_terminal_snr(sampler):
    """With alpha_bar_T = 0, x_T carries no signal; every sampler must still start at t = T
    (trailing spacing) and, driven by the exact denoiser, reproduce the data's mean and spread."""
    from difusion.sampling.samplers import run_sampler, timesteps_for

    path = DDPMPath(rescale_zero_terminal_snr(make_betas("cosine", 1000)))
    assert path.alpha_bar[-1].item() == 0.0
    mix = GaussianMixture(torch.ones(1), torch.tensor([[1.0, -0.5]]), 0.09 * torch.eye(2)[None])
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(4000, 2, generator=g)
    ts = timesteps_for(sampler, path, 50)
    assert ts[0] == path.T
    x = run_sampler(sampler, MixtureDenoiser(mix, path), path, x_T, ts, eta=0.0,
                    noise=lambda shape: torch.randn(shape, generator=g))  # fmt: skip
    assert torch.isfinite(x).all()
    assert torch.allclose(x.mean(0), torch.tensor([1.0, -0.5]), atol=0.03)
    assert torch.allclose(x.std(0), torch.tensor([0.3, 0.3]), atol=0.03)
