"""The Step-by-Step tutorial's identities on its own process (Nakkiran, Bradley, Zhou, Advani 2024,
"Step-by-Step Diffusion: An Elementary Tutorial", arXiv 2406.08929).

The process (Sec. 1.1 and 1.3): x_{t + Delta t} = x_t + N(0, sigma_q^2 Delta t), t in [0, 1],
Delta t = 1 / T, so x_t ~ N(x_0, sigma_q^2 t): the lab's :class:`~difusion.diffusion.ve.VEPath`
with ``T`` steps, whose time is the step index k (tutorial time t = k / T, sigma_k = sigma_q
sqrt(k / T)). Everything here is exact, for Gaussian-mixture data, so it can test and illustrate:

- Claim 2 (Sec. 2.3): E[x_{t - Delta t} | x_t] = (Delta t / t) E[x_0 | x_t] + (1 - Delta t / t) x_t,
  :func:`step_mean_from_x0` and its inverse :func:`x0_from_step_mean`;
- the exact E[x_{t - Delta t} | x_t] of a mixture computed *without* Claim 2, from the marginal at
  t - Delta t and one step of noise (:func:`exact_step_mean`), and the exact reverse conditional
  p(x_{t - Delta t} | x_t) of 1-D mixture data (:func:`reverse_conditional_1d`);
- Fact 1 (stated in Sec. 1, argued in Sec. 2.1): that conditional is close to N(mean,
  sigma_q^2 Delta t); :func:`fact1_kl` measures how close, as a KL divergence by quadrature;
- the DDIM step's lambda = sigma_t / (sigma_{t - Delta t} + sigma_t) (Sec. 3, Pseudocode 3) and the
  probability-flow ODE's Euler step it matches to first order in Delta t (Sec. 3.5);
- the ELBO as a weighted regression (Sec. 5): :func:`elbo_weight` for every parameterization.

The samplers that use them (Pseudocodes 2 and 3) are in :mod:`difusion.sampling.step_by_step`.
"""

from __future__ import annotations

import math

import torch

from difusion.diffusion.oracle import GaussianMixture
from difusion.diffusion.ve import VEPath
from difusion.errors import ConfigError


def _check(path) -> VEPath:
    if not (isinstance(path, VEPath) and path.discrete):
        raise ConfigError(
            "the Step-by-Step identities need the discrete VE path: VEPath(sigma_q, T)"
        )
    return path


def step_variance(path: VEPath) -> float:
    """sigma_q^2 Delta t: the variance of one forward step, and Fact 1's reverse variance."""
    return _check(path).sigma_max ** 2 / path.T


def step_mean_from_x0(x0: torch.Tensor, x_t: torch.Tensor, k: int) -> torch.Tensor:
    """Claim 2: E[x_{t-Delta t} | x_t] = (Delta t / t) E[x_0 | x_t] + (1 - Delta t / t) x_t, with
    Delta t / t = 1 / k at step k."""
    return x0 / k + (1.0 - 1.0 / k) * x_t


def x0_from_step_mean(mean: torch.Tensor, x_t: torch.Tensor, k: int) -> torch.Tensor:
    """Claim 2 inverted: E[x_0 | x_t] = x_t + (t / Delta t) (E[x_{t-Delta t} | x_t] - x_t)."""
    return x_t + k * (mean - x_t)


def mixture_at(mixture: GaussianMixture, path: VEPath, k: int) -> GaussianMixture:
    """The marginal p_t of mixture data at step k: each covariance grows by sigma_k^2 I."""
    var = path.sigma(k).item() ** 2
    eye = torch.eye(mixture.dim, dtype=torch.float64)
    return GaussianMixture(mixture.pi, mixture.mu, mixture.cov + var * eye)


def exact_step_mean(mixture: GaussianMixture, path: VEPath, x_t: torch.Tensor, k: int):
    """E[x_{k-1} | x_k] computed from the definition, not from Claim 2: x_{k-1} has the mixture
    marginal p_{k-1} and x_k = x_{k-1} + N(0, sigma_q^2 Delta t), so this is the posterior mean of
    p_{k-1} seen through one step of noise."""
    prev = mixture_at(mixture, _check(path), k - 1)
    return prev.posterior_mean(x_t, 1.0, math.sqrt(step_variance(path)))


def reverse_conditional_1d(mixture: GaussianMixture, path: VEPath, x_t: float, k: int):
    """p(x_{k-1} | x_k = x_t) for 1-D mixture data, exactly: a mixture with (weights, means, vars).

    Component j of p_{k-1} is N(m_j, V_j), V_j = v_j + sigma_{k-1}^2; one step of noise b =
    sigma_q^2 Delta t gives weight w_j ~ pi_j N(x_t; m_j, V_j + b), and, by completing the square,
    mean (b m_j + V_j x_t) / (V_j + b) and variance V_j b / (V_j + b)."""
    if mixture.dim != 1:
        raise ConfigError("reverse_conditional_1d takes 1-D mixture data")
    b = step_variance(path)
    m = mixture.mu[:, 0]
    V = mixture.cov[:, 0, 0] + path.sigma(k - 1).item() ** 2
    log_w = mixture.pi.log() - 0.5 * ((x_t - m) ** 2 / (V + b) + torch.log(2 * math.pi * (V + b)))
    w = torch.softmax(log_w, 0)
    return w, (b * m + V * x_t) / (V + b), V * b / (V + b)


def fact1_kl(mixture: GaussianMixture, path: VEPath, x_t: float, k: int, points: int = 20001):
    """KL( p(x_{k-1} | x_k = x_t) || N(its mean, sigma_q^2 Delta t) ) in nats, by quadrature on a
    grid of ``points`` over +-12 standard deviations: how far Fact 1's Gaussian is from the truth."""
    w, mean, var = reverse_conditional_1d(mixture, path, x_t, k)
    b = step_variance(path)
    centre = (w * mean).sum()
    half = 12 * math.sqrt(max(b, var.max().item()))
    x = torch.linspace(centre.item() - half, centre.item() + half, points, dtype=torch.float64)
    log_comp = -0.5 * ((x[:, None] - mean) ** 2 / var + torch.log(2 * math.pi * var))
    log_p = torch.logsumexp(log_comp + w.log(), dim=1)
    log_q = -0.5 * ((x - centre) ** 2 / b + math.log(2 * math.pi * b))
    integrand = log_p.exp() * (log_p - log_q)
    return torch.trapezoid(integrand, x).item()


def ddim_lambda(path: VEPath, k: int) -> float:
    """Pseudocode 3's lambda = sigma_t / (sigma_{t - Delta t} + sigma_t) at step k (1/2 as
    Delta t -> 0)."""
    s_t, s_prev = path.sigma(k).item(), path.sigma(k - 1).item()
    return s_t / (s_prev + s_t)


def pf_ode_euler_step(path: VEPath, x0: torch.Tensor, x_t: torch.Tensor, k: int) -> torch.Tensor:
    """One Euler step of the VE probability-flow ODE from t to t - Delta t (Sec. 3.5): with
    dx/dt = -(sigma_q^2 / 2) grad log p_t(x) = (x - E[x_0 | x]) / (2 t),
    x_{t - Delta t} = x_t + (Delta t / (2 t)) (E[x_0 | x_t] - x_t)."""
    _check(path)
    return x_t + (x0 - x_t) / (2.0 * k)


def elbo_weight(path: VEPath, k: int, prediction: str) -> float:
    """The weight w of the ELBO's step term as a regression (Sec. 5): with the reverse step
    N(mu_hat, sigma_q^2 Delta t), KL(q(x_{k-1} | x_k, x_0) || p(x_{k-1} | x_k)) equals
    w || prediction_hat - prediction ||^2 plus a constant, per dimension:

    - x_prev (or mu):  1 / (2 sigma_q^2 Delta t)
    - x0:   (1 / k)^2 / (2 sigma_q^2 Delta t)      (Claim 2: mu moves by dx_0 / k)
    - eps:  1 / (2 k) = Delta t / (2 t)             (x_0 = x_t - sigma_k eps)
    - v:    1 / (2 k (1 + sigma_k^2)^2)             (x_0 = (x_t - sigma_k v) / (1 + sigma_k^2))

    Summed over the steps, eps-prediction's weight is the integral of dt / (2 t): uniform in
    log t, so uniform in log-SNR; Ho et al.'s L_simple drops it (weight 1 everywhere)."""
    b = step_variance(path)
    s2 = path.sigma(k).item() ** 2
    x0_scale = {"x_prev": 1.0 * k, "mu": 1.0 * k, "x0": 1.0, "eps": math.sqrt(s2)}
    x0_scale["v"] = math.sqrt(s2) / (1 + s2)
    if prediction not in x0_scale:
        raise ConfigError(f"no ELBO weight for prediction {prediction!r}")
    # mu moves by (1 / k) (x0 error) and the x0 error is x0_scale times the prediction's error
    return (x0_scale[prediction] / k) ** 2 / (2 * b)
