"""Improved precision and recall of a generated set against a real set (k-NN manifolds).

Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved Precision and Recall Metric for
Assessing Generative Models", eqs. 1-3. Works on (N, D) feature matrices.
"""

from __future__ import annotations

import torch

from difusion.errors import DifusionError
from difusion.metrics.fid import as_feature_matrix

# Rows of a distance block are chosen so one block holds about this many float64 entries (128 MiB).
_BLOCK_ENTRIES = 1 << 24


def _rows_per_block(columns: int) -> int:
    return max(1, _BLOCK_ENTRIES // max(1, columns))


def knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (itself excluded), computed in blocks."""
    step = _rows_per_block(points.shape[0])
    radii = []
    for start in range(0, points.shape[0], step):
        dist = torch.cdist(points[start : start + step], points)
        # the smallest distance in each row is the point itself (0); the k-th neighbour is next k
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def in_manifold(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Boolean (Q,): is each query within radii[i] of some points[i] (Kynkäänniemi et al., eq. 1)."""
    step = _rows_per_block(points.shape[0])
    inside = []
    for start in range(0, queries.shape[0], step):
        dist = torch.cdist(queries[start : start + step], points)
        inside.append((dist <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eqs. 1-3).

    The real manifold is the union of balls around each real feature with radius equal to its
    distance to its k-th nearest real neighbour (itself excluded); likewise for the fake manifold.
    precision = share of fake samples inside the real manifold (are samples realistic?);
    recall = share of real samples inside the fake manifold (is the real variety covered?).
    Pairwise distances are computed in blocks of rows, so 10k x 10k sets fit in memory.
    Needs more than k samples in each set.
    """
    real = as_feature_matrix(real, "real features")
    fake = as_feature_matrix(fake, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise DifusionError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if k < 1:
        raise DifusionError(f"k must be at least 1, got {k}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise DifusionError(
            f"need more than k={k} samples per set, got {real.shape[0]} real and {fake.shape[0]} fake"
        )
    real_radii = knn_radii(real, k)
    fake_radii = knn_radii(fake, k)
    precision = in_manifold(fake, real, real_radii).double().mean()
    recall = in_manifold(real, fake, fake_radii).double().mean()
    return float(precision), float(recall)
