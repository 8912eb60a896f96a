"""Segmentation measures: Dice, IoU and pixel error of the foreground; instance average precision at
IoU 0.5 (the 2018 Data Science Bowl's score at one threshold, as StarDist reports it); the share
of touching cell pairs that come out separated; and the classical baseline, Otsu + watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2 |P ∩ T| / (|P| + |T|) of two binary masks (1 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * (p & t).sum() / denom)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Jaccard index |P ∩ T| / |P ∪ T| of two binary masks (1 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    union = (p | t).sum()
    return 1.0 if union == 0 else float((p & t).sum() / union)


def pixel_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Share of pixels whose binary label differs (the ISBI 2012 challenge's pixel error)."""
    return float((np.asarray(pred, bool) != np.asarray(truth, bool)).mean())


def instances_from_foreground(
    foreground: np.ndarray, method: str = "components", min_size: int = 8, min_distance: int = 4
) -> np.ndarray:
    """Split a binary foreground into labelled instances: 4-connected components (what the
    separation borders of the weight map make possible), or a watershed on the distance transform
    seeded at its local maxima. Components smaller than ``min_size`` px are dropped."""
    fg = np.asarray(foreground, bool)
    if method == "components":
        lab, _ = ndimage.label(fg)
    elif method == "watershed":
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed

        dist = ndimage.distance_transform_edt(fg)
        comps, _ = ndimage.label(fg)
        peaks = peak_local_max(dist, min_distance=min_distance, labels=comps, exclude_border=False)
        markers = np.zeros(fg.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        lab = watershed(-dist, markers, mask=fg)
    else:
        raise ValueError(f"method must be components or watershed, got {method!r}")
    sizes = np.bincount(lab.ravel())
    small = sizes < min_size
    small[0] = False
    lab[small[lab]] = 0
    lab, _ = ndimage.label(lab > 0) if method == "components" else (lab, None)
    return lab.astype(np.int32)


def consecutive(instances: np.ndarray) -> np.ndarray:
    """The same instances with ids 1..n (0 stays background); masks may skip ids."""
    lab = np.asarray(instances)
    ids, inverse = np.unique(lab, return_inverse=True)
    if ids[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(lab.shape).astype(np.int64)


def _overlaps(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (truth id, predicted id) pair, and the per-instance areas."""
    t, p = consecutive(truth).ravel(), consecutive(pred).ravel()
    nt, np_ = int(t.max()) + 1, int(p.max()) + 1
    inter = np.bincount(t * np_ + p, minlength=nt * np_).reshape(nt, np_)
    return inter, inter.sum(1), inter.sum(0)


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every truth instance (rows, ids 1..) with every predicted instance (columns)."""
    inter, at, ap = _overlaps(truth, pred)
    union = at[:, None] + ap[None, :] - inter
    m = inter / np.maximum(union, 1)
    return m[1:, 1:]


def average_precision(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict:
    """Instance AP at one IoU threshold, ``TP / (TP + FP + FN)`` (DSB 2018; StarDist's
    "accuracy"), with precision, recall and the mean IoU of the matched pairs. At a threshold of
    0.5 or more a match is unique, so no assignment problem has to be solved."""
    m = iou_matrix(truth, pred)
    n_true, n_pred = m.shape
    if threshold >= 0.5:
        matched = m > threshold
        tp = int(matched.sum())
        matched_iou = m[matched]
    else:  # pragma: no cover - the measures here use 0.5
        raise ValueError("thresholds below 0.5 need an assignment; use >= 0.5")
    fp, fn = n_pred - tp, n_true - tp
    return {
        "ap": tp / max(tp + fp + fn, 1),
        "precision": tp / max(n_pred, 1),
        "recall": tp / max(n_true, 1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "matched_iou": float(matched_iou.mean()) if tp else 0.0,
    }


def touching_pairs(instances: np.ndarray, gap: int = 2) -> list[tuple[int, int]]:
    """Pairs of instances whose pixels come within ``gap`` px of each other (touching cells)."""
    lab = np.asarray(instances)
    pairs: set[tuple[int, int]] = set()
    for dr in range(-gap, gap + 1):
        for dc in range(-gap, gap + 1):
            if (dr, dc) <= (0, 0):
                continue
            a = lab[max(dr, 0) : lab.shape[0] + min(dr, 0), max(dc, 0) : lab.shape[1] + min(dc, 0)]
            b = lab[
                max(-dr, 0) : lab.shape[0] + min(-dr, 0), max(-dc, 0) : lab.shape[1] + min(-dc, 0)
            ]
            sel = (a > 0) & (b > 0) & (a != b)
            for i, j in zip(a[sel], b[sel], strict=True):
                pairs.add((min(int(i), int(j)), max(int(i), int(j))))
    return sorted(pairs)


def separated_share(truth: np.ndarray, pred: np.ndarray, gap: int = 2) -> dict:
    """Of the touching pairs of ``truth``, the share whose two cells land in two different
    predicted instances (each cell's instance = the predicted id covering most of it, not
    background)."""
    truth = consecutive(truth)
    pairs = touching_pairs(truth, gap)
    inter, _, _ = _overlaps(truth, pred)
    owner = inter[:, 1:].argmax(1) + 1 if inter.shape[1] > 1 else np.zeros(len(inter), int)
    covered = inter[:, 1:].max(1) > 0 if inter.shape[1] > 1 else np.zeros(len(inter), bool)
    ok = sum(1 for i, j in pairs if covered[i] and covered[j] and owner[i] != owner[j])
    return {
        "pairs": len(pairs),
        "separated": ok,
        "share": ok / len(pairs) if pairs else float("nan"),
    }


def otsu_watershed(image: np.ndarray, min_distance: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The classical baseline: Otsu's threshold of the (lightly smoothed) image, then a watershed
    of the distance transform to split touching cells. Returns ``(foreground, instances)``."""
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), 1.0)
    fg = smooth > threshold_otsu(smooth)
    fg = ndimage.binary_fill_holes(fg)
    return fg, instances_from_foreground(fg, "watershed", min_distance=min_distance)


def segmentation_scores(
    truth_instances: np.ndarray, pred_foreground: np.ndarray, pred_instances: np.ndarray
) -> dict:
    """All the measures of one image: Dice, IoU and pixel error of the foreground; AP at 0.5;
    the touching pairs separated."""
    t_fg = np.asarray(truth_instances) > 0
    ap = average_precision(truth_instances, pred_instances, 0.5)
    sep = separated_share(truth_instances, pred_instances)
    return {
        "dice": dice(pred_foreground, t_fg),
        "iou": iou(pred_foreground, t_fg),
        "pixel_error": pixel_error(pred_foreground, t_fg),
        "ap50": ap["ap"],
        "precision50": ap["precision"],
        "recall50": ap["recall"],
        "touching_pairs": sep["pairs"],
        "separated": sep["separated"],
        "n_true": int(len(np.unique(truth_instances)) - 1),
        "n_pred": int(len(np.unique(pred_instances)) - 1),
    }


def mean_scores(rows: list[dict]) -> dict:
    """Means over images; the touching-pair share pooled over all pairs."""
    keys = ("dice", "iou", "pixel_error", "ap50", "precision50", "recall50")
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    pairs = sum(r["touching_pairs"] for r in rows)
    out["separated_share"] = sum(r["separated"] for r in rows) / pairs if pairs else float("nan")
    out["touching_pairs"] = pairs
    out["images"] = len(rows)
    return out


__all__ = [
    "average_precision",
    "dice",
    "instances_from_foreground",
    "iou",
    "iou_matrix",
    "mean_scores",
    "otsu_watershed",
    "pixel_error",
    "segmentation_scores",
    "separated_share",
    "touching_pairs",
]
