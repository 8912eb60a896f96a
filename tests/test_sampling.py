"""Samplers against a known optimum: the analytic E[x_0 | x_t] of a Gaussian mixture (design tier 2)."""

import pytest
import torch

from difusion.diffusion import DDPMPath
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
from difusion.sampling import PerImageNoise, respaced_timesteps, sample_ddpm, seeds_for


def three_gaussians() -> GaussianMixture:
    pi = torch.tensor([0.5, 0.3, 0.2])
    mu = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    cov = torch.stack(
        [
            torch.tensor([[0.30, 0.10], [0.10, 0.20]]),
            torch.tensor([[0.10, 0.00], [0.00, 0.40]]),
            torch.tensor([[0.25, -0.15], [-0.15, 0.25]]),
        ]
    )
    return GaussianMixture(pi, mu, cov)


def fit_check(mix: GaussianMixture, x: torch.Tensor, tol_w=0.03, tol_mu=0.06, tol_cov=0.06):
    """Assign samples to the most likely component and compare weights, means and covariances."""
    x = x.double()
    # Responsibilities at t = 0 (a = 1, s ~ 0) are just the mixture's own posterior over components.
    d = x[:, None, :] - mix.mu[None]
    prec = torch.linalg.inv(mix.cov)
    log_p = mix.pi.log() - 0.5 * (
        torch.einsum("nki,kij,nkj->nk", d, prec, d) + torch.logdet(mix.cov)
    )
    k = log_p.argmax(1)
    for j in range(len(mix.pi)):
        xj = x[k == j]
        assert abs(len(xj) / len(x) - mix.pi[j].item()) < tol_w, ("weight", j)
        assert torch.allclose(xj.mean(0), mix.mu[j], atol=tol_mu), ("mean", j)
        assert torch.allclose(torch.cov(xj.T), mix.cov[j], atol=tol_cov), ("cov", j)


@pytest.mark.parametrize("schedule,variance", [("linear", "beta"), ("cosine", "beta_tilde")])
def test_ddpm_with_oracle_reproduces_the_mixture(schedule, variance):
    mix = three_gaussians()
    path = DDPMPath.from_schedule(schedule, 1000)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(6000, 2, generator=g, dtype=torch.float64)
    x = sample_ddpm(
        MixtureDenoiser(mix, path),
        path,
        x_T,
        variance=variance,
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
    )
    fit_check(mix, x)


def test_respaced_ddpm_with_oracle_reproduces_the_mixture():
    """Skipping steps (100 of 1000) with the skip posterior still lands on the data distribution."""
    mix = three_gaussians()
    path = DDPMPath.from_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(6000, 2, generator=g, dtype=torch.float64)
    ts = respaced_timesteps(1000, 100)
    assert ts[0] == 1000 and ts[-1] == 0 and len(ts) == 101
    x = sample_ddpm(
        MixtureDenoiser(mix, path),
        path,
        x_T,
        timesteps=ts,
        variance="beta_tilde",
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
    )
    fit_check(mix, x)


def test_wrong_denoiser_fails_the_check():
    """The check can fail: a sampler whose denoiser ignores one component does not pass."""
    mix = three_gaussians()
    wrong = GaussianMixture(torch.tensor([0.5, 0.5, 1e-6]), mix.mu, mix.cov)
    path = DDPMPath.from_schedule("linear", 200)
    g = torch.Generator().manual_seed(0)
    x = sample_ddpm(
        MixtureDenoiser(wrong, path),
        path,
        torch.randn(3000, 2, generator=g).double(),
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
    )
    with pytest.raises(AssertionError):
        fit_check(mix, x)


def test_samples_do_not_depend_on_the_batch():
    """Per-image seeds: image i is the same whether sampled alone or in a batch of 5."""
    mix = three_gaussians()
    path = DDPMPath.from_schedule("linear", 50)
    den = MixtureDenoiser(mix, path)

    def run(seeds):
        noise = PerImageNoise(seeds)
        x_T = noise.randn((len(seeds), 2)).double()
        return sample_ddpm(den, path, x_T, noise=lambda s: noise.randn(s).double())

    batch = run(seeds_for(5, seed=10))
    alone = run([13])
    assert torch.allclose(batch[3], alone[0])
    assert not torch.allclose(batch[2], alone[0])


def test_oracle_posterior_mean_of_a_single_gaussian():
    """For one Gaussian N(m, c) in 1-D, E[x_0|x_t] = m + a c (x_t - a m) / (a^2 c + s^2)."""
    mix = GaussianMixture(torch.ones(1), torch.tensor([[0.5]]), torch.tensor([[[2.0]]]))
    a, s, xt = 0.6, 0.8, torch.tensor([[1.7]])
    expected = 0.5 + a * 2.0 * (1.7 - a * 0.5) / (a * a * 2.0 + s * s)
    assert mix.posterior_mean(xt, torch.tensor(a), torch.tensor(s)).item() == pytest.approx(
        expected
    )
