"""The Gaussian path of DDPM: x_t = alpha_t x_0 + sigma_t eps, with the paper's names and indexing.

Time runs forward from data to noise: t = 0 is the clean image, t = T is (almost) pure noise, and
sampling goes from t = T down to t = 0. Every table has length T + 1 and is indexed by the paper's t,
so ``alpha_bar[t]`` is Ho et al.'s alpha-bar_t and ``alpha_bar[0] = 1``. Tables are float64; values
are gathered per example and cast to the dtype of x.

In the notation shared by every model here (design: one Gaussian path), the DDPM path has
alpha_t = sqrt(alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t), and log-SNR
lambda_t = log(alpha_t^2 / sigma_t^2).
"""

from __future__ import annotations

import torch

from difusion.diffusion.schedules import make_betas


def is_fractional(t) -> bool:
    """True for a time (or tensor of times) that falls between the table's integer steps."""
    if torch.is_tensor(t):
        return t.is_floating_point() and bool((t != t.round()).any())
    return float(t) != round(float(t))


def _gather(table: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """table[t] shaped to broadcast against ``like`` (one value per example)."""
    if not torch.is_tensor(t):
        t = torch.full((like.shape[0],), int(t), dtype=torch.long)
    v = table[t.long().cpu()].to(device=like.device, dtype=like.dtype)
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class DDPMPath:
    """The discrete variance-preserving forward process of Ho et al. 2020 and its closed forms.

    Built from betas (beta_1..beta_T). Holds, indexed by t = 0..T:
    beta (beta_0 := 0), alpha = 1 - beta, alpha_bar = prod_{s<=t} alpha_s (alpha_bar_0 = 1),
    and the posterior coefficients of eqs. 6-7 (defined for t >= 1).
    """

    def __init__(self, betas: torch.Tensor):
        betas = betas.to(torch.float64)
        self.T = int(betas.shape[0])
        zero = torch.zeros(1, dtype=torch.float64)
        self.beta = torch.cat([zero, betas])  # beta[t], t = 0..T
        self.alpha = 1.0 - self.beta  # eq. 4 notation: alpha_t = 1 - beta_t
        self.alpha_bar = torch.cumprod(self.alpha, dim=0)  # alpha_bar_t = prod_{s=1}^t alpha_s
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        # Posterior q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I), eqs. 6-7 (t >= 1).
        with torch.no_grad():
            denom = (1.0 - self.alpha_bar).clamp(min=1e-20)
            self.beta_tilde = self.beta * (1.0 - self.alpha_bar_prev) / denom
            self.beta_tilde[0] = 0.0
            self.posterior_coef_x0 = self.alpha_bar_prev.sqrt() * self.beta / denom
            self.posterior_coef_xt = self.alpha.sqrt() * (1.0 - self.alpha_bar_prev) / denom

    @classmethod
    def from_schedule(cls, name: str = "linear", T: int = 1000) -> DDPMPath:
        """The path for a named beta schedule (``linear``, ``cosine`` or ``sigmoid``) with T steps."""
        return cls(make_betas(name, T))

    # -- the shared (alpha_t, sigma_t) view -------------------------------------------------------
    def alpha_t(self, t, like: torch.Tensor) -> torch.Tensor:
        """alpha_t = sqrt(alpha_bar_t): the scale of x_0 in x_t. Fractional t: see ``log_snr_at``."""
        if is_fractional(t):
            return self._from_log_snr(t, like, sign=1.0)
        return _gather(self.alpha_bar.sqrt(), t, like)

    def sigma_t(self, t, like: torch.Tensor) -> torch.Tensor:
        """sigma_t = sqrt(1 - alpha_bar_t): the scale of the noise in x_t."""
        if is_fractional(t):
            return self._from_log_snr(t, like, sign=-1.0)
        return _gather((1.0 - self.alpha_bar).sqrt(), t, like)

    def log_snr(self) -> torch.Tensor:
        """lambda_t = log(alpha_bar_t / (1 - alpha_bar_t)) for t = 0..T (+inf at t = 0)."""
        return self.alpha_bar.log() - (1.0 - self.alpha_bar).log()

    # -- between the integer steps ----------------------------------------------------------------
    # Samplers on a continuous grid (Karras sigmas) visit times between the table's integers. There
    # the path is defined by interpolating the log-SNR linearly in t (on [1, T]), and
    # alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda) keep it variance preserving. At integer t
    # this is the table exactly; ``t_at_log_snr`` inverts it, so a sampler that picks a noise level
    # gets exactly that level back from alpha_t and sigma_t.
    def log_snr_at(self, t) -> torch.Tensor:
        """lambda at (fractional) times t in [1, T], linear between integer steps."""
        lam = self.log_snr()
        t = torch.as_tensor(t, dtype=torch.float64).clamp(1.0, float(self.T))
        lo = t.floor().long().clamp(max=self.T - 1)
        w = t - lo
        return lam[lo] * (1.0 - w) + lam[(lo + 1).clamp(max=self.T)] * w

    def t_at_log_snr(self, lam) -> torch.Tensor:
        """The (fractional) time in [1, T] whose log-SNR is ``lam``: the inverse of ``log_snr_at``."""
        table = self.log_snr()[1:].flip(0)  # increasing: lambda_T, ..., lambda_1
        lam = torch.as_tensor(lam, dtype=torch.float64).clamp(table[0], table[-1])
        j = torch.searchsorted(table, lam).clamp(1, self.T - 1)  # table[j-1] <= lam <= table[j]
        w = (lam - table[j - 1]) / (table[j] - table[j - 1])
        return (self.T - (j - 1)) - w  # index k in the flipped table is time T - k

    def _from_log_snr(self, t, like: torch.Tensor, sign: float) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.full((like.shape[0],), float(t), dtype=torch.float64)
        v = torch.sigmoid(sign * self.log_snr_at(t.cpu())).sqrt()
        return v.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def alpha_sigma(self, t) -> tuple[float, float]:
        """(alpha_t, sigma_t) at one time t (integer or fractional) as Python floats."""
        if t == 0:
            return 1.0, 0.0
        one = torch.zeros(1, dtype=torch.float64)
        return self.alpha_t(t, one).item(), self.sigma_t(t, one).item()

    # -- forward process --------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0), eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        return self.alpha_t(t, x0) * x0 + self.sigma_t(t, x0) * eps

    def q_step(self, x_prev: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """One forward step q(x_t | x_{t-1}), eq. 2: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps."""
        beta = _gather(self.beta, t, x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * eps

    # -- posterior and reverse process ------------------------------------------------------------
    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t, s=None):
        """Mean and variance of q(x_s | x_t, x_0) for s < t (eqs. 6-7 when s = t - 1, the default).

        For a skip from t to s (respaced sampling, Nichol & Dhariwal Sec. 4) the same formulas hold
        with beta replaced by beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s:
            mu_tilde   = sqrt(alpha_bar_s) beta_{t|s} / (1 - alpha_bar_t) x_0
                       + sqrt(alpha_bar_t / alpha_bar_s) (1 - alpha_bar_s) / (1 - alpha_bar_t) x_t
            beta_tilde = (1 - alpha_bar_s) / (1 - alpha_bar_t) beta_{t|s}
        Returns (mean, beta_tilde, beta_{t|s}); the last is the "large" variance choice sigma^2 = beta.
        """
        if s is None:
            s = t - 1
        ab_t = _gather(self.alpha_bar, t, x_t)
        ab_s = _gather(self.alpha_bar, s, x_t)
        beta_ts = 1.0 - ab_t / ab_s
        one_minus_ab_t = (1.0 - ab_t).clamp(min=1e-20)
        mean = (ab_s.sqrt() * beta_ts / one_minus_ab_t) * x0 + (
            (ab_t / ab_s).sqrt() * (1.0 - ab_s) / one_minus_ab_t
        ) * x_t
        beta_tilde = (1.0 - ab_s) / one_minus_ab_t * beta_ts
        return mean, beta_tilde, beta_ts
