"""Synthetic fluorescence microscopy: nuclei-like cells with instance masks, the embedded default
data of the segmentation chapter (no download). Cells vary in size, elongation, outline and
texture; about half are placed against a neighbour, so they touch or overlap (the later cell lies
on top); the image has uneven illumination, optical blur and noise. Also the percentile
normalisation of microscopy images that the real nuclei loaders (stardist_wheel, dsb2018) share."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _cell_mask(
    shape: tuple[int, int], center: np.ndarray, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """One cell: an ellipse of mean radius ``radius`` with a wavy outline (harmonics 2 and 3)."""
    h, w = shape
    ext = int(radius * 1.8) + 2
    r0, c0 = int(center[0]), int(center[1])
    rs, cs = slice(max(r0 - ext, 0), min(r0 + ext, h)), slice(max(c0 - ext, 0), min(c0 + ext, w))
    mask = np.zeros(shape, dtype=bool)
    if rs.start >= rs.stop or cs.start >= cs.stop:  # entirely outside the image
        return mask
    rr, cc = np.mgrid[rs, cs]
    dy, dx = rr - center[0], cc - center[1]
    angle = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.65, 1.0)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    wobble = 1.0 + sum(
        rng.uniform(0.0, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    inside = (u / radius) ** 2 + (v / (radius * aspect)) ** 2 <= wobble**2
    mask[rs, cs] = inside
    return mask


def synthetic_cells(
    size: int | tuple[int, int] = 192,
    rng: np.random.Generator | None = None,
    density: float = 1.0,
    radius: tuple[float, float] = (4.0, 12.0),
    touch: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image ``(H, W)`` float32 in [0, 1] and its instances ``(H, W)`` int32 (0 =
    background, 1..n = cells, later cells drawn over earlier ones).

    ``density`` scales the number of cells (about 1 per 1500 px^2 at 1.0); ``touch`` is the share
    of cells placed against an existing one (distance = sum of radii times 0.85..1.05)."""
    rng = rng if rng is not None else np.random.default_rng()
    shape = (size, size) if isinstance(size, int) else tuple(size)
    h, w = shape
    n = max(1, int(rng.poisson(density * h * w / 1500)))
    labels = np.zeros(shape, dtype=np.int32)
    centers: list[tuple[np.ndarray, float]] = []
    k = 0
    for _ in range(n * 4):
        if k >= n:
            break
        r = rng.uniform(*radius)
        if centers and rng.random() < touch:
            c_old, r_old = centers[int(rng.integers(len(centers)))]
            phi = rng.uniform(0, 2 * np.pi)
            center = c_old + (r + r_old) * rng.uniform(0.85, 1.05) * np.array(
                [np.sin(phi), np.cos(phi)]
            )
        else:
            center = rng.uniform([0, 0], [h, w])
        mask = _cell_mask(shape, center, r, rng)
        area = mask.sum()
        if area < 10 or (labels[mask] > 0).mean() > 0.3:  # allow some overlap, not hidden cells
            continue
        k += 1
        labels[mask] = k
        centers.append((center, r))
    labels = _relabel(labels)

    # Intensity: per-cell brightness and texture (smoothed noise), soft edges by optical blur.
    brightness = np.concatenate([[0.0], rng.uniform(0.25, 1.0, labels.max())])
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5)
    texture /= texture.std() + 1e-8
    cells = brightness[labels] * (1.0 + rng.uniform(0.05, 0.2) * texture) * (labels > 0)
    img = ndimage.gaussian_filter(cells, rng.uniform(0.7, 1.5))
    # Uneven illumination: a smooth multiplicative field and a background ramp.
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a, b = rng.normal(0, 0.7, 2)
    illum = 1.0 + a * (yy - 0.5) + b * (xx - 0.5)
    illum *= (
        1.0 + 0.3 * ndimage.gaussian_filter(rng.normal(0, 1, shape), max(h, w) / 6) * max(h, w) / 12
    )
    img = img * np.clip(illum, 0.3, 1.7) + rng.uniform(0.02, 0.15) * (1 + 2 * b * (xx - 0.5))
    # Noise: Poisson-like (signal-dependent) plus Gaussian read noise.
    img = img + rng.normal(0, 1, shape) * (
        rng.uniform(0.01, 0.04) + 0.05 * np.sqrt(np.clip(img, 0, None))
    )
    return normalize(img), labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..n, dropping cells that were covered completely and splitting none."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(labels.max() + 1, dtype=np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[labels]


def normalize(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Percentile normalisation to about [0, 1] (as StarDist/CSBDeep do for microscopy)."""
    x = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(x, [low, high])
    return ((x - lo) / max(hi - lo, 1e-8)).astype(np.float32)


def synthetic_set(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, H, W)`` and instance masks, image ``i`` from seed ``(seed, i)``."""
    pairs = [synthetic_cells(size, np.random.default_rng([seed, i])) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


__all__ = ["normalize", "synthetic_cells", "synthetic_set"]
