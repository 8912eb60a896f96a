"""One Gaussian path behind every model: x_t = alpha(t) x_0 + sigma(t) eps, eps ~ N(0, I).

Direction of time, stated once for the whole lab: **t = 0 is data**, t = ``t_max`` is (almost)
pure noise, and sampling runs from ``t_max`` down to 0.

A path is a small object with four functions of one time axis -- ``alpha``, ``sigma`` and their
time derivatives -- plus the log-SNR lambda(t) = log(alpha^2 / sigma^2) and its inverse. Everything
else is written once, here, in (alpha, sigma) form and holds on every path:

- the forward marginal q(x_t | x_0) (Ho et al. 2020 eq. 4; Kingma et al. 2021 eq. 1),
- the posterior q(x_s | x_t, x_0) for any s < t (Ho et al. eqs. 6-7; Kingma et al. eqs. 29-33),
- the views of a prediction (eps, x_0, v, the flow velocity, the posterior mean) as (x_0, eps),
- the probability-flow velocity dx/dt = alpha'(t) x_0 + sigma'(t) eps,
- the noise fraction tau = sigma / (alpha + sigma): every path is the rectified flow
  (1 - tau) x_0 + tau eps after dividing x by alpha + sigma (equal SNR, Kingma et al. 2021 Sec. 3).

The implementations are small: :class:`DDPMPath` (the discrete variance-preserving process of Ho et
al., indexed by the paper's t = 0..T, here), ``FlowPath`` (rectified flow and the OT path,
``diffusion/flow.py``) and ``VEPath`` (variance exploding, ``diffusion/ve.py``). A network sees the
time ``time_scale * t`` (DDPM: t itself; flows: 1000 t), the one map between path and network time.
"""

from __future__ import annotations

import math

import torch

from difusion.diffusion import parameterization as P
from difusion.diffusion.schedules import make_betas


def is_fractional(t) -> bool:
    """True for a time (or tensor of times) that falls between integer steps."""
    if torch.is_tensor(t):
        return t.is_floating_point() and bool((t != t.round()).any())
    return float(t) != round(float(t))


def as_time(t) -> torch.Tensor:
    """A time as a tensor without losing precision: long for an integer, float64 otherwise."""
    if torch.is_tensor(t):
        return t
    if float(t) == round(float(t)):
        return torch.tensor(int(round(float(t))))
    return torch.tensor(float(t), dtype=torch.float64)


def time_vector(t, n: int) -> torch.Tensor:
    """``t`` as an (n,) tensor: long for integer times (the DDPM tables), float64 otherwise."""
    if torch.is_tensor(t) and t.dim() > 0:
        return t
    if torch.is_tensor(t):
        t = t.item()
    if is_fractional(t):
        return torch.full((n,), float(t), dtype=torch.float64)
    return torch.full((n,), int(round(float(t))), dtype=torch.long)


def _shaped(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-example values (N,) cast to ``like`` and shaped to broadcast against it."""
    return v.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class GaussianPath:
    """The interface: ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma``, ``t_at_log_snr`` (float64 in,
    float64 out, any shape of t), ``t_max``, ``time_scale``; the rest is derived once here."""

    t_max: float = 1.0
    time_scale: float = 1000.0  # network time = time_scale * t
    discrete: bool = False  # True: integer times index the paper's tables (DDPM)

    # -- the interface ------------------------------------------------------------------------
    def alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t) -> torch.Tensor:
        raise NotImplementedError

    def log_snr(self, t) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2) (Kingma et al. 2021): +inf at clean data."""
        return 2.0 * (self.alpha(t).log() - self.sigma(t).log())

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """The time whose log-SNR is ``lam`` (the inverse of :meth:`log_snr`), clamped to the path."""
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    # -- derived, written once ----------------------------------------------------------------
    def alpha_t(self, t, like: torch.Tensor) -> torch.Tensor:
        """alpha at time(s) ``t`` shaped to broadcast against ``like`` (one value per example)."""
        return _shaped(self.alpha(time_vector(t, like.shape[0]).cpu()), like)

    def sigma_t(self, t, like: torch.Tensor) -> torch.Tensor:
        """sigma at time(s) ``t`` shaped to broadcast against ``like``."""
        return _shaped(self.sigma(time_vector(t, like.shape[0]).cpu()), like)

    def alpha_sigma(self, t) -> tuple[float, float]:
        """(alpha_t, sigma_t) at one time as Python floats."""
        t = as_time(t).reshape(1)
        return self.alpha(t).item(), self.sigma(t).item()

    def q_sample(self, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """A draw of q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) (Ho et al. eq. 4 on DDPM)."""
        return self.alpha_t(t, x0) * x0 + self.sigma_t(t, x0) * eps

    def noise_fraction(self, t) -> float:
        """tau = sigma / (alpha + sigma) at one time: 0 is data, 1 pure noise, on every path."""
        a, s = self.alpha_sigma(t)
        return s / (a + s)

    def t_at_noise_fraction(self, tau: float) -> float:
        """The time with noise fraction ``tau`` (lambda = -2 log(tau / (1 - tau))), clamped."""
        if tau >= 1.0:
            lam = -math.inf
        elif tau <= 0.0:
            lam = math.inf
        else:
            r = torch.tensor(tau, dtype=torch.float64) / (1.0 - tau)
            lam = (-2.0 * torch.log(r)).item()
        return float(self.t_at_log_snr(torch.tensor(lam, dtype=torch.float64)))

    def prior_std(self, t) -> float:
        """sqrt(alpha^2 + sigma^2): the std of x_t for unit-variance data, where samplers start."""
        a, s = self.alpha_sigma(t)
        return math.sqrt(a * a + s * s)

    def posterior_coefs(self, t, s, like: torch.Tensor):
        """Coefficients of q(x_s | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, var_tilde I) for s < t, and the
        "large" variance var_large, all shaped like ``like``'s batch:

            alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2,
            c_xt = alpha_{t|s} sigma_s^2 / sigma_t^2,   c_x0 = alpha_s sigma_{t|s}^2 / sigma_t^2,
            var_tilde = sigma_{t|s}^2 sigma_s^2 / sigma_t^2                (Kingma et al. eq. 33)
            var_large = sigma_{t|s}^2 (alpha_s^2 + sigma_s^2) / (alpha_t^2 + sigma_t^2)

        On DDPM (alpha^2 + sigma^2 = 1) these are Ho et al.'s eqs. 6-7 with beta_{t|s} =
        1 - alpha_bar_t / alpha_bar_s, and var_large is beta_{t|s}: the exact reverse variance for
        unit-variance Gaussian data, Ho et al.'s choice sigma^2 = beta."""
        n = like.shape[0]
        t, s = time_vector(t, n).cpu(), time_vector(s, n).cpu()
        a_t, s_t, a_s, s_s = self.alpha(t), self.sigma(t), self.alpha(s), self.sigma(s)
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        inv = 1.0 / (s_t**2).clamp(min=1e-40)
        c_xt, c_x0 = a_ts * s_s**2 * inv, a_s * var_ts * inv
        var_tilde = var_ts * s_s**2 * inv
        var_large = var_ts * (a_s**2 + s_s**2) / (a_t**2 + s_t**2)
        return tuple(_shaped(v, like) for v in (c_x0, c_xt, var_tilde, var_large))

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t, s=None):
        """(mean, var_tilde, var_large) of q(x_s | x_t, x_0); s = t - 1 by default (DDPM's step)."""
        if s is None:
            s = t - 1
        c_x0, c_xt, var_tilde, var_large = self.posterior_coefs(t, s, x_t)
        return c_x0 * x0 + c_xt * x_t, var_tilde, var_large

    def velocity(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """The probability-flow velocity dx_t/dt = alpha'(t) x_0 + sigma'(t) eps (Lipman et al.
        eq. 9's conditional target with t -> 1 - t): the flow objective's regression target."""
        n = x0.shape[0]
        t = time_vector(t, n).cpu()
        return _shaped(self.d_alpha(t), x0) * x0 + _shaped(self.d_sigma(t), x0) * eps

    def to_x0_eps(self, prediction: str, out: torch.Tensor, x_t: torch.Tensor, t):
        """A network output in any parameterization as the pair (x_0, eps) at (x_t, t): eps, x0
        and v (Ho et al. eq. 15; Salimans & Ho Sec. 4), the velocity alpha' x_0 + sigma' eps
        (flow matching), or mu, the posterior mean of the step t -> t - 1 (c_x0 x_0 + c_xt x_t
        inverted; ``x_prev``, the same quantity learned from draws of x_{t-1}). The formulas are in
        ``parameterization.py``."""
        P.check_prediction(prediction)
        alpha, sigma = self.alpha_t(t, x_t), self.sigma_t(t, x_t)
        if prediction == "velocity":
            tv = time_vector(t, x_t.shape[0]).cpu()
            da, ds = _shaped(self.d_alpha(tv), x_t), _shaped(self.d_sigma(tv), x_t)
            return P.x0_eps_from_velocity(x_t, out, alpha, sigma, da, ds)
        if prediction in P.STEP_MEANS:  # E[x_{t-1} | x_t] = c_x0 x0 + c_xt x_t (Nakkiran Claim 2)
            c_x0, c_xt, _, _ = self.posterior_coefs(t, time_vector(t, x_t.shape[0]) - 1, x_t)
            x0 = (out - c_xt * x_t) / c_x0
            return x0, P.eps_from_x0(x_t, x0, alpha, sigma)
        return P.to_x0_eps(prediction, out, x_t, alpha, sigma)

    def target(self, prediction: str, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """What a network trained for ``prediction`` should output for this (x_0, eps) at t."""
        if prediction == "velocity":
            return self.velocity(x0, eps, t)
        if prediction in P.STEP_MEANS:  # the mean; x_prev's own draw is losses.step_pair
            return self.posterior(x0, self.q_sample(x0, t, eps), t)[0]
        return P.target(prediction, x0, eps, self.alpha_t(t, x0), self.sigma_t(t, x0))


class DDPMPath(GaussianPath):
    """The discrete variance-preserving forward process of Ho et al. 2020 and its closed forms.

    Built from betas (beta_1..beta_T). Holds, indexed by the paper's t = 0..T: beta (beta_0 := 0),
    alpha = 1 - beta, alpha_bar = prod_{s<=t} alpha_s (alpha_bar_0 = 1). In the shared notation
    alpha(t) = sqrt(alpha_bar_t), sigma(t) = sqrt(1 - alpha_bar_t). Tables are float64.

    Notation warning: the table ``alpha`` is Ho et al.'s alpha_t = 1 - beta_t; the path's
    ``alpha(t)`` method (the scale of x_0) is sqrt(alpha_bar_t). Times between the integers are
    defined by interpolating the log-SNR linearly (``log_snr``), with alpha^2 = sigmoid(lambda),
    sigma^2 = sigmoid(-lambda): samplers on a continuous grid (Karras, flow ODE) visit them.
    """

    time_scale = 1.0  # the network sees the paper's t itself
    discrete = True

    def __init__(self, betas: torch.Tensor):
        betas = betas.to(torch.float64)
        self.T = int(betas.shape[0])
        self.t_max = float(self.T)
        zero = torch.zeros(1, dtype=torch.float64)
        self.beta = torch.cat([zero, betas])  # beta[t], t = 0..T
        self.alpha_table = 1.0 - self.beta  # Ho et al.'s alpha_t = 1 - beta_t (eq. 4 notation)
        self.alpha_bar = torch.cumprod(self.alpha_table, dim=0)  # prod_{s=1}^t alpha_s
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        # beta_tilde_t of eq. 7 (t >= 1; 0 at t = 0), for the learned-variance interpolation
        self.beta_tilde = (
            self.beta * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar).clamp(min=1e-20)
        )
        self.beta_tilde[0] = 0.0
        self._lam = self.alpha_bar.log() - (1.0 - self.alpha_bar).log()  # lambda_t, +inf at 0

    @classmethod
    def from_schedule(cls, name: str = "linear", T: int = 1000) -> DDPMPath:
        """The path for a named beta schedule (``linear``, ``cosine`` or ``sigmoid``) with T steps."""
        return cls(make_betas(name, T))

    def describe(self) -> str:
        return f"DDPM, T = {self.T}"

    # -- the interface ------------------------------------------------------------------------
    def _table_or_interp(self, table: torch.Tensor, t, sign: float) -> torch.Tensor:
        t = as_time(t)
        if is_fractional(t):
            return torch.sigmoid(sign * self.log_snr(t)).sqrt()
        return table[t.round().long()]

    def alpha(self, t) -> torch.Tensor:
        """sqrt(alpha_bar_t): the scale of x_0 in x_t."""
        return self._table_or_interp(self.alpha_bar.sqrt(), t, 1.0)

    def sigma(self, t) -> torch.Tensor:
        """sqrt(1 - alpha_bar_t): the scale of the noise in x_t."""
        return self._table_or_interp((1.0 - self.alpha_bar).sqrt(), t, -1.0)

    def _d_log_snr(self, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        lo = t.clamp(1.0, self.t_max).floor().long().clamp(1, self.T - 1)
        slope = self._lam[lo + 1] - self._lam[lo]  # slope of the linear interpolation
        return torch.where((t >= 1.0) & (t <= self.t_max), slope, torch.zeros_like(slope))

    def d_alpha(self, t) -> torch.Tensor:
        """d alpha / dt = alpha sigma^2 lambda'(t) / 2 (alpha^2 = sigmoid(lambda))."""
        a, s = self.alpha(t), self.sigma(t)
        return 0.5 * a * s**2 * self._d_log_snr(t)

    def d_sigma(self, t) -> torch.Tensor:
        """d sigma / dt = -sigma alpha^2 lambda'(t) / 2."""
        a, s = self.alpha(t), self.sigma(t)
        return -0.5 * s * a**2 * self._d_log_snr(t)

    def log_snr(self, t) -> torch.Tensor:
        """lambda at times t: the table at integers (+inf at 0), linear in between (on [1, T])."""
        t = as_time(t)
        if not is_fractional(t):
            return self._lam[t.round().long()]
        t = t.to(torch.float64).clamp(1.0, self.t_max)
        lo = t.floor().long().clamp(max=self.T - 1)
        w = t - lo
        return self._lam[lo] * (1.0 - w) + self._lam[(lo + 1).clamp(max=self.T)] * w

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """The (fractional) time in [1, T] whose log-SNR is ``lam``: the inverse of ``log_snr``."""
        table = self._lam[1:].flip(0)  # increasing: lambda_T, ..., lambda_1
        lam = torch.as_tensor(lam, dtype=torch.float64).clamp(table[0], table[-1])
        j = torch.searchsorted(table, lam).clamp(1, self.T - 1)  # table[j-1] <= lam <= table[j]
        w = (lam - table[j - 1]) / (table[j] - table[j - 1])
        return (self.T - (j - 1)) - w  # index k in the flipped table is time T - k

    # -- Ho et al.'s own forward step -----------------------------------------------------------
    def q_step(self, x_prev: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """One forward step q(x_t | x_{t-1}), eq. 2: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps."""
        beta = _shaped(self.beta[time_vector(t, x_prev.shape[0]).long().cpu()], x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * eps
