"""Importance sampling of t for L_vlb (Nichol & Dhariwal 2021, Sec. 3.3, eq. 18).

L_vlb = sum_t L_t = E_{t ~ p}[L_t / p_t] for any p with p_t > 0. The terms differ by orders of
magnitude (the first few dominate), so sampling t uniformly gives a noisy estimate; improved DDPM
samples p_t ~ sqrt(E[L_t^2]), estimated from the last 10 values of each term, and keeps a small
uniform share so no t is starved. Until every t has 10 values it samples uniformly.
"""

from __future__ import annotations

import torch


class LossAwareSampler:
    """Draws t in 1..T with p_t ~ sqrt(E[L_t^2]) mixed with ``uniform_mix`` of the uniform law."""

    def __init__(self, T: int, history: int = 10, uniform_mix: float = 0.001):
        self.T, self.history, self.uniform_mix = T, history, uniform_mix
        self.losses = torch.zeros(T, history, dtype=torch.float64)  # row t - 1
        self.counts = torch.zeros(T, dtype=torch.long)

    def probabilities(self) -> torch.Tensor:
        """p_t for t = 1..T (uniform until every term has a full history)."""
        if (self.counts < self.history).any():
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        p = self.losses.pow(2).mean(dim=1).sqrt()
        p = p / p.sum()
        return (1.0 - self.uniform_mix) * p + self.uniform_mix / self.T

    def sample(self, n: int, generator: torch.Generator | None = None):
        """(t, weight): t ~ p and the weight 1 / (T p_t) that makes the mean of weight * L_t an
        unbiased estimate of the mean over t of L_t (so T times it estimates L_vlb)."""
        p = self.probabilities()
        idx = torch.multinomial(p, n, replacement=True, generator=generator)
        return idx + 1, 1.0 / (self.T * p[idx])

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-example values L_t (the newest replaces the oldest)."""
        for ti, li in zip(t.tolist(), losses.detach().double().cpu().tolist(), strict=True):
            row = ti - 1
            if self.counts[row] == self.history:
                self.losses[row, :-1] = self.losses[row, 1:].clone()
                self.losses[row, -1] = li
            else:
                self.losses[row, self.counts[row]] = li
                self.counts[row] += 1

    def state(self) -> dict[str, torch.Tensor]:
        return {"losses": self.losses.clone(), "counts": self.counts.clone()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "losses" in tensors:
            self.losses.copy_(tensors["losses"])
            self.counts.copy_(tensors["counts"])
