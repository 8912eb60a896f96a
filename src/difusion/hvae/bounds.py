"""Bounds on log p(x) from a model's log-weights, and nats to bits per dimension.

For any q, log p(x) = log E_q[w] with w = p(x, z) / q(z | x); Jensen's inequality gives the ELBO,
E_q[log w] <= log p(x), with the gap KL(q(z | x) || p(z | x)). The importance-weighted bound of
Burda et al. 2016 (eq. 8) averages k weights inside the log,

    L_k = E[log (1/k) sum_i w_i] <= log p(x),   L_1 = ELBO <= L_k <= L_{k+1},

and L_k -> log p(x) as k grows (their Theorem 1). Any model with ``log_weight(x, generator)``
(one draw of q, (N,) nats) is scored here.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k independent log-weights per example, (k, N), one batch of N per draw."""
    return torch.stack([model.log_weight(x, generator) for _ in range(k)])


def elbo_and_iwae(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From log-weights (k, N): the ELBO estimate mean_i log w_i and the IWAE bound
    log (1/k) sum_i w_i (Burda et al. eq. 8), each (N,) in nats."""
    k = log_w.shape[0]
    return log_w.mean(0), torch.logsumexp(log_w, 0) - math.log(k)


def bits_per_dim(log_p: torch.Tensor, dim: int) -> torch.Tensor:
    """A bound on log P(x) in nats -> the bound on -log2 P(x) / D."""
    return -log_p / (dim * math.log(2))
