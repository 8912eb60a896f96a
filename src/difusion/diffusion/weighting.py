"""Loss weightings over the log-SNR lambda_t = log(alpha_t^2 / sigma_t^2), for every parameterization.

A weighting is a function w(SNR) on the x_0 error ||x_0 - x_0_hat||^2. The errors of the three
parameterizations are one error seen three ways (for a variance-preserving path):

    ||x_0 - x_0_hat||^2 = ||eps - eps_hat||^2 / SNR = ||v - v_hat||^2 / (1 + SNR)

so a network trained on eps (or v) carries the factor 1/SNR (or 1/(1 + SNR)) on its own MSE.
- uniform: weight 1 on the prediction's own MSE: L_simple (Ho et al. eq. 14), whatever it predicts.
- min-snr (Hang et al. 2023, eq. 7): w = min(SNR, gamma): on eps min(SNR, gamma) / SNR, on x_0
  min(SNR, gamma), on v min(SNR, gamma) / (SNR + 1).
- trunc-snr (Salimans & Ho 2022, "truncated SNR"): w = max(SNR, 1): on eps max(1, 1/SNR), on x_0
  max(SNR, 1), on v max(SNR, 1) / (SNR + 1).
"""

from __future__ import annotations

import torch

WEIGHTINGS = ("uniform", "min-snr", "trunc-snr")


def loss_weight(weighting: str, prediction: str, snr: torch.Tensor, gamma: float = 5.0):
    """The weight on the MSE of ``prediction`` (eps, x0 or v) at signal-to-noise ratio ``snr``."""
    if weighting == "uniform":
        return torch.ones_like(snr)
    if weighting == "min-snr":
        clipped = snr.clamp(max=gamma)  # min(SNR, gamma), the x_0-space weight
        if prediction == "eps":
            return (gamma / snr).clamp(max=1.0)  # = min(SNR, gamma) / SNR, finite at SNR = 0
        if prediction == "x0":
            return clipped
        return clipped / (snr + 1.0)
    if weighting == "trunc-snr":
        if prediction == "eps":
            return (1.0 / snr).clamp(min=1.0)  # = max(SNR, 1) / SNR
        if prediction == "x0":
            return snr.clamp(min=1.0)
        return snr.clamp(min=1.0) / (snr + 1.0)
    raise ValueError(f"unknown weighting {weighting!r}; choose one of: {', '.join(WEIGHTINGS)}")
