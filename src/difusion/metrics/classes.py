"""Class-conditional checks: does a sample show the class that was asked for, and how many classes appear.

A classifier labels the generated images; these functions compare its labels with the requested
ones (accuracy) and summarize the histogram of predicted classes (coverage and diversity).
"""

from __future__ import annotations

import math

import torch

from difusion.errors import DifusionError


def _as_labels(x: torch.Tensor, name: str) -> torch.Tensor:
    """Integer labels (N,) from labels (N,) or logits/probabilities (N, C) (argmax over C)."""
    if not isinstance(x, torch.Tensor):
        raise DifusionError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    x = x.detach().cpu()
    if x.dim() == 2:
        return x.argmax(dim=1)
    if x.dim() != 1:
        raise DifusionError(f"{name} must have shape (N,) or (N, C), got {tuple(x.shape)}")
    if x.is_floating_point() and not torch.equal(x, x.round()):
        raise DifusionError(f"{name} holds non-integer values; pass labels or (N, C) logits")
    return x.long()


def class_accuracy(
    predicted_logits_or_labels: torch.Tensor, requested_labels: torch.Tensor
) -> float:
    """Share of samples whose predicted class equals the requested class.

    ``predicted_logits_or_labels`` is either labels (N,) or classifier logits (N, C), reduced
    with argmax. ``requested_labels`` is (N,).
    """
    want = _as_labels(requested_labels, "requested labels")
    if requested_labels.dim() != 1:
        raise DifusionError(
            f"requested labels must have shape (N,), got {tuple(requested_labels.shape)}"
        )
    pred = _as_labels(predicted_logits_or_labels, "predicted labels")
    if pred.shape[0] != want.shape[0]:
        raise DifusionError(f"got {pred.shape[0]} predictions for {want.shape[0]} requested labels")
    if pred.shape[0] == 0:
        raise DifusionError("no samples to score")
    return float((pred == want).double().mean())


def class_coverage(predicted_labels: torch.Tensor, num_classes: int) -> dict[str, object]:
    """How many classes appear among the predictions and how evenly (a diversity summary).

    Returns a dict with:
      ``covered``: number of classes predicted at least once;
      ``num_classes``: the given number of classes;
      ``fraction_covered``: covered / num_classes;
      ``normalized_entropy``: Shannon entropy of the predicted-class histogram divided by
      log(num_classes): 1.0 for a uniform spread over all classes, 0.0 when every sample is one
      class (defined as 1.0 when num_classes is 1);
      ``histogram``: list of counts per class.
    ``predicted_labels`` is labels (N,) or logits (N, C) (argmax).
    """
    if num_classes < 1:
        raise DifusionError(f"num_classes must be at least 1, got {num_classes}")
    labels = _as_labels(predicted_labels, "predicted labels")
    if labels.numel() == 0:
        raise DifusionError("no samples to score")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DifusionError(
            f"predicted labels must lie in [0, {num_classes - 1}], got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    counts = torch.bincount(labels, minlength=num_classes).double()
    p = counts / counts.sum()
    nonzero = p[p > 0]
    entropy = float(-(nonzero * nonzero.log()).sum())
    normalized = entropy / math.log(num_classes) if num_classes > 1 else 1.0
    covered = int((counts > 0).sum())
    return {
        "covered": covered,
        "num_classes": num_classes,
        "fraction_covered": covered / num_classes,
        "normalized_entropy": normalized,
        "histogram": [int(c) for c in counts],
    }
