"""DPM-Solver++(2M), Euler/Heun on Karras grids, guidance, inpainting and inversion, checked against
closed forms (Gaussian data, whose probability-flow ODE is solvable), the analytic mixture denoiser,
and diffusers' schedulers step for step."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.oracle import (  # noqa: E402
    GaussianMixture,
    LabelledMixtureDenoiser,
    MixtureDenoiser,
)
from difusion.errors import ConfigError  # noqa: E402
from difusion.sampling import (  # noqa: E402
    GuidedDenoiser,
    ddim_timesteps,
    invert_ddim,
    karras_timesteps,
    run_sampler,
    sample_ddim,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
    sample_inpaint,
    slerp,
    timesteps_for,
)
from tests.test_sampling import fit_check, three_gaussians  # noqa: E402

# -- the path between integer times ----------------------------------------------------------------


def test_fractional_times_interpolate_log_snr_and_invert():
    path = DDPMPath.from_schedule("linear", 1000)
    t = torch.tensor([1.0, 2.5, 417.3, 999.99, 1000.0], dtype=torch.float64)
    lam = path.log_snr(t)
    assert torch.allclose(path.t_at_log_snr(lam), t, atol=1e-9)
    like = torch.zeros(5, 1, dtype=torch.float64)
    a, s = path.alpha_t(t, like), path.sigma_t(t, like)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a))  # still variance preserving
    # At integer times the interpolation is the table itself.
    ti = torch.tensor([3.0, 500.0], dtype=torch.float64)
    assert torch.allclose(path.log_snr(ti), path.log_snr(torch.tensor([3, 500])))
    # Between two steps lambda lies between its neighbours.
    mid = path.log_snr(torch.tensor(2.5, dtype=torch.float64))
    assert path.log_snr(3) < mid < path.log_snr(2)


def test_karras_grid_is_eq_5():
    path = DDPMPath.from_schedule("cosine", 1000)
    ts = karras_timesteps(path, 10)
    assert ts[-2] == 1.0 and ts[-1] == 0.0 and len(ts) == 11
    sig = [math.exp(-0.5 * path.log_snr(t).item()) for t in ts[:-1]]
    assert abs(sig[0] - 80.0) < 1e-6  # capped at EDM's sigma_max (the cosine path reaches 2e4)
    assert karras_timesteps(path, 10, sigma_max=1e9)[0] == 1000.0
    lo, hi = sig[-1] ** (1 / 7), sig[0] ** (1 / 7)
    expected = [(hi + i / 9 * (lo - hi)) ** 7 for i in range(10)]
    assert all(abs(a / b - 1) < 1e-9 for a, b in zip(sig, expected, strict=True))
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))


# -- convergence order on Gaussian data (exact probability-flow ODE) -------------------------------

MU, S = 1.0, 0.5  # data N(MU, S^2) in every coordinate


class GaussianDenoiser:
    """E[x_0 | x_t] = MU + a S^2 / (a^2 S^2 + s^2) (x_t - a MU) for Gaussian data."""

    def __init__(self, path):
        self.path = path

    def __call__(self, x_t, t, y=None):
        a, s = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        x0 = MU + a * S**2 / (a**2 * S**2 + s**2) * (x_t - a * MU)
        return x0, (x_t - a * x0) / s


def exact_flow(path, x, t, s):
    """The probability-flow ODE's map from time t to time s: it transports N(a_t MU, a_t^2 S^2 +
    sigma_t^2) monotonically onto the marginal at s."""
    (a_t, g_t), (a_s, g_s) = path.alpha_sigma(t), path.alpha_sigma(s)
    z = (x - a_t * MU) / math.sqrt(a_t**2 * S**2 + g_t**2)
    return a_s * MU + math.sqrt(a_s**2 * S**2 + g_s**2) * z


SOLVERS = {
    "ddim": (lambda d, p, x, ts: sample_ddim(d, p, x, ts), 1),
    "euler": (sample_euler, 1),
    "heun": (sample_heun, 2),
    "dpmpp-2m": (sample_dpmpp_2m, 2),
}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_convergence_order_on_gaussian_data(name):
    solver, order = SOLVERS[name]
    path = DDPMPath.from_schedule("cosine", 1000)
    den = GaussianDenoiser(path)
    x_T = torch.linspace(-3, 3, 41, dtype=torch.float64)[:, None]
    start, end = 900, 100
    exact = exact_flow(path, x_T, start, end)
    errors = []
    for n in (10, 20, 40, 80):
        ts = list(range(start, end - 1, -(start - end) // n))
        assert len(ts) == n + 1 and ts[-1] == end
        errors.append((solver(den, path, x_T, ts) - exact).abs().max().item())
    ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]
    expected = 2.0**order  # halving the step divides the error by 2^order
    assert 0.85 * expected < ratios[-1] < 1.15 * expected, (errors, ratios)
    assert all(r > 0.6 * expected for r in ratios), (errors, ratios)


def test_euler_step_is_ddim():
    """Karras et al. Sec. 4: Euler in sigma~ = x/alpha coordinates is deterministic DDIM."""
    path = DDPMPath.from_schedule("linear", 1000)
    den = GaussianDenoiser(path)
    x = torch.randn(7, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ts = ddim_timesteps(1000, 20)
    assert torch.allclose(sample_euler(den, path, x, ts), sample_ddim(den, path, x, ts))


# -- the mixture, sampled with the exact denoiser --------------------------------------------------


@pytest.mark.parametrize("name,steps", [("dpmpp-2m", 50), ("euler", 200), ("heun", 50)])
def test_ode_samplers_with_oracle_reproduce_the_mixture(name, steps):
    mix = three_gaussians()
    path = DDPMPath.from_schedule("cosine", 1000)
    x_T = torch.randn(6000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ts = timesteps_for(name, path, steps)
    x = run_sampler(name, MixtureDenoiser(mix, path), path, x_T, ts)
    fit_check(mix, x)


def test_unknown_sampler_is_a_config_error():
    with pytest.raises(ConfigError, match="dpmpp-2m"):
        timesteps_for("plms", DDPMPath.from_schedule("linear", 100), 5)


# -- against diffusers, step for step --------------------------------------------------------------


def _model(x):  # a smooth, x-dependent "noise prediction"
    return torch.tanh(0.7 * x) + 0.1 * x.flip(-1)


@pytest.mark.parametrize("steps", [10, 25])
def test_dpmpp_2m_matches_diffusers(steps):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
    sched.set_timesteps(steps)
    path = DDPMPath.from_schedule("linear", 1000)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    theirs = x_T.clone()
    for k in sched.timesteps:
        theirs = sched.step(_model(theirs), k, theirs).prev_sample

    def denoiser(x, t, y=None):
        a, s = path.alpha_t(t, x), path.sigma_t(t, x)
        eps = _model(x)
        return (x - s * eps) / a, eps

    ts = [int(k) + 1 for k in sched.timesteps] + [0]
    ours = sample_dpmpp_2m(denoiser, path, x_T, ts)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_euler_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="trailing"
    )
    sched.set_timesteps(20)
    path = DDPMPath.from_schedule("linear", 1000)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    theirs = x_T * sched.init_noise_sigma  # diffusers keeps x~ = x / alpha
    for k in sched.timesteps:
        eps = _model(sched.scale_model_input(theirs, k))
        theirs = sched.step(eps, k, theirs).prev_sample

    def denoiser(x, t, y=None):
        a, s = path.alpha_t(t, x), path.sigma_t(t, x)
        eps = _model(x)
        return (x - s * eps) / a, eps

    ts = [int(k) + 1 for k in sched.timesteps] + [0]
    ours = sample_euler(denoiser, path, x_T, ts)
    # (This toy "model" is no denoiser, so values grow to ~300: compare relatively.)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4), (ours - theirs).abs().max()


def test_samplers_run_a_diffusers_unet_like_diffusers_does():
    diffusers = pytest.importorskip("diffusers")
    from difusion.sampling import ModelDenoiser
    from difusion.sampling.diffusers_bridge import DiffusersNetwork

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True
    )
    sched.set_timesteps(10)
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    theirs = x_T.clone()
    with torch.no_grad():
        for k in sched.timesteps:
            theirs = sched.step(unet(theirs, k).sample, k, theirs).prev_sample
    path = DDPMPath.from_schedule("linear", 1000)
    den = ModelDenoiser(DiffusersNetwork(unet), path, "eps")
    ts = [int(k) + 1 for k in sched.timesteps] + [0]
    ours = sample_ddim(den, path, x_T, ts)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


# -- classifier-free guidance -----------------------------------------------------------------------


def two_classes() -> GaussianMixture:
    pi = torch.tensor([0.5, 0.5])
    mu = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    cov = torch.stack([torch.eye(2) * 0.5, torch.eye(2) * 0.5])
    return GaussianMixture(pi, mu, cov)


def test_guidance_zero_is_the_conditional_model():
    mix = two_classes()
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = LabelledMixtureDenoiser(mix, path)
    x = torch.randn(10, 2, dtype=torch.float64)
    y = torch.tensor([0, 1] * 5)
    for t in (10, 500, 990):
        a = GuidedDenoiser(cond, path, 0.0, cond.null_label)(x, t, y)
        b = cond(x, t, y)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_guidance_follows_eq_6_and_pushes_toward_the_class():
    mix = two_classes()
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = LabelledMixtureDenoiser(mix, path)
    x = torch.randn(10, 2, dtype=torch.float64)
    y = torch.ones(10, dtype=torch.long)
    _, eps = GuidedDenoiser(cond, path, 2.0, cond.null_label)(x, 300, y)
    _, eps_c = cond(x, 300, y)
    _, eps_u = cond(x, 300, None)
    assert torch.allclose(eps, 3.0 * eps_c - 2.0 * eps_u)
    # Sampled with guidance, class 1 moves further from class 0 along the first coordinate.
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.ones(4000, dtype=torch.long)
    ts = ddim_timesteps(1000, 50)
    mean_x = []
    for w in (0.0, 1.0, 3.0):
        den = GuidedDenoiser(cond, path, w, cond.null_label)
        mean_x.append(sample_ddim(den, path, x_T, ts, y=y)[:, 0].mean().item())
    assert abs(mean_x[0] - 1.0) < 0.05  # w = 0: exactly the class's own distribution
    assert mean_x[0] < mean_x[1] < mean_x[2]


def test_guidance_rescale_keeps_the_conditional_std():
    mix = two_classes()
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = LabelledMixtureDenoiser(mix, path)
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.zeros(6, dtype=torch.long)
    x0_r, _ = GuidedDenoiser(cond, path, 4.0, cond.null_label, rescale=1.0)(x, 400, y)
    x0_c, _ = cond(x, 400, y)
    assert torch.allclose(x0_r.std(dim=1), x0_c.std(dim=1))


class CountingDenoiser:
    """A denoiser that records the batch size of every call (guidance doubles it)."""

    def __init__(self, denoiser):
        self.denoiser, self.null_label, self.batches = denoiser, denoiser.null_label, []

    def __call__(self, x, t, y=None):
        self.batches.append(x.shape[0])
        return self.denoiser(x, t, y)


def test_guidance_interval_guides_inside_it_and_is_conditional_outside():
    """Kynkaanniemi et al. 2024: eq. 6 where lo <= sigma / (alpha + sigma) <= hi, else the plain
    conditional prediction from one network call instead of two."""
    mix = two_classes()
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = CountingDenoiser(LabelledMixtureDenoiser(mix, path))
    x = torch.randn(8, 2, dtype=torch.float64)
    y = torch.tensor([0, 1] * 4)
    full = GuidedDenoiser(cond, path, 2.0, cond.null_label)
    limited = GuidedDenoiser(cond, path, 2.0, cond.null_label, interval=(0.3, 0.8))
    seen = set()
    for t in (20, 200, 400, 600, 800, 990):
        alpha, sigma = path.alpha_sigma(t)
        tau = sigma / (alpha + sigma)
        inside = 0.3 <= tau <= 0.8
        seen.add(inside)
        cond.batches.clear()
        x0, eps = limited(x, t, y)
        assert cond.batches == [16 if inside else 8]
        want = full(x, t, y) if inside else cond(x, t, y)
        assert torch.equal(x0, want[0]) and torch.equal(eps, want[1])
    assert seen == {True, False}  # both branches were exercised


def test_guidance_interval_guides_part_of_the_way():
    """Sampled with guidance on an interval, class 1 moves from class 0 by less than with guidance
    everywhere and more than without; an interval no step falls in is plain conditional sampling."""
    mix = two_classes()
    path = DDPMPath.from_schedule("cosine", 1000)
    cond = LabelledMixtureDenoiser(mix, path)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.ones(4000, dtype=torch.long)
    ts = ddim_timesteps(1000, 50)

    def mean_x(w, interval=(0.0, 1.0)):
        den = GuidedDenoiser(cond, path, w, cond.null_label, interval=interval)
        return sample_ddim(den, path, x_T, ts, y=y)[:, 0]

    plain, full, part = mean_x(0.0), mean_x(3.0), mean_x(3.0, (0.3, 0.8))
    assert plain.mean() + 0.05 < part.mean() < full.mean() - 0.05
    # no step of the 50 has a noise fraction under 1e-4: nothing is guided
    assert torch.equal(mean_x(3.0, (0.0, 1e-4)), plain)


def test_guidance_interval_on_the_flow_path_is_the_flow_time():
    """On the rectified path the noise fraction is t itself: guided for lo <= t <= hi only, by the
    same GuidedDenoiser as every other path."""
    from difusion.diffusion.flow import FlowPath

    calls = []

    def denoiser(x, t, y):
        calls.append(x.shape[0])
        shift = (y == 2).double()[:, None]  # the null label 2 shifts both estimates by 1
        return x + shift, x - shift

    x = torch.zeros(3, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    guided = GuidedDenoiser(denoiser, FlowPath(), 1.5, 2, interval=(0.25, 0.5))
    for t, inside in ((0.1, False), (0.25, True), (0.4, True), (0.6, False)):
        calls.clear()
        x0, eps = guided(x, torch.full((3,), t, dtype=torch.float64), y)
        # x0_c = 0, x0_u = 1: (1 + w) x0_c - w x0_u = -1.5 inside, x0_c = 0 outside
        assert torch.equal(x0, torch.full_like(x, -1.5 if inside else 0.0))
        assert torch.equal(eps, torch.full_like(x, 1.5 if inside else 0.0))
        assert calls == [6 if inside else 3]


def test_guidance_interval_errors_say_how_to_write_it():
    from difusion.sampling.guidance import check_interval, parse_interval

    assert parse_interval(" 0.3, 0.8") == [0.3, 0.8]
    for bad in ("0.8,0.3", "0.3", "a,b", "-0.1,0.5", "0.2,1.5"):
        with pytest.raises(ConfigError, match="LO,HI|lo < hi"):
            parse_interval(bad)
    with pytest.raises(ConfigError, match="two numbers"):
        check_interval(0.5)


# -- inversion and interpolation --------------------------------------------------------------------


def test_ddim_inversion_round_trip_with_the_oracle():
    mix = three_gaussians()
    path = DDPMPath.from_schedule("cosine", 1000)
    den = MixtureDenoiser(mix, path)
    x0, _ = mix.sample(200, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (50, 200, 1000):
        ts = ddim_timesteps(1000, steps)
        x_T = invert_ddim(den, path, x0, ts)
        assert x_T.std() > 0.8  # it really is noise-like
        errors.append((sample_ddim(den, path, x_T, ts) - x0).pow(2).mean().item())
    # Both directions are first-order Euler steps: the error falls with the step size.
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4, errors


def test_slerp_ends_and_norm():
    a, b = torch.randn(2, 1, 16, 16, dtype=torch.float64).unbind(0)
    a, b = a[None], b[None]
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    # Between two near-orthogonal noises the midpoint keeps the norm (lerp would shrink it ~1/sqrt2).
    assert abs(mid.norm() / a.norm() - 1) < 0.15 and (0.5 * (a + b)).norm() / a.norm() < 0.8


# -- inpainting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resample", [1, 3])
def test_inpainting_fills_in_the_consistent_component(resample):
    """Two far-apart components at (-2, -2) and (2, 2): knowing the first coordinate decides the
    second. The known coordinate is kept exactly."""
    pi = torch.tensor([0.5, 0.5])
    mu = torch.tensor([[-2.0, -2.0], [2.0, 2.0]])
    cov = torch.stack([torch.eye(2) * 0.1, torch.eye(2) * 0.1])
    mix = GaussianMixture(pi, mu, cov)
    path = DDPMPath.from_schedule("cosine", 1000)
    n = 400
    known = torch.zeros(n, 2, dtype=torch.float64)
    known[:, 0] = torch.where(torch.arange(n) % 2 == 0, 2.0, -2.0)
    mask = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = sample_inpaint(
        MixtureDenoiser(mix, path),
        path,
        x_T,
        ddim_timesteps(1000, 100),
        known,
        mask,
        resample=resample,
        noise=lambda shape: torch.randn(shape, generator=g, dtype=torch.float64),
    )
    assert torch.equal(x[:, 0], known[:, 0])
    agree = (torch.sign(x[:, 1]) == torch.sign(known[:, 0])).double().mean().item()
    assert agree > 0.97, agree
    # Without the mask the second coordinate would be a coin flip.
    assert (x[known[:, 0] > 0, 1].mean() - 2.0).abs() < 0.2
