"""Cross-check against an independent implementation: diffusers' DDPMScheduler (test-only dependency).

diffusers indexes timesteps 0..T-1 where we use the paper's 1..T: our alpha_bar[t] is its
alphas_cumprod[t - 1].
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

diffusers = pytest.importorskip("diffusers")

from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.sampling import sample_ddpm  # noqa: E402

NAMES = {"linear": "linear", "cosine": "squaredcos_cap_v2", "sigmoid": "sigmoid"}


@pytest.mark.parametrize("ours", list(NAMES))
def test_same_alphas_cumprod(ours):
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=NAMES[ours])
    path = DDPMPath.from_schedule(ours, 1000)
    theirs = sched.alphas_cumprod.double()
    assert torch.allclose(path.alpha_bar[1:], theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "variance,their_variance", [("beta", "fixed_large"), ("beta_tilde", "fixed_small")]
)
def test_same_ddpm_step(variance, their_variance):
    """One reverse step from the same eps prediction and the same z gives the same x_{t-1}.

    diffusers keeps its tables in float32, where 1 - alpha_bar_t cancels badly at small t (about
    2e-4 relative error at t = 2); ours are float64. Hence the looser tolerance near t = 1.
    """
    sched = diffusers.DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        variance_type=their_variance,
        clip_sample=True,
    )
    sched.set_timesteps(1000)
    path = DDPMPath.from_schedule("linear", 1000)
    torch.manual_seed(0)
    x = torch.randn(4, 1, 6, 6)
    eps = torch.randn(4, 1, 6, 6)

    def denoiser(x_t, t, y=None):
        a, s = path.alpha_t(t, x_t), path.sigma_t(t, x_t)
        x0 = ((x_t - s * eps) / a).clamp(-1, 1)  # diffusers clips x0 the same way
        return x0, (x_t - a * x0) / s

    for t, atol in [(1000, 1e-5), (500, 1e-5), (20, 1e-5), (2, 5e-4)]:
        seed = 1234 + t
        theirs = sched.step(eps, t - 1, x, generator=torch.Generator().manual_seed(seed))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        ours = sample_ddpm(
            denoiser, path, x, timesteps=[t, t - 1], variance=variance, noise=lambda shape, z=z: z
        )
        assert torch.allclose(ours, theirs.prev_sample, atol=atol), t
