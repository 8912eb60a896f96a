"""The diffusion-based deep generative model of Tomczak's ch. 4.5.3 ("DDGM"): a hierarchical VAE
whose latents z1..zT have the data's own size and whose inference model is not learned but fixed,
a short Gaussian chain that adds noise (Sohl-Dickstein et al. 2015; Ho et al. 2020, eq. 2):

    q(z_t | z_{t-1}) = N(z_t; sqrt(1 - beta) z_{t-1}, beta I),   z0 = x on [-1, 1],  t = 1..T

with one constant, large beta and few steps. The generative model runs the chain backwards with
learned Gaussians, p(zT) = N(0, I), p(z_{t-1} | z_t) = N(mu_t(z_t), diag s_t^2(z_t)) (one small MLP
each), and ends in the categorical p(x | z1) over the grey levels. Because every q is Gaussian and
linear, the marginal q(z_t | x) = N(sqrt(abar_t) x, (1 - abar_t) I), abar_t = (1 - beta)^t (Ho
eq. 4), and the posterior q(z_{t-1} | z_t, x) is Gaussian in closed form (Ho eqs. 6-7), so the ELBO
is written with analytic KLs (Ho eq. 5; Sohl-Dickstein et al. 2015, Sec. 2.4):

    -ELBO = E_q(z1|x)[-log p(x | z1)]                                          reconstruction
            + sum_{t=2..T} E_q(z_t|x) KL(q(z_{t-1} | z_t, x) || p(z_{t-1} | z_t))   kl_t
            + KL(q(zT | x) || N(0, I))                                         prior

With T -> 1000 and beta_t -> 1e-4..0.02 this is DDPM's bound L = L_0 + sum L_{t-1} + L_T, term by
term; docs/latent-variable-models.md walks from one to the other.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difusion.hvae.distributions import draw, kl_normal, log_normal, split


class DiffusionVAE(nn.Module):
    """The fixed forward chain of T steps of constant ``beta``, the learned reverse Gaussians
    ``reverse[t - 2]`` = p(z_{t-1} | z_t) for t = 2..T, and ``likelihood`` = p(x | z1)."""

    def __init__(self, reverse: nn.ModuleList, likelihood, T: int, beta: float, dim: int):
        super().__init__()
        self.reverse, self.likelihood = reverse, likelihood
        self.T, self.beta, self.dim = T, beta, dim
        self.alpha_bar = [(1.0 - beta) ** t for t in range(T + 1)]  # abar_0 = 1

    def marginal(self, x0: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
        """q(z_t | x) = N(sqrt(abar_t) x, (1 - abar_t) I) (Ho et al. eq. 4): mean and variance."""
        return math.sqrt(self.alpha_bar[t]) * x0, 1.0 - self.alpha_bar[t]

    def q_step(self, z_prev: torch.Tensor, generator) -> torch.Tensor:
        """One forward step, z_t ~ N(sqrt(1 - beta) z_{t-1}, beta I)."""
        return draw(math.sqrt(1 - self.beta) * z_prev, torch.full_like(z_prev, math.log(self.beta)),
                    generator)  # fmt: skip

    def posterior(self, x0: torch.Tensor, z_t: torch.Tensor, t: int):
        """q(z_{t-1} | z_t, x) = N(mu~, beta~ I) for t >= 2 (Ho et al. eqs. 6-7):
        mu~ = sqrt(abar_{t-1}) beta / (1 - abar_t) x + sqrt(1 - beta) (1 - abar_{t-1}) / (1 - abar_t) z_t,
        beta~ = (1 - abar_{t-1}) / (1 - abar_t) beta. Returns (mean, log-variance)."""
        ab, ab_prev, b = self.alpha_bar[t], self.alpha_bar[t - 1], self.beta
        mean = (math.sqrt(ab_prev) * b * x0 + math.sqrt(1 - b) * (1 - ab_prev) * z_t) / (1 - ab)
        return mean, torch.full_like(z_t, math.log((1 - ab_prev) / (1 - ab) * b))

    def p_step(self, z_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z_{t-1} | z_t): the mean and log-variance from the step's own MLP (t = 2..T)."""
        return split(self.reverse[t - 2](z_t))

    def elbo_terms(self, k: torch.Tensor, generator: torch.Generator | None) -> dict:
        """The T + 1 terms of -ELBO above, each (N,) in nats: ``reconstruction``, ``kl_2`` ..
        ``kl_T`` and ``prior``. Every expectation over q(z_t | x) takes its own draw of z_t."""
        x0 = self.likelihood.features(k)
        mean, var = self.marginal(x0, 1)
        z1 = draw(mean, torch.full_like(x0, math.log(var)), generator)
        terms = {"reconstruction": -self.likelihood.log_prob(k, z1)}
        for t in range(2, self.T + 1):
            mean, var = self.marginal(x0, t)
            z_t = draw(mean, torch.full_like(x0, math.log(var)), generator)
            terms[f"kl_{t}"] = kl_normal(*self.posterior(x0, z_t, t), *self.p_step(z_t, t))
        mean, var = self.marginal(x0, self.T)
        zeros = torch.zeros_like(x0)
        terms["prior"] = kl_normal(mean, torch.full_like(x0, math.log(var)), zeros, zeros)
        return terms

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """:meth:`elbo_terms`: what the training loop (and DDP) calls."""
        return self.elbo_terms(x, generator)

    def log_weight(self, k: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """log p(x, z_{1:T}) - log q(z_{1:T} | x) along one forward chain z1 -> ... -> zT: its mean
        is the same ELBO (without the analytic KLs), its log-mean-exp over draws an IWAE bound."""
        z = self.likelihood.features(k)
        log_q = torch.zeros(len(k), device=k.device)
        chain = []
        for _ in range(self.T):
            z_next = self.q_step(z, generator)
            log_q = log_q + log_normal(z_next, math.sqrt(1 - self.beta) * z,
                                       torch.full_like(z, math.log(self.beta)))  # fmt: skip
            chain.append(z_next)
            z = z_next
        log_p = self.likelihood.log_prob(k, chain[0]) + log_normal(
            chain[-1], torch.zeros_like(z), torch.zeros_like(z)
        )
        for t in range(2, self.T + 1):  # chain[t - 1] is z_t
            log_p = log_p + log_normal(chain[t - 2], *self.p_step(chain[t - 1], t))
        return log_p - log_q

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """zT ~ N(0, I), z_{t-1} ~ p(z_{t-1} | z_t) down to z1, x ~ p(x | z1); sample i from
        seed + i. Returns the drawn levels and the expected level E[x | z1]."""
        device = next(self.parameters()).device
        xs, means = [], []
        for i in range(n):
            g = torch.Generator().manual_seed(seed + i)
            z = torch.randn(1, self.dim, generator=g).to(device)
            for t in range(self.T, 1, -1):
                z = draw(*self.p_step(z, t), g)
            xs.append(self.likelihood.sample(z, g))
            means.append(self.likelihood.mean(z))
        return torch.cat(xs), torch.cat(means)
