"""Every path against first principles, and every sampler on every path against the exact denoiser of
a Gaussian mixture (issue 20, "Tests that can fail").

1. Each sampler (ddpm with beta and beta_tilde, ddim with eta 0 and 1, dpmpp-2m, euler, heun, fm-euler,
   fm-heun, fm-rk4), driven by the exact E[x_0 | x_t] of a 2-D Gaussian mixture, reproduces the mixture
   on each path (DDPM cosine and linear, rectified flow, OT flow with sigma_min = 0.01, VE with
   sigma_max = 20). The check is a set of z-scores that vanish in expectation for exact draws, and a
   sampler with one coefficient off by 10 % fails it (``test_a_miscalibrated_sampler_fails_the_check``).
2. ``posterior_coefs`` equals Bayes' rule, computed here by conditioning the joint Gaussian of
   (x_0, x_s, x_t) built from q(x_s | x_0) and q(x_t | x_s), for any s < t.
3. ``to_x0_eps`` inverts ``target``; ``velocity`` is the time derivative of ``q_sample``; the time maps
   invert ``log_snr`` and ``noise_fraction``.
4. Classifier-free guidance: eq. 6 in x_0 and eps form, clipping, the interval.

The tests after "bugs these checks found" pin down library bugs that these checks caught while the
one-path refactor was under way (each failed then, and was fixed).
"""

from __future__ import annotations

import math

import pytest
import torch

from difusion.diffusion.flow import FlowPath
from difusion.diffusion.oracle import GaussianMixture, LabelledMixtureDenoiser, MixtureDenoiser
from difusion.diffusion.path import DDPMPath, GaussianPath
from difusion.diffusion.ve import VEPath
from difusion.sampling.guidance import GuidedDenoiser
from difusion.sampling.samplers import run_sampler, timesteps_for

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests make many small tensor operations; a second intra-op thread only adds
    synchronization (3x the CPU time on a loaded 2-core machine). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


GRID = DDPMPath.from_schedule("cosine", 1000)  # the DDPM grid a continuous path borrows (build.py)
PATHS = {
    "ddpm-cosine": GRID,
    "ddpm-linear": DDPMPath.from_schedule("linear", 1000),
    "rectified": FlowPath("rectified"),
    "ot": FlowPath("ot", sigma_min=0.01),
    "ve": VEPath(sigma_max=20.0),
}

# -- 1. every sampler on every path reproduces a Gaussian mixture ------------------------------------

# Zero mean and a spread of about 1, so the VE prior N(0, (1 + sigma_max^2) I) that the samplers start
# from is the marginal at t = 1 to within 1 / sigma_max^2 of the data's variance.
MIX = GaussianMixture(
    torch.tensor([0.25, 0.25, 0.5]),
    torch.tensor([[-1.0, 0.6], [1.0, 0.6], [0.0, -0.6]]),
    torch.tensor(
        [[[0.10, 0.03], [0.03, 0.08]], [[0.08, -0.03], [-0.03, 0.10]], [[0.12, 0.0], [0.0, 0.05]]]
    ),
)
N = 4096  # samples per run
Z_MAX = 5.0  # the largest |z| a sampler may show on any statistic

# name: (sampler, its options, steps). The steps make each sampler's own error small next to Z_MAX
# (calibrated samplers show |z| <= 2.4 on every path): the stochastic ones are biased at O(1 / steps)
# (beta_tilde leaves out the variance of x_0 given x_t: |z| ~ 4 at 500 steps, 2.3 at 1000), and every
# sampler's last step jumps to the x_0 estimate, which shrinks the samples by about
# sigma^2 / (C + sigma^2) at the last grid point (dpmpp-2m on the linear DDPM grid: |z| = 11 at
# 50 steps, 0.6 at 200).
SAMPLERS = {
    "ddpm-beta": ("ddpm", {"variance": "beta"}, 500),
    "ddpm-beta_tilde": ("ddpm", {"variance": "beta_tilde"}, 1000),
    "ddim-eta0": ("ddim", {"eta": 0.0}, 300),
    "ddim-eta1": ("ddim", {"eta": 1.0}, 1000),
    "dpmpp-2m": ("dpmpp-2m", {}, 200),
    "euler": ("euler", {}, 200),
    "heun": ("heun", {}, 100),
    "fm-euler": ("fm-euler", {}, 200),
    "fm-heun": ("fm-heun", {}, 50),
    "fm-rk4": ("fm-rk4", {}, 20),
}


def marginal(mix: GaussianMixture, path, t) -> GaussianMixture:
    """The law of x_t = alpha x_0 + sigma eps for x_0 ~ mix: at t = 0 the mixture itself, except on
    the OT path, whose data end carries noise of scale sigma_min (C_k + sigma_min^2 I)."""
    a, s = path.alpha_sigma(t)
    return GaussianMixture(
        mix.pi, a * mix.mu, a * a * mix.cov + s * s * torch.eye(mix.dim, dtype=F64)
    )


def _terms(mix: GaussianMixture, x: torch.Tensor):
    """Per-sample terms whose means are 0 when x ~ mix, with their names. With the mixture's own
    responsibilities r_k(x), E[r_k f(x)] = pi_k E_k[f], so these vanish in expectation:
    r_k - pi_k (mass), r_k (x - mu_k) (mean), r_k ((x - mu_k)(x - mu_k)^T - C_k) (covariance), and
    sum_k r_k ((x - mu_k)^T C_k^{-1} (x - mu_k) - D) (spread: every component too wide or too narrow).
    Exact whatever the overlap of the components (no hard assignment)."""
    x = x.double()
    K, D = mix.mu.shape
    d = x[:, None] - mix.mu[None]  # (N, K, D)
    prec = torch.linalg.inv(mix.cov)
    maha = torch.einsum("nki,kij,nkj->nk", d, prec, d)
    r = torch.softmax(mix.pi.log() - 0.5 * (maha + torch.logdet(mix.cov)), dim=1)
    iu = torch.triu_indices(D, D)
    outer = (d[..., :, None] * d[..., None, :] - mix.cov)[..., iu[0], iu[1]]
    cols = [r - mix.pi, (r[..., None] * d).flatten(1), (r[..., None] * outer).flatten(1)]
    cols.append((r * (maha - D)).sum(1, keepdim=True))
    names = [f"mass {k}" for k in range(K)]
    names += [f"mean {k}.{i}" for k in range(K) for i in range(D)]
    names += [f"cov {k}.{i}{j}" for k in range(K) for i, j in iu.T.tolist()]
    return torch.cat(cols, 1), names + ["spread"]


_SPREAD: dict = {}


def z_scores(mix: GaussianMixture, x: torch.Tensor) -> dict[str, float]:
    """Each statistic's sample mean over x in units of its standard error for len(x) independent exact
    draws of ``mix`` (estimated once from 50,000 of them)."""
    key = (tuple(mix.mu.flatten().tolist()), tuple(mix.cov.flatten().tolist()))
    if key not in _SPREAD:
        _SPREAD[key] = _terms(mix, mix.sample(50_000, torch.Generator().manual_seed(123))[0])[
            0
        ].std(0)
    terms, names = _terms(mix, x)
    z = terms.mean(0) / (_SPREAD[key] / math.sqrt(len(x)))
    return dict(zip(names, z.tolist(), strict=True))


def worst(z: dict[str, float]) -> tuple[str, float]:
    """The statistic with the largest |z| (a NaN counts as infinitely wrong)."""
    name = max(z, key=lambda k: math.inf if math.isnan(z[k]) else abs(z[k]))
    return name, (math.inf if math.isnan(z[name]) else abs(z[name]))


def quasi_normal(n: int, seed: int = 0) -> torch.Tensor:
    """n quasi-random N(0, I) points in 2-D (scrambled Sobol through the normal quantile). The
    deterministic samplers are transport maps, so their sample moments then carry almost no Monte
    Carlo error and what remains of the z-scores is the sampler's own error."""
    u = torch.quasirandom.SobolEngine(2, scramble=True, seed=seed).draw(n, dtype=F64)
    return math.sqrt(2.0) * torch.erfinv(2.0 * u.clamp(1e-12, 1 - 1e-12) - 1.0)


def grid(name: str, path, steps: int) -> list:
    """The sampler's grid: its own on DDPM; on a continuous path the DDPM samplers borrow the cosine
    DDPM grid by log-SNR (as a flow run does) and the fm-* solvers use evenly spaced noise fractions.
    Times clamped to the same end of the path (VE, OT) are merged: see
    test_dpmpp_2m_on_a_borrowed_grid_with_repeated_times."""
    ts = timesteps_for(name, path, steps, grid_path=None if path.discrete else GRID)
    return [t for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]


def sample(key: str, path, sampler_path=None, seed: int = 0) -> tuple[torch.Tensor, list]:
    """N samples of MIX by sampler ``key`` on ``path``, from x_T = prior_std * N(0, I) as
    ``draw_samples`` starts; ``sampler_path`` is what the sampler is told the path is (default: the
    path itself; the denoiser is always the exact one of ``path``)."""
    name, options, steps = SAMPLERS[key]
    ts = grid(name, path, steps)
    x_T = quasi_normal(N, seed) * path.prior_std(ts[0])
    g = torch.Generator().manual_seed(seed)
    x = run_sampler(
        name,
        MixtureDenoiser(MIX, path),
        sampler_path or path,
        x_T,
        ts,
        noise=lambda shape: torch.randn(shape, generator=g, dtype=F64),
        **options,
    )
    return x, ts


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("path_name", list(PATHS))
def test_every_sampler_reproduces_the_mixture_on_every_path(path_name, sampler):
    path = PATHS[path_name]
    x, ts = sample(sampler, path)
    assert torch.isfinite(x).all()
    z = z_scores(marginal(MIX, path, ts[-1]), x)
    name, value = worst(z)
    assert value < Z_MAX, (name, value, z)


class Miscalibrated(GaussianPath):
    """``path`` with alpha and sigma multiplied by constant factors: a sampler handed this makes every
    step with one coefficient wrong, while the denoiser stays exact."""

    def __init__(self, path, alpha: float = 1.0, sigma: float = 1.0):
        self.path, self.ka, self.ks = path, alpha, sigma
        self.t_max, self.discrete, self.time_scale = path.t_max, path.discrete, path.time_scale
        self.T = getattr(path, "T", None)

    def alpha(self, t):
        return self.ka * self.path.alpha(t)

    def sigma(self, t):
        return self.ks * self.path.sigma(t)

    def d_alpha(self, t):
        return self.ka * self.path.d_alpha(t)

    def d_sigma(self, t):
        return self.ks * self.path.d_sigma(t)

    def t_at_log_snr(self, lam):
        shift = 2.0 * math.log(self.ka / self.ks)  # lambda here = lambda of ``path`` + shift
        return self.path.t_at_log_snr(torch.as_tensor(lam, dtype=F64) - shift)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_miscalibrated_sampler_fails_the_check(sampler):
    """The check above can fail: the same sampler, grid, seed and samples, told that sigma is 10 %
    larger than it is, misses the mixture by more than Z_MAX (|z| from 9.6 to 1e61 here, against at
    most 2.4 when calibrated; the same holds on the other four paths, |z| >= 9.6). DPM-Solver++ reads sigma only through sigma_s / sigma_t and differences of
    log(alpha / sigma), where a constant factor cancels exactly, so it is told alpha is 10 % larger
    instead (Euler and Heun are blind to that one in turn: alpha_s / alpha_t and alpha sigma~)."""
    path = PATHS["ddpm-cosine"]
    wrong = (
        Miscalibrated(path, alpha=1.1) if sampler == "dpmpp-2m" else Miscalibrated(path, sigma=1.1)
    )
    x, ts = sample(sampler, path, sampler_path=wrong)
    name, value = worst(z_scores(marginal(MIX, path, ts[-1]), x))
    assert value > Z_MAX, (name, value)


# -- bugs these checks found during the refactor (each failed before its fix) -----------------------


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_euler_and_heun_run_on_a_flow_path_without_a_borrowed_grid(name):
    path = PATHS["rectified"]
    ts = timesteps_for(name, path, 20)
    x = run_sampler(name, MixtureDenoiser(MIX, path), path, quasi_normal(64), ts)
    assert torch.isfinite(x).all()


def test_dpmpp_2m_on_a_borrowed_grid_with_repeated_times():
    path = PATHS["ve"]
    ts = timesteps_for("dpmpp-2m", path, 50, grid_path=GRID)
    # cosine noise levels above sigma_max = 20 all clamp to t = 1: one step from there, no repeats
    assert ts[0] == 1.0 and all(a > b for a, b in zip(ts, ts[1:], strict=False))
    x = run_sampler("dpmpp-2m", MixtureDenoiser(MIX, path), path, quasi_normal(64) * 20.0, ts)
    assert torch.isfinite(x).all()


def test_ddim_on_the_ve_path_with_its_own_default_grid():
    path = PATHS["ve"]
    ts = timesteps_for("ddim", path, 100)
    x = run_sampler(
        "ddim", MixtureDenoiser(MIX, path), path, quasi_normal(N) * path.prior_std(1.0), ts
    )
    name, value = worst(z_scores(MIX, x))
    assert value < Z_MAX, (name, value)


@pytest.mark.parametrize("name", ["fm-heun", "fm-rk4"])
def test_guided_flow_sampling_with_rescale_stays_finite(name):
    path = PATHS["rectified"]
    cond = LabelledMixtureDenoiser(MIX, path)
    guided = GuidedDenoiser(cond, path, 1.0, cond.null_label, rescale=0.7)
    ts = timesteps_for(name, path, 10)
    y = torch.zeros(64, dtype=torch.long)
    assert torch.isfinite(run_sampler(name, guided, path, quasi_normal(64), ts, y=y)).all()


# -- 2. the posterior in (alpha, sigma) form is Bayes' rule -------------------------------------------


def bayes(path, t, s, m: float = 0.3, v: float = 0.7):
    """q(x_s | x_t, x_0) and q(x_s | x_t) for x_0 ~ N(m, v), by conditioning the joint Gaussian of
    (x_0, x_s, x_t) written from q(x_s | x_0) = N(alpha_s x_0, sigma_s^2) and the Markov step
    q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2), alpha_{t|s} = alpha_t / alpha_s,
    sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2. Uses only the path's alpha and sigma.
    Returns c_x0, c_xt, the constant term (0: the posterior does not depend on the prior), the
    variance given (x_t, x_0), and the variance given x_t alone."""
    (a_t, s_t), (a_s, s_s) = path.alpha_sigma(t), path.alpha_sigma(s)
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    # (x_0, x_s, x_t) = A (x_0, e_1, e_2) with x_0 ~ N(m, v) and e_1, e_2 ~ N(0, 1) independent
    A = torch.tensor(
        [[1.0, 0.0, 0.0], [a_s, s_s, 0.0], [a_ts * a_s, a_ts * s_s, math.sqrt(var_ts)]], dtype=F64
    )
    cov = A @ torch.diag(torch.tensor([v, 1.0, 1.0], dtype=F64)) @ A.T
    mean = A @ torch.tensor([m, 0.0, 0.0], dtype=F64)
    given = [2, 0]  # condition x_s (index 1) on (x_t, x_0)
    B = torch.linalg.solve(cov[given][:, given], cov[given, 1])  # regression coefficients
    const = mean[1] - B @ mean[given]
    var = cov[1, 1] - B @ cov[given, 1]
    var_given_xt = cov[1, 1] - cov[1, 2] ** 2 / cov[2, 2]
    return B[1].item(), B[0].item(), const.item(), var.item(), var_given_xt.item()


PAIRS = {  # (t, s) with s < t: one step, several, and down to the data s = 0
    "ddpm-cosine": [(1, 0), (2, 1), (500, 499), (1000, 999), (700, 300), (1000, 0), (37.5, 12.25)],
    "ddpm-linear": [(1, 0), (2, 1), (500, 499), (1000, 999), (700, 300), (1000, 0), (250.5, 250)],
    "rectified": [(1.0, 0.0), (0.5, 0.0), (0.7, 0.3), (0.31, 0.3), (1.0, 0.99), (0.01, 0.0)],
    "ot": [(1.0, 0.0), (0.5, 0.0), (0.7, 0.3), (0.31, 0.3), (1.0, 0.99), (0.01, 0.0)],
    "ve": [(1.0, 0.0), (0.5, 0.2), (0.01, 0.0), (1.0, 0.99), (0.3, 0.29)],
}


@pytest.mark.parametrize("path_name", list(PATHS))
def test_posterior_is_bayes_rule(path_name):
    path = PATHS[path_name]
    like = torch.zeros(1, 1, dtype=F64)
    g = torch.Generator().manual_seed(0)
    for t, s in PAIRS[path_name]:
        c_x0, c_xt, const, var, _ = bayes(path, t, s)
        assert abs(const) < 1e-12, (t, s, const)
        got = [v.item() for v in path.posterior_coefs(t, s, like)]
        for name, want, have in zip(
            ("c_x0", "c_xt", "var_tilde"), (c_x0, c_xt, var), got, strict=False
        ):
            assert have == pytest.approx(want, rel=1e-9, abs=1e-12), (t, s, name, have, want)
        # var_large is the exact variance of x_s given x_t alone for data of unit variance
        var_unit = bayes(path, t, s, m=0.0, v=1.0)[4]
        assert got[3] == pytest.approx(var_unit, rel=1e-9, abs=1e-12), (t, s, got[3], var_unit)
        # posterior() is the same affine map, batched
        x0, x_t = (
            torch.randn(5, 3, generator=g, dtype=F64),
            torch.randn(5, 3, generator=g, dtype=F64),
        )
        mean, v_tilde, v_large = path.posterior(x0, x_t, t, s)
        assert torch.allclose(mean, c_x0 * x0 + c_xt * x_t, rtol=1e-9, atol=1e-12)
        assert torch.allclose(v_tilde, torch.full_like(v_tilde, var), rtol=1e-9, atol=1e-12)
        assert v_large.shape == v_tilde.shape == (5, 1)


@pytest.mark.parametrize("path_name", ["ddpm-cosine", "ddpm-linear"])
def test_ddpm_posterior_variances_are_ho_et_al(path_name):
    """var_large = beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s for any s < t; for s = t - 1 these are
    beta_t and beta_tilde_t of eq. 7, and posterior() steps from t to t - 1 by default."""
    path = PATHS[path_name]
    ab = path.alpha_bar
    like = torch.zeros(1, 1, dtype=F64)
    for t, s in [(1, 0), (2, 0), (10, 9), (500, 499), (700, 300), (1000, 0), (1000, 999)]:
        _, _, var_tilde, var_large = path.posterior_coefs(t, s, like)
        assert var_large.item() == pytest.approx(1 - (ab[t] / ab[s]).item(), rel=1e-12)
        if s == t - 1:
            assert var_large.item() == pytest.approx(path.beta[t].item(), rel=1e-12)
            assert var_tilde.item() == pytest.approx(path.beta_tilde[t].item(), rel=1e-9, abs=1e-15)
    x0, x_t = torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    t = torch.tensor([5, 50, 500, 1000])  # per-example times, s = t - 1 each
    mean = path.posterior(x0, x_t, t)[0]
    for i, ti in enumerate(t.tolist()):
        assert torch.allclose(
            mean[i], path.posterior(x0[i : i + 1], x_t[i : i + 1], ti, ti - 1)[0][0]
        )


# -- 3. conversions, the velocity and the time maps ---------------------------------------------------

TIMES = {  # interior times, one vector of mixed times; the ends where the formulas allow them
    "ddpm-cosine": [1, 2, 500, 1000, 37.5, torch.tensor([1, 17, 999, 1000])],
    "ddpm-linear": [1, 2, 500, 1000, 37.5, torch.tensor([1, 17, 999, 1000])],
    "rectified": [0.01, 0.5, 0.99, torch.tensor([0.01, 0.2, 0.6, 0.999], dtype=F64)],
    "ot": [0.01, 0.5, 0.99, torch.tensor([0.01, 0.2, 0.6, 0.999], dtype=F64)],
    "ve": [0.001, 0.3, 1.0, torch.tensor([0.001, 0.2, 0.6, 1.0], dtype=F64)],
}


def _is_integer(t) -> bool:
    return not torch.is_floating_point(t) if torch.is_tensor(t) else float(t) == int(t)


@pytest.mark.parametrize("path_name", list(PATHS))
def test_every_prediction_converts_back_to_x0_and_eps(path_name):
    path = PATHS[path_name]
    predictions = ["eps", "x0", "velocity"]
    if path.discrete:
        predictions += ["v", "mu"]  # v needs alpha^2 + sigma^2 = 1; mu lives on integer t >= 1
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    times = list(TIMES[path_name])
    if not path.discrete and path_name != "ve":
        times += [0.0, 1.0]  # a flow's velocity is invertible at both ends (determinant 1)
    for t in times:
        x_t = path.q_sample(x0, t, eps)
        for p in predictions:
            if p == "mu" and not _is_integer(t):
                continue
            if p in ("eps", "x0") and not torch.is_tensor(t) and t in (0.0, 1.0):
                continue  # alpha = 0 or sigma = 0: eps or x_0 alone does not determine the other
            x0_hat, eps_hat = path.to_x0_eps(p, path.target(p, x0, eps, t), x_t, t)
            assert torch.allclose(x0_hat, x0, atol=1e-7), (p, t)
            assert torch.allclose(eps_hat, eps, atol=1e-7), (p, t)


@pytest.mark.parametrize("path_name", list(PATHS))
def test_velocity_is_the_time_derivative_of_q_sample(path_name):
    """Central differences of q_sample along a fixed (x_0, eps); on DDPM between integer times, where
    the log-SNR is linear (it has a kink at each integer)."""
    path = PATHS[path_name]
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    if path.discrete:
        times, h = (
            [1.5, 37.5, 500.25, 999.5, torch.tensor([1.3, 2.7, 400.5, 999.2], dtype=F64)],
            1e-4,
        )
    else:
        times, h = [0.01, 0.3, 0.9, torch.tensor([0.05, 0.2, 0.6, 0.95], dtype=F64)], 1e-6
    for t in times:
        fd = (path.q_sample(x0, t + h, eps) - path.q_sample(x0, t - h, eps)) / (2 * h)
        v = path.velocity(x0, eps, t)
        assert torch.allclose(fd, v, rtol=1e-6, atol=1e-8), (t, (fd - v).abs().max())


@pytest.mark.parametrize("path_name", list(PATHS))
def test_time_maps_invert_log_snr_and_noise_fraction(path_name):
    path = PATHS[path_name]
    if path.discrete:  # fractional times live on [1, T]; t = 0 is +inf log-SNR, clamped to 1
        times = [1.0, 2.0, 37.5, 500.0, 777.25, 999.99, 1000.0]
    else:
        times = [0.0, 1e-4, 0.01, 0.5, 0.999, 1.0]
    t = torch.tensor(times, dtype=F64)
    assert torch.allclose(path.t_at_log_snr(path.log_snr(t)), t, rtol=1e-9, atol=1e-12)
    if path.discrete:  # integer times read the tables
        ti = torch.tensor([1, 2, 500, 1000])
        assert torch.allclose(path.t_at_log_snr(path.log_snr(ti)), ti.double(), atol=1e-9)
    for tt in times:
        tau = path.noise_fraction(tt)
        a, s = path.alpha_sigma(tt)
        assert tau == pytest.approx(s / (a + s), abs=1e-15)
        assert path.t_at_noise_fraction(tau) == pytest.approx(tt, rel=1e-9, abs=1e-12), (tt, tau)


# -- 4. guidance ---------------------------------------------------------------------------------------

SHIFT = torch.tensor([1.5, -0.2, -0.4], dtype=F64)  # per label; label 2 is the null label


class LabelShift:
    """A conditional denoiser whose x_0 estimate is 0.5 x_t + SHIFT[y] (label 0 pushes it out of
    [-1, 1]) and whose eps is the matching (x_t - alpha x_0) / sigma. Records the labels it sees."""

    null_label = 2

    def __init__(self, path):
        self.path, self.calls = path, []

    def __call__(self, x_t, t, y):
        self.calls.append(y.clone())
        a, s = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        x0 = 0.5 * x_t + SHIFT[y][:, None]
        return x0, (x_t - a * x0) / s


def _guidance_case(path_name, tau=0.5):
    path = PATHS[path_name]
    t = path.t_at_noise_fraction(tau)
    x_t = torch.linspace(-3, 3, 24, dtype=F64).reshape(8, 3)
    y = torch.tensor([1, 0] * 4)
    den = LabelShift(path)
    x0_c, eps_c = den(x_t, t, y)
    x0_u, eps_u = den(x_t, t, torch.full_like(y, den.null_label))
    den.calls.clear()
    return path, t, x_t, y, den, (x0_c, eps_c, x0_u, eps_u)


@pytest.mark.parametrize("path_name", list(PATHS))
def test_guidance_is_eq_6_in_x0_and_eps(path_name):
    path, t, x_t, y, den, (x0_c, eps_c, x0_u, eps_u) = _guidance_case(path_name)
    w = 2.0
    x0, eps = GuidedDenoiser(den, path, w, den.null_label)(x_t, t, y)
    assert torch.allclose(x0, (1 + w) * x0_c - w * x0_u)
    assert torch.allclose(eps, (1 + w) * eps_c - w * eps_u)
    assert len(den.calls) == 1 and den.calls[0].tolist() == y.tolist() + [2] * 8  # one batch


@pytest.mark.parametrize("path_name", list(PATHS))
def test_guidance_clips_the_combined_x0_and_recomputes_eps(path_name):
    path, t, x_t, y, den, (x0_c, _, x0_u, _) = _guidance_case(path_name)
    w = 2.0
    raw = (1 + w) * x0_c - w * x0_u
    assert (raw > 1).any() and (raw < -1).any() and (raw.abs() < 1).any()  # clipping bites
    x0, eps = GuidedDenoiser(den, path, w, den.null_label, clip_x0=True)(x_t, t, y)
    assert torch.equal(x0, raw.clamp(-1.0, 1.0))
    a, s = path.alpha_sigma(t)
    assert torch.allclose(eps, (x_t - a * x0) / s)


@pytest.mark.parametrize("path_name", list(PATHS))
def test_guidance_interval_is_conditional_outside(path_name):
    lo, hi = 0.3, 0.8
    for tau, inside in [(0.1, False), (0.5, True), (0.9, False)]:
        path, t, x_t, y, den, (x0_c, eps_c, x0_u, eps_u) = _guidance_case(path_name, tau)
        x0, eps = GuidedDenoiser(den, path, 2.0, den.null_label, interval=(lo, hi))(x_t, t, y)
        if inside:
            assert torch.allclose(x0, 3 * x0_c - 2 * x0_u) and torch.allclose(
                eps, 3 * eps_c - 2 * eps_u
            )
        else:
            assert torch.equal(x0, x0_c) and torch.equal(eps, eps_c), tau
            assert len(den.calls) == 1 and den.calls[0].tolist() == y.tolist()  # one call, no null


def test_guidance_with_clipping_clips_outside_the_interval_too():
    path, t, x_t, y, den, (x0_c, _, _, _) = _guidance_case("ddpm-cosine", tau=0.1)
    assert (x0_c.abs() > 1).any()
    guided = GuidedDenoiser(den, path, 2.0, den.null_label, clip_x0=True, interval=(0.3, 0.8))
    x0, eps = guided(x_t, t, y)
    assert torch.equal(x0, x0_c.clamp(-1.0, 1.0))


def test_ddpm_derivatives_are_those_of_its_interpolated_path():
    """Between the integers the DDPM path interpolates the log-SNR linearly on [1, T] and holds it
    constant below t = 1: d_alpha and d_sigma match finite differences there too."""
    path = DDPMPath.from_schedule("cosine", 1000)
    t = torch.tensor([0.25, 0.5, 1.5, 2.5, 417.3, 999.5], dtype=torch.float64)
    h = 1e-6
    for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        fd = (f(t + h) - f(t - h)) / (2 * h)
        assert torch.allclose(df(t), fd, rtol=1e-5, atol=1e-9)
