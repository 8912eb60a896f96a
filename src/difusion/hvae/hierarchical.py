"""A VAE with two stochastic layers (Tomczak, "Deep Generative Modeling", ch. 4.5), generated
top-down:

    p(x, z1, z2) = p(x | z1) p(z1 | z2) p(z2)

and inferred one of two ways (``hvae.inference``):

- bottom-up, q(z1, z2 | x) = q(z1 | x) q(z2 | z1): the posterior follows the data upwards and
  never sees what the generative path expects of z1;
- top-down (the ladder VAE, Sonderby et al. 2016, "Ladder Variational Autoencoders", Sec. 2.2):
  a deterministic bottom-up pass gives an estimate N(mu_d, s_d^2) of z1 and, from its mean, q(z2 | x);
  then z1 is inferred along the generative path, q(z1 | z2, x) being the precision-weighted
  product of that estimate with the generative p(z1 | z2) (their Sec. 2.2). The inference and
  the generative model share p(z1 | z2).

Either way the ELBO is the expectation of one log-weight

    log w = log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1, z2 | x),   (z1, z2) ~ q

split here into the reconstruction -log p(x | z1), the KL of z1, log q(z1 | .) - log p(z1 | z2),
and the KL of z2, log q(z2 | .) - log p(z2): single-draw estimates of the three terms of the
book's two-layer ELBO, which sum to -log w.
"""

from __future__ import annotations

import torch
from torch import nn

from difusion.hvae.distributions import draw, log_normal, precision_weighted, split

INFERENCES = ("top-down", "bottom-up")


class HierarchicalVAE(nn.Module):
    """p(x | z1) p(z1 | z2) p(z2) with q bottom-up or top-down.

    ``enc1(x)``: the bottom-up Gaussian of z1 (q(z1 | x) bottom-up; the estimate N(mu_d, s_d^2)
    top-down); ``enc2``: q(z2 | z1) bottom-up, q(z2 | x) from mu_d top-down; ``dec1(z2)``:
    p(z1 | z2); ``likelihood``: p(x | z1) with ``features(x)`` (what the encoders read),
    ``log_prob(x, z1)``, ``sample(z1, generator)``, ``mean(z1)``; ``prior``: p(z2) (priors.py).
    Every Gaussian network returns the mean and log-variance side by side."""

    def __init__(self, enc1, enc2, dec1, likelihood, prior, inference: str = "top-down"):
        super().__init__()
        self.enc1, self.enc2, self.dec1 = enc1, enc2, dec1
        self.likelihood, self.prior, self.inference = likelihood, prior, inference

    def encode_top(self, x_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z2 | x), reading the bottom-up mean of z1 (bottom-up inference: the mean of q(z1 | x)
        in place of a draw): the encoder the VampPrior evaluates at its pseudo-inputs."""
        mu_d, _ = split(self.enc1(x_features))
        return split(self.enc2(mu_d))

    def infer(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """One draw (z1, z2) ~ q(z1, z2 | x) with log q of each and the generative p(z1 | z2)."""
        mu_d, logvar_d = split(self.enc1(self.likelihood.features(x)))
        if self.inference == "bottom-up":
            z1 = draw(mu_d, logvar_d, generator)
            log_q1 = log_normal(z1, mu_d, logvar_d)
            mu_q2, logvar_q2 = split(self.enc2(z1))
            z2 = draw(mu_q2, logvar_q2, generator)
            mu_p1, logvar_p1 = split(self.dec1(z2))
        else:
            mu_q2, logvar_q2 = split(self.enc2(mu_d))
            z2 = draw(mu_q2, logvar_q2, generator)
            mu_p1, logvar_p1 = split(self.dec1(z2))
            mu_q1, logvar_q1 = precision_weighted(mu_d, logvar_d, mu_p1, logvar_p1)
            z1 = draw(mu_q1, logvar_q1, generator)
            log_q1 = log_normal(z1, mu_q1, logvar_q1)
        log_q2 = log_normal(z2, mu_q2, logvar_q2)
        return {"z1": z1, "z2": z2, "log_q1": log_q1, "log_q2": log_q2,
                "log_p1": log_normal(z1, mu_p1, logvar_p1)}  # fmt: skip

    def elbo_terms(self, x: torch.Tensor, generator: torch.Generator | None) -> dict:
        """The three terms of -ELBO for one draw of q, each (N,) in nats (Tomczak ch. 4.5):
        reconstruction -log p(x | z1), kl_z1 = log q(z1 | .) - log p(z1 | z2), kl_z2 =
        log q(z2 | .) - log p(z2)."""
        s = self.infer(x, generator)
        return {
            "reconstruction": -self.likelihood.log_prob(x, s["z1"]),
            "kl_z1": s["log_q1"] - s["log_p1"],
            "kl_z2": s["log_q2"] - self.prior.log_prob(s["z2"], self.encode_top),
        }

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """:meth:`elbo_terms`: what the training loop (and DDP) calls."""
        return self.elbo_terms(x, generator)

    def log_weight(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x) for one draw of q: E[log w] is the ELBO, and
        log-mean-exp over k draws the IWAE bound (Burda et al. 2016, eq. 8)."""
        return -sum(self.elbo_terms(x, generator).values())

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """n ancestral draws z2 ~ p(z2), z1 ~ p(z1 | z2), x ~ p(x | z1), sample i from seed + i;
        returns the drawn x and E[x | z1] (for images: the levels, and the expected level)."""
        xs, means = [], []
        for i in range(n):
            g = torch.Generator().manual_seed(seed + i)
            device = next(self.parameters()).device
            z2 = self.prior.sample(1, self.encode_top, g).to(device)
            z1 = draw(*split(self.dec1(z2)), g)
            xs.append(self.likelihood.sample(z1, g))
            means.append(self.likelihood.mean(z1))
        return torch.cat(xs), torch.cat(means)
