"""Energy-based models and score matching (src/difusion/ebm/): SGLD against the moments of known
densities (a Gaussian, including Euler-Maruyama's exact stationary variance, and a two-mode
mixture), denoising score matching against a Gaussian's analytic noisy score, annealed Langevin with
the lab's exact mixture scores, score = -eps / sigma_t for the exact DDPM denoiser, and a tiny
contrastive-divergence EBM that must learn."""

import json
import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from difusion.config import load_config
from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
from difusion.diffusion.path import DDPMPath
from difusion.ebm import (
    EnergyMLP,
    NoiseConditionalScore,
    ReplayBuffer,
    annealed_langevin,
    cd_loss,
    data_scale_score,
    ddpm_langevin,
    dsm_loss,
    energy_score,
    geometric_sigmas,
    path_score,
    sgld,
)
from difusion.ebm.energy import negatives
from difusion.errors import ConfigError
from difusion.metrics.two_d import sliced_wasserstein

torch.set_default_dtype(torch.float32)


def mixture_log_density(pi, mu, cov):
    """log p(x) of a Gaussian mixture, written with torch.distributions (not the lab's oracle)."""
    dist = MixtureSameFamily(Categorical(probs=pi), MultivariateNormal(mu, covariance_matrix=cov))
    return dist.log_prob


def autograd_score(log_p, x):
    """grad_x log p(x) by autograd: a second, independent route to every score below."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_p(x).sum(), x)
    return g


def test_sgld_on_a_gaussian_returns_its_mean_and_euler_maruyamas_variance():
    """For N(mu, s^2) the SGLD step is x' = (1 - eps / 2s^2) x + ... + sqrt(eps) z, whose stationary
    variance is exactly s^2 / (1 - eps / 4s^2) (the discretization's bias, 1.0% here): 20,000
    independent chains must land on the mean within 5 standard errors and on that variance
    within 4% (5 standard errors of a sample variance)."""
    mu, s = (
        torch.tensor([1.0, -2.0], dtype=torch.float64),
        torch.tensor([0.5, 2.0], dtype=torch.float64),
    )
    eps, n = 0.01, 20000
    g = torch.Generator().manual_seed(0)
    x = sgld(lambda x: -(x - mu) / s**2, torch.zeros(n, 2, dtype=torch.float64), eps, 3000, g)
    exact_var = s**2 / (1 - eps / (4 * s**2))
    assert torch.allclose(x.mean(0), mu, atol=float(5 * s.max() / math.sqrt(n)))
    assert torch.allclose(x.var(0), exact_var, rtol=5 * math.sqrt(2 / n))
    # the variance without the discretization term is s^2: the first coordinate tells them apart
    assert abs(float(x.var(0)[0]) / 0.25 - 1) > 0.003


def test_sgld_on_a_two_mode_mixture_returns_weights_and_moments():
    """0.3 N(-1.5, 1) + 0.7 N(1.5, 1), a bimodal density: SGLD on its exact score (autograd of
    torch.distributions' log-density) from N(0, 3^2) starts; the share left of 0 must be the
    mixture's P(x < 0) within 0.02 (6 standard errors), the mean and second moment within 0.05."""
    pi = torch.tensor([0.3, 0.7], dtype=torch.float64)
    mu = torch.tensor([[-1.5], [1.5]], dtype=torch.float64)
    cov = torch.ones(2, 1, 1, dtype=torch.float64)
    log_p = mixture_log_density(pi, mu, cov)
    g = torch.Generator().manual_seed(1)
    x0 = 3 * torch.randn(20000, 1, generator=g, dtype=torch.float64)
    x = sgld(lambda x: autograd_score(log_p, x), x0, 0.02, 1500, g)[:, 0]
    normal = torch.distributions.Normal(0.0, 1.0)
    left = float(0.3 * normal.cdf(torch.tensor(1.5)) + 0.7 * normal.cdf(torch.tensor(-1.5)))
    assert abs(float((x < 0).double().mean()) - left) < 0.02
    assert abs(float(x.mean()) - 0.6) < 0.05  # 0.3 (-1.5) + 0.7 (1.5)
    assert abs(float(x.pow(2).mean()) - (1 + 1.5**2)) < 0.05  # E[x^2] = 1 + 2.25


def test_dsm_learns_the_analytic_score_of_a_gaussian():
    """Data N(0.5, 0.8^2) in 1-D: the noisy density at sigma is N(0.5, 0.8^2 + sigma^2), whose score
    is -(x - 0.5) / (0.8^2 + sigma^2). A tiny noise-conditional net trained by DSM for 1,500 steps
    must match it on x in mu +- 2 s at every level: sigma (s_theta - s) within 0.1 (the residual
    the loss weights; the target's own scale is 1)."""
    torch.manual_seed(0)
    mu, s = 0.5, 0.8
    sigmas = geometric_sigmas(1.0, 0.1, 4)
    net = NoiseConditionalScore(1, 64, 2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(1500):
        x = mu + s * torch.randn(512, 1, generator=g)
        loss, _ = dsm_loss(net, x, sigmas, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(mu - 2 * s, mu + 2 * s, 41)[:, None]
    with torch.no_grad():
        for sigma in sigmas.tolist():
            learned = net(grid, torch.full((41,), sigma))
            exact = -(grid - mu) / (s**2 + sigma**2)
            assert float((sigma * (learned - exact)).abs().max()) < 0.1, sigma


def three_mode_mixture() -> GaussianMixture:
    mu = torch.tensor([[4.0, 0.0], [-2.0, 3.4641], [-2.0, -3.4641]])
    return GaussianMixture(torch.tensor([0.2, 0.3, 0.5]), mu, 0.3**2 * torch.eye(2).repeat(3, 1, 1))


def check_mixture(x: torch.Tensor, mix: GaussianMixture, weight_tol=0.03, mean_tol=0.06):
    """Each sample goes to its nearest mean: the shares must be the weights, each group's mean the
    component's mean, and each group's std the component's 0.3."""
    label = torch.cdist(x.double(), mix.mu).argmin(1)
    for k in range(3):
        group = x[label == k].double()
        assert abs(len(group) / len(x) - float(mix.pi[k])) < weight_tol, k
        assert float((group.mean(0) - mix.mu[k]).norm()) < mean_tol, k
        assert abs(float(group.std(0).mean()) - 0.3) < 0.03, k


def test_annealed_langevin_with_the_exact_mixture_score_reproduces_the_mixture():
    """The data mixture convolved with N(0, sigma^2 I) is the mixture with covariances C_k +
    sigma^2 I, whose score is -E[eps | x] / sigma from oracle.GaussianMixture.posterior (a = 1,
    s = sigma). Annealed Langevin (Song & Ermon, Algorithm 1) on it, from N(0, 10^2), must give the
    modes' weights within 0.03. Plain SGLD on the data's own score from the same starts does not:
    the 0.3-wide modes 6.9 apart never exchange chains, so its weights are those of the basins."""
    mix = three_mode_mixture()
    sigmas = geometric_sigmas(10.0, 0.01, 20)

    def score(x, i):
        sigma = float(sigmas[i])
        return -mix.posterior(x, 1.0, sigma)[1] / sigma

    g = torch.Generator().manual_seed(2)
    x0 = 10 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    x = annealed_langevin(score, x0, sigmas, 2e-5, 50, g)
    check_mixture(x, mix)
    # without the annealing: one level, the data's own score (sigma = 0.01 is 0.1% of C_k)
    x_plain = sgld(lambda x: score(x, len(sigmas) - 1), x0, 0.01, 1000, g)
    with pytest.raises(AssertionError):
        check_mixture(x_plain, mix)


def test_the_ddpm_eps_of_the_exact_denoiser_is_the_score_of_the_noisy_mixture():
    """score(x_t, t) = -eps_hat(x_t, t) / sigma_t with the exact E[eps | x_t] of the mixture equals
    the autograd score of q_t = sum_k pi_k N(alpha_t mu_k, alpha_t^2 C_k + sigma_t^2 I), at five
    DDPM times; the data-scale score at t equals that of the mixture with C_k + (sigma_t /
    alpha_t)^2 I. Both to 1e-8 in float64."""
    mix = three_mode_mixture()
    path = DDPMPath.from_schedule("linear", 1000)
    denoiser = MixtureDenoiser(mix, path)
    x = 3 * torch.randn(256, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    score = path_score(denoiser, path)
    times = [1, 10, 100, 500, 999]
    scaled = data_scale_score(denoiser, path, times)
    eye = torch.eye(2, dtype=torch.float64)
    for i, t in enumerate(times):
        a, s = path.alpha_sigma(t)
        log_q = mixture_log_density(mix.pi, a * mix.mu, a**2 * mix.cov + s**2 * eye)
        assert torch.allclose(score(x, t), autograd_score(log_q, x), rtol=1e-8, atol=1e-8)
        log_y = mixture_log_density(mix.pi, mix.mu, mix.cov + (s / a) ** 2 * eye)
        assert torch.allclose(scaled(x, i), autograd_score(log_y, x), rtol=1e-8, atol=1e-8)


def test_annealed_langevin_on_the_ddpm_denoiser_samples_the_mixture():
    """Langevin on the eps-network read as a score: the levels sigma_t / alpha_t of 20 DDPM times
    (from 4.7 down to 0.01), the exact mixture denoiser standing in for a perfectly trained
    network; the samples must be the mixture (weights within 0.03)."""
    mix = three_mode_mixture()
    path = DDPMPath.from_schedule("linear", 1000)
    times = [999, 700, 500, 400, 300, 250, 200, 160, 130, 100, 80, 60, 45, 35, 25, 18, 12, 7, 4, 1]
    g = torch.Generator().manual_seed(4)
    x0 = 5 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    sigma_last = path.alpha_sigma(1)[1] / path.alpha_sigma(1)[0]
    eps = 2e-5 * (sigma_last / 0.01) ** 2
    x = ddpm_langevin(MixtureDenoiser(mix, path), path, times, x0, eps, 50, g)
    check_mixture(x, mix)


def test_a_tiny_cd_energy_learns_two_blobs():
    """Data 0.5 N((-1.5, 0), 0.2^2) + 0.5 N((1.5, 0), 0.2^2); an energy MLP trained by contrastive
    divergence (replay buffer, 20 SGLD steps) for 400 steps: 300 SGLD steps from uniform noise on
    its energy must land nearer the data (sliced W1) than a third of the noise's own distance, and
    put at least 30% of the samples at each blob."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)

    def data(n):
        side = torch.randint(2, (n,), generator=g).float() * 3 - 1.5
        return torch.stack([side, torch.zeros(n)], 1) + 0.2 * torch.randn(n, 2, generator=g)

    energy = EnergyMLP(2, 64, 2, base_std=1.0)
    buffer = ReplayBuffer(2000, 2, 3.0, g)
    opt = torch.optim.Adam(energy.parameters(), lr=1e-3)
    for _ in range(400):
        x = data(128)
        x_neg = negatives(energy, buffer, 128, 0.05, 0.01, 20, g, torch.device("cpu"))
        loss, _ = cd_loss(energy, x, x_neg, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    noise = (torch.rand(1000, 2, generator=g) * 2 - 1) * 3
    samples = sgld(energy_score(energy), noise, 0.01, 300, g).detach()
    target = data(1000)
    assert sliced_wasserstein(samples, target) < sliced_wasserstein(noise, target) / 3
    right = float((samples[:, 0] > 0).float().mean())
    assert 0.3 < right < 0.7


def test_ebm_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="sigma_min"):
        load_config("dsm-toy2d", ["ebm.sigma_min=5"])
    with pytest.raises(ConfigError, match="toy2d or digits"):
        load_config("dsm-toy2d", ["data.name=fashion-mnist"])
    with pytest.raises(ConfigError, match="ebm.kind"):
        load_config("dsm-toy2d", ["ebm.kind=nce"])


def test_a_dsm_run_samples_and_evaluates_through_the_cli(tmp_path, monkeypatch):
    """`difusion train dsm-toy2d` (a few hundred steps), then `difusion sample` and `difusion eval`
    on its folder: sample writes n points, eval the measures json, whose floor (train vs test) is
    the one the run wrote and whose samples beat the starting noise."""
    from typer.testing import CliRunner

    from difusion.cli import app

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runner = CliRunner()
    run = tmp_path / "run"
    over = ["train.steps=400", "sample.n=500", "ebm.sample_steps=30", "train.threads=1"]
    result = runner.invoke(app, ["train", "dsm-toy2d", "--out", str(run), *over])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", str(run), "--n", "100", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    import numpy as np

    assert np.load(tmp_path / "s" / "samples.npz")["samples"].shape == (100, 2)
    result = runner.invoke(app, ["eval", str(run), "--n", "500", "--out", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    m, trained = (json.loads(p.read_text()) for p in (tmp_path / "e.json", run / "measures.json"))
    assert m["sliced_w1_data_floor"] == trained["sliced_w1_data_floor"]
    assert m["sliced_w1_samples"] < m["sliced_w1_start_noise"] / 2
