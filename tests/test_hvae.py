"""Hierarchical and diffusion-based VAEs (src/difusion/hvae/): the bounds against the exact
log-likelihood of a linear-Gaussian hierarchy, the forward chain's marginal and posterior against
closed forms and the lab's DDPM path, the KL terms against Monte Carlo, and tiny digits runs that
must learn."""

import json
import math

import pytest
import torch
import yaml
from torch import nn

from difusion.config import Config, load_config, load_run_config
from difusion.diffusion.path import DDPMPath
from difusion.errors import ConfigError, DifusionError
from difusion.hvae import DiffusionVAE, HierarchicalVAE, eval_hvae_run, load_hvae, sample_hvae_run
from difusion.hvae.bounds import elbo_and_iwae, log_weights
from difusion.hvae.distributions import (
    CategoricalLevels,
    draw,
    gaussian_net,
    kl_normal,
    log_normal,
    to_levels,
)
from difusion.hvae.priors import MixturePrior, StandardPrior, VampPrior
from difusion.training.loop import train


class Affine(nn.Module):
    """A Gaussian conditional N(w * inp + b, diag(exp(logvar))), elementwise: the linear-Gaussian
    model's conditionals, written as the networks of a HierarchicalVAE (mean and log-variance)."""

    def __init__(self, w, b, var):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.as_tensor(w)), nn.Parameter(torch.as_tensor(b))
        self.logvar = nn.Parameter(torch.log(torch.as_tensor(var)))

    def forward(self, inp):
        return torch.cat([self.w * inp + self.b, self.logvar.expand_as(inp)], -1)


class GaussianLikelihood(nn.Module):
    """p(x | z1) = N(x; w z1 + b, diag(var)): the linear-Gaussian decoder."""

    def __init__(self, w, b, var):
        super().__init__()
        self.net = Affine(w, b, var)

    def features(self, x):
        return x

    def log_prob(self, x, z1):
        out = self.net(z1)
        return log_normal(x, *out.chunk(2, -1))


def linear_gaussian(inference: str, exact: bool):
    """z2 ~ N(0, I), z1 | z2 ~ N(a z2 + c, s1^2), x | z1 ~ N(b z1 + e, s0^2), per coordinate (d = 3),
    and log p(x) in closed form: x ~ N(b c + e, b^2 (a^2 + s1^2) + s0^2). q is the exact posterior
    written in the model's own inference (or, not exact, the same with its weights moved)."""
    d = torch.float64
    a, c, s1 = torch.tensor([0.8, -1.5, 2.0], dtype=d), torch.tensor([0.3, 1.0, -0.5], dtype=d), 0.6
    b, e, s0 = torch.tensor([1.2, 0.7, -0.9], dtype=d), torch.tensor([-0.2, 0.4, 0.1], dtype=d), 0.5
    v1 = a**2 + s1**2  # Var z1
    vx = b**2 * v1 + s0**2  # Var x
    if inference == "bottom-up":  # q(z1 | x) = p(z1 | x), q(z2 | z1) = p(z2 | z1) (z2 ⟂ x | z1)
        g1 = b * v1 / vx
        enc1 = Affine(g1, c - g1 * (b * c + e), v1 - b**2 * v1**2 / vx)
        g2 = a / v1
        enc2 = Affine(g2, -g2 * c, s1**2 / v1 * torch.ones(3, dtype=d))
    else:  # the bottom-up estimate is x's message about z1, N((x - e) / b, s0^2 / b^2);
        # q(z2 | x) = p(z2 | x), read from the message's mean m: E = b^2 a / vx (m - c)
        enc1 = Affine(1 / b, -e / b, s0**2 / b**2)
        g2 = b**2 * a / vx
        enc2 = Affine(g2, -g2 * c, 1 - b**2 * a**2 / vx)
    if not exact:
        with torch.no_grad():
            enc1.b.add_(0.4)
            enc2.logvar.add_(0.7)
    model = HierarchicalVAE(
        enc1,
        enc2,
        Affine(a, c, s1**2 * torch.ones(3, dtype=d)),
        GaussianLikelihood(b, e, s0**2 * torch.ones(3, dtype=d)),
        StandardPrior(3),
        inference,
    ).double()
    truth = torch.distributions.Normal(b * c + e, vx.sqrt())
    g = torch.Generator().manual_seed(0)
    x = b * c + e + vx.sqrt() * torch.randn(400, 3, generator=g, dtype=d)
    return model, x, truth.log_prob(x).sum(1)


@pytest.mark.parametrize("inference", ["bottom-up", "top-down"])
def test_with_the_exact_posterior_every_log_weight_is_log_p(inference):
    model, x, log_px = linear_gaussian(inference, exact=True)
    g = torch.Generator().manual_seed(1)
    log_w = log_weights(model, x, 5, g)
    assert (log_w - log_px).abs().max() < 1e-9  # w = p(x, z) / p(z | x) = p(x) for every z


@pytest.mark.parametrize("inference", ["bottom-up", "top-down"])
def test_the_bounds_lie_below_log_p_and_iwae_climbs_towards_it(inference):
    """A wrong q: the ELBO sits below log p(x) by its KL; L_1 <= L_10 <= L_100 <= log p(x)."""
    model, x, log_px = linear_gaussian(inference, exact=False)
    g = torch.Generator().manual_seed(2)
    gaps = []
    for k in (1, 10, 100):
        _, iwae = elbo_and_iwae(log_weights(model, x, k, g))
        gaps.append((log_px - iwae).mean().item())
    elbo, _ = elbo_and_iwae(log_weights(model, x, 200, g))
    elbo_gap = (log_px - elbo).mean().item()
    assert elbo_gap > 0.5 and abs(elbo_gap - gaps[0]) < 0.15 * elbo_gap, (elbo_gap, gaps)
    assert gaps[0] > gaps[1] > gaps[2] > 0, gaps
    assert gaps[2] < 0.25 * gaps[0], gaps  # most of the way to log p(x) by k = 100


def test_vamp_and_mixture_priors_are_the_mixtures_they_claim():
    torch.manual_seed(0)
    enc = gaussian_net(5, 2, 8, 1)

    def encode(x):
        mu, logvar = enc(x).chunk(2, -1)
        return mu, logvar.clamp(-12, 8)

    vamp, z = VampPrior(2, 5, 4), torch.randn(7, 2)
    mu, logvar = encode(vamp.u)
    dens = sum(torch.distributions.Normal(mu[k], (0.5 * logvar[k]).exp()).log_prob(z).sum(1).exp()
               for k in range(4)) / 4  # fmt: skip
    assert torch.allclose(vamp.log_prob(z, encode), dens.log(), atol=1e-5)
    mog = MixturePrior(2, 3)
    with torch.no_grad():
        mog.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
    pi = torch.softmax(mog.logits, 0)
    comps = torch.distributions.Normal(mog.mu, (0.5 * mog.logvar).exp())
    dens = (comps.log_prob(z[:, None]).sum(-1).exp() * pi).sum(1)
    assert torch.allclose(mog.log_prob(z), dens.log(), atol=1e-5)
    draws = mog.sample(20000, None, torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), (pi[:, None] * mog.mu).sum(0), atol=0.05)


def test_the_categorical_decoder_is_a_distribution_over_the_levels():
    lik = CategoricalLevels(3, 4, 5, 8, 1)
    z = torch.randn(2, 3)
    every = torch.stack(
        [lik.log_prob(torch.full((2, 4), float(v)), z) for v in range(5)]
    )  # all four pixels at the same level: one term per level of a product of four
    per_pixel = torch.log_softmax(lik.logits(z), -1)  # (2, 4, 5)
    assert torch.allclose(every, per_pixel.sum(1).T, atol=1e-5)
    assert torch.allclose(per_pixel.exp().sum(-1), torch.ones(2, 4))
    with pytest.raises(DifusionError, match="do not lie on 256 grey levels"):
        to_levels(torch.linspace(-1, 1, 17).view(1, 1, 1, 17), 256)


def diffusion_model(T=4, beta=0.5, dim=6, seed=0):
    torch.manual_seed(seed)
    reverse = nn.ModuleList(gaussian_net(dim, dim, 16, 1) for _ in range(T - 1))
    return DiffusionVAE(reverse, CategoricalLevels(dim, dim, 5, 16, 1), T, beta, dim)


def test_the_forward_chain_reaches_its_closed_form_marginal():
    """T steps of q(z_t | z_{t-1}) from one x: mean sqrt(abar_T) x, variance 1 - abar_T."""
    model = diffusion_model(T=5, beta=0.3)
    x0 = torch.tensor([1.0, -1.0, 0.5, 0.0, -0.25, 0.75])
    g = torch.Generator().manual_seed(0)
    z = x0.expand(40000, 6)
    for _ in range(5):
        z = model.q_step(z, g)
    mean, var = model.marginal(x0, 5)
    assert var == pytest.approx(1 - 0.7**5)
    assert torch.allclose(mean, 0.7**2.5 * x0)
    assert (z.mean(0) - mean).abs().max() < 0.02
    assert (z.var(0) - var).abs().max() < 0.02


def test_the_posterior_is_bayes_rule_and_the_ddpm_paths_own():
    model = diffusion_model(T=5, beta=0.4)
    path = DDPMPath(torch.full((5,), 0.4))  # the lab's DDPM with a constant beta: independent code
    g = torch.Generator().manual_seed(0)
    x0, z_t = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    for t in range(2, 6):
        mean, logvar = model.posterior(x0, z_t, t)
        ref_mean, ref_var, _ = path.posterior(x0.double(), z_t.double(), t)
        assert torch.allclose(mean.double(), ref_mean, atol=1e-6)
        assert torch.allclose(logvar.exp().double(), ref_var.expand_as(mean), atol=1e-6)
        # Bayes: N(z_{t-1}; sqrt(abar_{t-1}) x, 1 - abar_{t-1}) N(z_t; sqrt(1 - beta) z_{t-1}, beta)
        ab_prev = 0.6 ** (t - 1)
        prec = 1 / (1 - ab_prev) + 0.6 / 0.4
        m = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(0.6) * z_t / 0.4) / prec
        assert torch.allclose(mean, m, atol=1e-5) and logvar[0, 0].exp() == pytest.approx(1 / prec)


def test_the_kl_terms_equal_monte_carlo_and_torch():
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(4, generator=g), torch.randn(4, generator=g)
    lv1, lv2 = torch.randn(4, generator=g) * 0.5, torch.randn(4, generator=g) * 0.5
    kl = kl_normal(mu1, lv1, mu2, lv2)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu1, (0.5 * lv1).exp()),
        torch.distributions.Normal(mu2, (0.5 * lv2).exp()),
    ).sum()
    z = draw(mu1.expand(200000, 4), lv1.expand(200000, 4), g)
    mc = (log_normal(z, mu1, lv1) - log_normal(z, mu2, lv2)).mean()
    assert kl.item() == pytest.approx(ref.item(), rel=1e-5)
    assert kl.item() == pytest.approx(mc.item(), abs=0.02)


def test_the_analytic_elbo_is_the_mean_log_weight_of_the_chain():
    """The diffusion ELBO term by term (analytic KLs) against log p(x, z) - log q(z | x) averaged
    over sampled chains: two estimators of one number, both below the IWAE bound."""
    model = diffusion_model(T=4, beta=0.5)
    k = torch.randint(0, 5, (3, 6), generator=torch.Generator().manual_seed(0)).float()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        terms = [model.elbo_terms(k, g) for _ in range(1500)]
        analytic = -torch.stack([sum(t.values()) for t in terms]).mean(0)
        log_w = log_weights(model, k, 1500, g)
    elbo, iwae = elbo_and_iwae(log_w)
    sem = log_w.std(0) / math.sqrt(1500)
    assert ((elbo - analytic).abs() < 4 * sem + 0.02).all(), (elbo, analytic, sem)
    assert set(terms[0]) == {"reconstruction", "kl_2", "kl_3", "kl_4", "prior"}
    assert (iwae > elbo).all()
    # the prior term is KL(q(z_T | x) || N(0, I)) of the marginal, zero only as abar_T -> 0
    x0 = k / 4 * 2 - 1
    ab = 0.5**4
    want = 0.5 * ((1 - ab) + ab * x0**2 - 1 - math.log(1 - ab)).sum(1)
    assert torch.allclose(terms[0]["prior"], want, atol=1e-5)


@pytest.mark.parametrize(
    ("preset", "over"),
    [
        ("hvae-digits", ["hvae.prior=vamp", "hvae.components=8"]),
        ("dhvae-digits", []),
    ],
)
def test_a_tiny_digits_run_learns(tmp_path, monkeypatch, capsys, preset, over):
    over = [*over, "train.steps=250", "train.ema_decay=0.95", "train.threads=1", "sample.n=8",
            "hvae.iwae_k=16", "hvae.kl_warmup=0"]  # fmt: skip
    run = train(load_config(preset, over), tmp_path / "run", progress=False).run_dir
    m = json.loads((run / "measures.json").read_text())
    uniform = math.log2(17)
    assert m["uniform_bits_per_dim"] == pytest.approx(uniform)
    assert m["test_bits_per_dim"] < 3.0 < uniform, m  # the uniform model: 4.09 bits/dim
    assert m["test_iwae_bits_per_dim"] <= m["test_bits_per_dim_log_weights"] + 1e-6
    assert sum(m["terms_bits_per_dim"].values()) == pytest.approx(m["test_bits_per_dim"])
    model = load_hvae(run)
    assert model.step == 250 and model.config.objective == "hvae"
    again, _ = eval_hvae_run(run, n=40)
    assert again["test_n"] == 40 and again["test_bits_per_dim"] < uniform
    files = sample_hvae_run(run, 4, seed=2, out=tmp_path / "s")
    assert files["samples"].is_file() and files["samples_npz"].is_file()
    from test_run_folders import assert_family_cli

    assert_family_cli(monkeypatch, capsys, run, tmp_path / "c")


def test_the_config_refuses_bad_hvae_keys_in_one_line(tmp_path):
    cases = [
        (["hvae.kind=ladder"], "hvae.kind must be one of"),
        (["hvae.prior=flow"], "hvae.prior must be one of"),
        (["hvae.beta=1.0"], r"hvae.beta must be in \(0, 1\)"),
        (["hvae.kind=diffusion", "hvae.prior=vamp"], "belong to hvae.kind=hierarchical"),
        (["data.name=toy2d"], "models images on grey levels"),
        (["hvae.depthh=2"], "unknown config key 'hvae.depthh'"),
    ]
    for over, message in cases:
        with pytest.raises(ConfigError, match=message) as e:
            load_config("hvae-digits", over)
        assert "\n" not in str(e.value)
    values = Config().to_dict()
    del values["hvae"]  # a run folder written before the section existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    assert load_run_config(tmp_path).objective == "diffusion"
    values["objective"] = "hvae"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="lacks hvae"):
        load_run_config(tmp_path)
