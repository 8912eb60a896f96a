"""The autoencoder chapter: closed forms (KL, PCA, IWAE), gradient checks (reparameterization,
straight-through, contractive), the VQ codebook, the loop against PCA, and the run API."""

import math

import pytest
import torch

from difusion.autoencoders.losses import contractive_penalty, gaussian_kl
from difusion.autoencoders.measures import PCA, codebook_usage, elbo, iwae_bound, psnr, ssim
from difusion.config import load_config
from difusion.nn.autoencoders import Autoencoder, VectorQuantizer


def _tiny_vae(seed=0, likelihood="gaussian"):
    torch.manual_seed(seed)
    return Autoencoder(
        "vae", (1, 4, 4), code_size=3, network="mlp", hidden=16, depth=1, likelihood=likelihood
    ).double()


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64) * 0.5
    n = 400_000
    z = mu + (0.5 * logvar).exp() * torch.randn(n, 4, 3, generator=g, dtype=torch.float64)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())
    log_p = -0.5 * (math.log(2 * math.pi) + z**2)
    mc = (log_q - log_p).sum(-1).mean(0)  # E_q[log q - log p]
    se = (log_q - log_p).sum(-1).std(0) / n**0.5
    assert torch.all((mc - gaussian_kl(mu, logvar)).abs() < 4 * se)
    assert gaussian_kl(torch.zeros(1, 5), torch.zeros(1, 5)).item() == 0.0


def test_iwae_is_above_the_elbo_and_rises_with_k():
    model = _tiny_vae()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 1, 4, 4, generator=g, dtype=torch.float64).clamp(-1, 1)
    e = elbo(model, x, 0.3, g).mean()
    bounds = [iwae_bound(model, x, k, 0.3, g).mean() for k in (1, 10, 100)]
    assert abs(bounds[0] - e) < 0.05 * abs(e)  # L_1 is the ELBO (different draws)
    assert bounds[0] < bounds[1] < bounds[2]
    assert bounds[2] - bounds[0] > 1.0  # a clear gap for an untrained encoder, not noise


def test_reparameterized_gradient_matches_finite_differences():
    # d/dmu, d/dlogvar of the Monte Carlo ELBO estimate with eps held fixed (Kingma & Welling eq. 10)
    model = _tiny_vae(2)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 3, generator=g, dtype=torch.float64)
    from difusion.autoencoders.losses import reconstruction_nll

    def objective(mu, logvar):
        z = mu + torch.exp(0.5 * logvar) * eps
        nll = reconstruction_nll(x, model.decoder(z), "gaussian", 0.3)
        return (nll + gaussian_kl(mu, logvar)).sum()

    mu0, lv0 = model.posterior(x)
    mu = mu0.detach().clone().requires_grad_(True)
    lv = lv0.detach().clone().requires_grad_(True)
    objective(mu, lv).backward()
    h = 1e-6
    for param, grad in ((mu, mu.grad), (lv, lv.grad)):
        for i in range(2):
            for j in range(3):
                plus, minus = param.detach().clone(), param.detach().clone()
                plus[i, j] += h
                minus[i, j] -= h
                args_p = (plus, lv.detach()) if param is mu else (mu.detach(), plus)
                args_m = (minus, lv.detach()) if param is mu else (mu.detach(), minus)
                fd = (objective(*args_p) - objective(*args_m)) / (2 * h)
                assert abs(fd.item() - grad[i, j].item()) < 1e-5 * max(1.0, abs(fd.item()))
    # And the estimator is unbiased for E[z^2] = mu^2 + sigma^2: d/dmu = 2 mu, d/dsigma = 2 sigma.
    m, s = torch.tensor(0.7, requires_grad=True), torch.tensor(1.3, requires_grad=True)
    e = torch.randn(200_000, generator=g)
    ((m + s * e) ** 2).mean().backward()
    assert abs(m.grad - 1.4) < 0.02 and abs(s.grad - 2.6) < 0.03


def test_vq_nearest_code_straight_through_and_ema():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, decay=0.5)
    vq.initialized.fill_(1.0)
    z = torch.randn(5, 4, 3, 2)  # (B, D, 3, 2): 30 vectors
    z_q, idx = vq(z)
    flat = VectorQuantizer.flatten(z)
    brute = torch.cdist(flat, vq.codebook).argmin(1)
    assert torch.equal(idx.reshape(-1), brute)
    assert torch.allclose(VectorQuantizer.flatten(z_q), vq.codebook[brute], atol=1e-6)
    # Straight-through: the decoder's gradient at z_q is passed unchanged to z_e and the encoder.
    ae = Autoencoder("vqvae", (1, 8, 8), code_size=4, network="mlp", hidden=8, depth=1)
    x = torch.randn(3, 1, 8, 8)
    ae(x)["out"].pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.encoder.parameters())
    zz = torch.randn(2, 4, 3, requires_grad=True)
    out, _ = vq(zz)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    assert torch.equal(zz.grad, w)
    # EMA: every used code moves toward the mean of the vectors assigned to it.
    before = vq.codebook.clone()
    for _ in range(3):
        vq.ema_update(z, idx)
    for k in idx.unique():
        target = flat[idx.reshape(-1) == k].mean(0)
        assert (vq.codebook[k] - target).norm() < (before[k] - target).norm()


def test_codebook_perplexity_and_pca_closed_form():
    u = codebook_usage(torch.arange(16).repeat(3), 32)
    assert u["codes_used"] == 0.5 and abs(u["perplexity"] - 16) < 1e-9
    assert abs(codebook_usage(torch.zeros(10, dtype=torch.long), 4)["perplexity"] - 1) < 1e-9
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 12, generator=g) * torch.linspace(3, 0.1, 12)
    pca = PCA.fit(x, 4)
    err = (pca.reconstruct(x) - x).pow(2).sum() / (len(x) - 1)
    evals = torch.linalg.eigvalsh(torch.cov(x.T.double())).flip(0)
    assert abs(err - evals[4:].sum()) < 1e-3 * evals[4:].sum()  # Eckart-Young: discarded variance


def test_psnr_and_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(3))
    y = x + 0.1
    assert torch.allclose(psnr(y, x), torch.full((3,), 10 * math.log10(4 / 0.01)), atol=1e-3)
    # Flat images a and b: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.3, -0.2, (0.01 * 2) ** 2
    flat = ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert abs(flat.item() - (2 * a * b + c1) / (a**2 + b**2 + c1)) < 1e-4  # float32
    e = torch.randn(x.shape, generator=g)
    assert (ssim(x + 0.1 * e, x) > ssim(x + 0.5 * e, x)).all()


def test_contractive_penalty_estimates_the_jacobian_norm():
    torch.manual_seed(0)
    f = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x = torch.randn(1, 6)
    exact = torch.autograd.functional.jacobian(lambda t: f(t), x).pow(2).sum()
    xs = x.repeat(20000, 1).requires_grad_(True)
    est = contractive_penalty(xs, f(xs), torch.Generator().manual_seed(1)).mean()
    assert abs(est - exact) < 0.05 * exact


def test_spatial_latent_shapes_for_latent_diffusion():
    for size, grid in ((28, 7), (8, 2), (32, 8)):
        ae = Autoencoder("vae", (1, size, size), spatial=True, latent_channels=4)
        x = torch.randn(2, 1, size, size)
        z = ae.encode(x)
        assert ae.latent_shape == (4, grid, grid) and z.shape == (2, 4, grid, grid)
        assert ae.decode(z).shape == x.shape


def test_config_errors_are_one_line():
    from difusion.errors import ConfigError

    with pytest.raises(ConfigError, match="autoencoder.kind must be one of"):
        load_config("ae-fmnist", ["autoencoder.kind=gan"])
    with pytest.raises(ConfigError, match="spatial=true needs"):
        load_config("ae-fmnist", ["autoencoder.spatial=true", "autoencoder.network=mlp"])


def test_linear_autoencoder_through_the_loop_reaches_pca(tmp_path):
    """Baldi & Hornik 1989: a linear AE trained with MSE spans the PCA subspace, so its error at
    convergence is PCA's. Checks the whole loop (objective, EMA, checkpoint, load_autoencoder)."""
    from difusion.autoencoders import load_autoencoder
    from difusion.autoencoders.scoring import train_images
    from difusion.training.loop import train

    cfg = load_config(
        None,
        [
            "objective=autoencoder",
            "data.name=digits",
            "autoencoder.network=linear",
            "autoencoder.code_size=6",
            "autoencoder.train_subset=300",
            "autoencoder.fid_n=0",
            "autoencoder.eval_n=100",
            "train.steps=1500",
            "train.batch_size=300",
            "train.lr=0.03",
            "train.warmup_steps=50",
            "train.ema_decay=0.9",
            "train.precision=fp32",
            "train.sample_every=0",
            "train.log_every=500",
        ],
    )
    train(cfg, tmp_path / "run", progress=False)
    x = train_images(cfg)
    model = load_autoencoder(tmp_path / "run")
    ae_err = (model.decode(model.encode(x)) - x).pow(2).mean()  # unclamped, as PCA's
    pca_err = (PCA.fit(x, 6).reconstruct(x) - x).pow(2).mean()
    assert ae_err < 1.02 * pca_err  # no linear code of size 6 does better than PCA...
    assert ae_err > 0.999 * pca_err  # ...and the trained one gets there
    assert (tmp_path / "run" / "reconstructions.png").exists()
    assert "PCA with 6 components" in (tmp_path / "run" / "report.md").read_text()


def test_vq_prior_samples_are_codebook_vectors_and_load_refuses_other_runs(tmp_path):
    from difusion.autoencoders import load_autoencoder
    from difusion.config import save_config
    from difusion.errors import DifusionError

    ae = Autoencoder("vqvae", (1, 28, 28), spatial=True, codebook_size=8, code_dim=4)
    z = ae.sample_prior(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 4, 7, 7)
    flat = VectorQuantizer.flatten(z)
    assert (flat[:, None] == ae.quantizer.codebook[None]).all(-1).any(1).all()  # exact rows
    save_config(load_config("digits"), tmp_path / "config.yaml")
    with pytest.raises(DifusionError, match="not an autoencoder run"):
        load_autoencoder(tmp_path)
