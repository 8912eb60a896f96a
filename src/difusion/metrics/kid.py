"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel.

Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs", section 4 (KID). Works on
(N, D) feature matrices.
"""

from __future__ import annotations

import torch

from difusion.errors import DifusionError
from difusion.metrics.fid import as_feature_matrix


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x . y / d + 1)^3 for all row pairs (Bińkowski et al. 2018, KID kernel)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased estimator of MMD^2 (Gretton et al. 2012, eq. 3; Bińkowski et al. 2018):

    1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
    - 2/(mn) sum_{i, j} k(x_i, y_j).

    The diagonal terms k(x_i, x_i) are left out; keeping them gives the biased (V-statistic)
    estimator, which is always >= 0 and overestimates MMD^2 by O(1/m).
    """
    m, n = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kid(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): mean and standard deviation of the unbiased MMD^2 over subsets.

    Each of ``subsets`` rounds draws ``subset_size`` rows of ``a`` and of ``b`` without
    replacement and computes the unbiased MMD^2 with k(x, y) = (x . y / d + 1)^3.
    ``subset_size`` is clipped to min(len(a), len(b)). Deterministic given ``seed``.
    The mean can be slightly negative (the estimator is unbiased, not non-negative). The standard
    deviation is over subsets (0.0 when ``subsets`` is 1); subsets share rows, so it is not the
    standard error of the mean.
    """
    a = as_feature_matrix(a, "first feature set")
    b = as_feature_matrix(b, "second feature set")
    if a.shape[1] != b.shape[1]:
        raise DifusionError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise DifusionError(f"subsets must be at least 1, got {subsets}")
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise DifusionError(f"subset_size must be at least 2, got {subset_size}")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        ia = torch.randperm(a.shape[0], generator=gen)[:size]
        ib = torch.randperm(b.shape[0], generator=gen)[:size]
        values.append(mmd2_unbiased(a[ia], b[ib]))
    v = torch.tensor(values, dtype=torch.float64)
    std = float(v.std()) if subsets > 1 else 0.0
    return float(v.mean()), std
