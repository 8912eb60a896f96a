"""The optimal denoiser for Gaussian-mixture data, in closed form.

If x_0 ~ sum_k pi_k N(mu_k, C_k) and x_t = a x_0 + s eps, then x_t ~ sum_k pi_k N(a mu_k, a^2 C_k + s^2 I)
and, by Bayes' rule per component,

    E[x_0 | x_t] = sum_k r_k(x_t) [ mu_k + a C_k (a^2 C_k + s^2 I)^{-1} (x_t - a mu_k) ],
    r_k(x_t) = pi_k N(x_t; a mu_k, a^2 C_k + s^2 I) / sum_j (same).

A sampler driven by this oracle must reproduce the mixture with no training at all, which tests the
sampler alone. Used by the tests and the docs.
"""

from __future__ import annotations

import torch


class GaussianMixture:
    """A mixture of Gaussians in R^D with weights ``pi`` (K,), means ``mu`` (K, D), covariances ``cov`` (K, D, D)."""

    def __init__(self, pi: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor):
        self.pi = (pi / pi.sum()).double()
        self.mu = mu.double()
        self.cov = cov.double()

    @property
    def dim(self) -> int:
        return self.mu.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None):
        """n samples and their component labels."""
        k = torch.multinomial(self.pi, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.cov)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.mu[k] + torch.einsum("nij,nj->ni", chol[k], z)
        return x, k

    def posterior_mean(self, x_t: torch.Tensor, a, s) -> torch.Tensor:
        """E[x_0 | x_t] for x_t = a x_0 + s eps; ``a`` and ``s`` are scalars or (N, 1) tensors."""
        return self.posterior(x_t, a, s)[0]

    def posterior(self, x_t: torch.Tensor, a, s) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x_0 | x_t], E[eps | x_t]) for x_t = a x_0 + s eps on any Gaussian path.

        Per component, x_t - a E_k[x_0 | x_t] = (S_k - a^2 C_k) S_k^{-1} (x_t - a mu_k)
        = s^2 S_k^{-1} (x_t - a mu_k), so E_k[eps | x_t] = s S_k^{-1} (x_t - a mu_k): no division by
        s, finite (zero) at the data end s = 0 of the rectified flow and the VE path, where
        (x_t - a x0) / s would be 0 / 0. ``a`` and ``s`` are scalars or (N, 1) tensors."""
        x = x_t.double()
        d = x.shape[1]
        a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)  # (1,) or (N,)
        s = torch.as_tensor(s, dtype=torch.float64).reshape(-1)
        if a.numel() > 1 and bool((a == a[0]).all() and (s == s[0]).all()):
            a, s = a[:1], s[:1]  # one time for the whole batch: factor K matrices, not N*K
        eye = torch.eye(d, dtype=torch.float64)
        # Marginal covariance per component S_k = a^2 C_k + s^2 I, shape (1 or N, K, D, D).
        S = a[:, None, None, None] ** 2 * self.cov[None] + s[:, None, None, None] ** 2 * eye
        L = torch.linalg.cholesky(S)
        S_inv = torch.cholesky_inverse(L)
        # Laid out (K, D, N): every reduction runs along the long axis N (4x faster than (N, K, D)).
        diff = x.T[None] - self.mu[:, :, None] * a  # x_t - a mu_k
        shared = a.numel() == 1  # one S_k for the whole batch, or one per example
        # sol = S_k^{-1} (x_t - a mu_k)
        sol = S_inv[0] @ diff if shared else torch.einsum("nkij,kjn->kin", S_inv, diff)
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1).T  # (K, 1 or N)
        log_r = self.pi.log()[:, None] - 0.5 * (logdet + (diff * sol).sum(1))
        r = torch.softmax(log_r, dim=0)[:, None]  # responsibilities r_k(x_t), (K, 1, N)
        x0 = (r * (self.mu[:, :, None] + a * (self.cov @ sol))).sum(0).T
        eps = (r * sol).sum(0).T * s[:, None]
        return x0.to(x_t.dtype), eps.to(x_t.dtype)


class MixtureDenoiser:
    """A denoiser (x_t, t, y) -> (x_0 estimate, eps estimate) that uses the exact E[x_0 | x_t] and
    E[eps | x_t]. It reads alpha and sigma from ``path.alpha_t`` / ``path.sigma_t``, so it is exact on
    every path (DDPM at integer or fractional times, flow, OT, VE), the data end included."""

    def __init__(self, mixture: GaussianMixture, path):
        self.mixture, self.path = mixture, path

    def __call__(self, x_t: torch.Tensor, t, y=None):
        a, s = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        return self.mixture.posterior(x_t, a, s)


class LabelledMixtureDenoiser:
    """The exact conditional denoiser of a labelled mixture: label k means "component k", and the
    null label ``K`` (or ``y=None``) the whole mixture. What a perfectly trained class-conditional
    network with a null class (for classifier-free guidance) would compute."""

    def __init__(self, mixture: GaussianMixture, path):
        self.mixture, self.path = mixture, path
        self.null_label = len(mixture.pi)
        self.components = [
            GaussianMixture(torch.ones(1), mixture.mu[k : k + 1], mixture.cov[k : k + 1])
            for k in range(len(mixture.pi))
        ]

    def __call__(self, x_t: torch.Tensor, t, y=None):
        a, s = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        if y is None:
            y = torch.full((x_t.shape[0],), self.null_label, dtype=torch.long)
        x0, eps = torch.empty_like(x_t), torch.empty_like(x_t)
        for label in y.unique().tolist():
            rows = y == label
            mix = self.mixture if label == self.null_label else self.components[label]
            a_r = a[rows] if a.shape[0] == x_t.shape[0] else a
            s_r = s[rows] if s.shape[0] == x_t.shape[0] else s
            x0[rows], eps[rows] = mix.posterior(x_t[rows], a_r, s_r)
        return x0, eps


class EmpiricalDenoiser:
    """The exact minimiser of the empirical denoising risk on a finite training set (Nakkiran et al.
    2024, Sec. 3.7): the data distribution is the training set itself, sum_i delta(x_i) / n, so

        E[x_0 | x_t] = sum_i softmax_i( -||x_t - alpha_t x_i||^2 / (2 sigma_t^2) ) x_i.

    A sampler driven by it can only return training points: the perfect fit memorises."""

    def __init__(self, points: torch.Tensor, path):
        self.points, self.path = points.double().flatten(1), path

    def __call__(self, x_t: torch.Tensor, t, y=None):
        a, s = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        x = x_t.double().flatten(1)
        a, s = a.double().reshape(-1, 1), s.double().reshape(-1, 1)
        d2 = torch.cdist(x / a, self.points).pow(2)  # ||x_t / a - x_i||^2
        w = torch.softmax(-d2 * (a / s).pow(2) / 2, dim=1)  # = -||x_t - a x_i||^2 / (2 s^2)
        x0 = (w @ self.points).reshape(x_t.shape).to(x_t.dtype)
        per_example = (-1, *[1] * (x_t.dim() - 1))
        a, s = a.reshape(per_example).to(x_t.dtype), s.reshape(per_example).to(x_t.dtype)
        return x0, (x_t - a * x0) / s
