"""DDIM (Song et al. 2021) against the analytic mixture denoiser and against diffusers."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.oracle import MixtureDenoiser  # noqa: E402
from difusion.errors import ConfigError  # noqa: E402
from difusion.sampling.ddim import ddim_timesteps, sample_ddim  # noqa: E402
from tests.test_sampling import fit_check, three_gaussians  # noqa: E402


def test_timestep_grids():
    assert ddim_timesteps(1000, 10, "trailing") == [
        1000,
        900,
        800,
        700,
        600,
        500,
        400,
        300,
        200,
        100,
        0,
    ]
    assert ddim_timesteps(1000, 10, "uniform") == [
        901,
        801,
        701,
        601,
        501,
        401,
        301,
        201,
        101,
        1,
        0,
    ]
    q = ddim_timesteps(1000, 10, "quadratic")
    assert q[-1] == 0 and q[-2] == 1 and len(q) == 11 and q[0] <= 801
    assert ddim_timesteps(50, 50) == list(range(50, -1, -1))
    with pytest.raises(ConfigError):
        ddim_timesteps(1000, 10, "linear")


@pytest.mark.parametrize("eta,steps", [(0.0, 100), (1.0, 200)])
def test_ddim_with_oracle_reproduces_the_mixture(eta, steps):
    mix = three_gaussians()
    path = DDPMPath.from_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(6000, 2, generator=g, dtype=torch.float64)
    x = sample_ddim(
        MixtureDenoiser(mix, path),
        path,
        x_T,
        ddim_timesteps(1000, steps),
        eta=eta,
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
    )
    fit_check(mix, x)


def test_deterministic_ddim_is_a_fixed_map():
    """eta = 0: the same x_T gives the same sample, and nearby x_T give nearby samples."""
    mix = three_gaussians()
    path = DDPMPath.from_schedule("cosine", 1000)
    den = MixtureDenoiser(mix, path)
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = ddim_timesteps(1000, 50)
    a, b = sample_ddim(den, path, x_T, ts), sample_ddim(den, path, x_T, ts)
    assert torch.equal(a, b)
    c = sample_ddim(den, path, x_T + 1e-4, ts)
    assert (c - a).abs().max() < 0.05


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_same_step_as_diffusers(eta):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True
    )
    sched.set_timesteps(50)  # diffusers' 0-indexed t = 980, 960, ..., 0 (step 20)
    path = DDPMPath.from_schedule("linear", 1000)
    torch.manual_seed(0)
    x, eps, z = torch.randn(3, 4, 1, 5, 5).unbind(0)

    def denoiser(x_t, t, y=None):
        a, s = path.alpha_t(t, x_t), path.sigma_t(t, x_t)
        return (x_t - s * eps) / a, eps

    for k in [980, 500, 20, 0]:  # theirs: k -> k - 20 (or alpha_bar = 1 below 0); ours: k+1 -> k-19
        theirs = sched.step(eps, k, x, eta=eta, variance_noise=z).prev_sample
        s = k - 20 + 1 if k >= 20 else 0
        ours = sample_ddim(denoiser, path, x, [k + 1, s], eta=eta, noise=lambda shape: z)
        assert torch.allclose(ours, theirs, atol=2e-4), k
