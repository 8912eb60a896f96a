"""scikit-learn's 8x8 handwritten digits: 1,797 tiny images that ship with scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from difusion.data.base import Dataset
from difusion.errors import DifusionError

DIGITS_SPLITS = ("train", "test", "all")
DIGITS_TRAIN_SIZE = 1500
DIGITS_CLASS_NAMES = [str(i) for i in range(10)]


def digits_location() -> Path | None:
    """The CSV file scikit-learn reads the digits from, or None if it is not installed."""
    try:
        import sklearn.datasets
    except ImportError:
        return None
    path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def load_digits(split: str = "train") -> Dataset:
    """The 8x8 digits as ``(N, 1, 8, 8)`` float32 in [-1, 1] with labels 0..9.

    The split is fixed and deterministic (no shuffling): ``"train"`` is the first 1,500 images,
    ``"test"`` the remaining 297, ``"all"`` all 1,797. Pixels 0..16 map to ``x / 16 * 2 - 1``.
    """
    if split not in DIGITS_SPLITS:
        raise DifusionError(
            f"digits: unknown split {split!r}. Valid splits: {', '.join(DIGITS_SPLITS)}."
        )
    try:
        from sklearn.datasets import load_digits as _sklearn_digits
    except ImportError as error:
        raise DifusionError(
            "digits: scikit-learn is not installed. Install it with `pip install scikit-learn`."
        ) from error
    bunch = _sklearn_digits()
    images = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    part = {
        "train": slice(0, DIGITS_TRAIN_SIZE),
        "test": slice(DIGITS_TRAIN_SIZE, None),
        "all": slice(None),
    }[split]
    images, labels = images[part], labels[part]
    data = torch.from_numpy(np.ascontiguousarray(images[:, None] / 16.0 * 2.0 - 1.0))
    return Dataset(
        name="digits",
        data=data.float(),
        labels=torch.from_numpy(np.ascontiguousarray(labels)),
        class_names=list(DIGITS_CLASS_NAMES),
        info={"source": "sklearn.datasets.load_digits", "split": split},
    )
