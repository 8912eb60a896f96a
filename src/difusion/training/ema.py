"""Exponential moving average of the weights, the model that is sampled (Ho et al. 2020: decay 0.9999)."""

from __future__ import annotations

import copy

import torch


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta, with the warm-up d_k = min(decay, (1 + k) / (10 + k)).

    The warm-up lets the average forget the random initialisation quickly in short runs.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.current_decay(step)
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
