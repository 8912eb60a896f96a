"""Datasets: one entry point, :func:`load_dataset`, over every source the lab knows.

=================  ======  ==============================================================
name               kind    source
=================  ======  ==============================================================
``toy2d``          points  generated 2-D distributions (moons, swiss_roll, 8gaussians, ...)
``digits``         image   scikit-learn's 8x8 digits, shipped with scikit-learn
``mnist``          image   MNIST IDX files (download, or ``difusion fetch mnist``)
``fashion-mnist``  image   Fashion-MNIST IDX files (Debian package or download)
``cifar10``        image   CIFAR-10 binary batches (download)
``folder``         image   any directory of images (``root=`` the folder)
``latents``        image   an autoencoder's latents (``first_stage=`` its codec): latent diffusion
=================  ======  ==============================================================

Every source returns a :class:`Dataset` held in memory: images ``(N, C, H, W)`` float32 in
[-1, 1], points ``(N, 2)`` float32 of roughly unit scale.

Data never builds a model (``[tool.importlinter]`` in pyproject.toml forbids importing the networks,
the autoencoders, the samplers or training): the first stage of ``latents`` is handed in as a
:class:`~difusion.data.latents.LatentCodec` (``difusion.build`` loads it from ``data.root``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from difusion.data.base import Dataset, check_image_options
from difusion.data.cifar10 import CIFAR10_SPLITS, download_cifar10, load_cifar10, locate_cifar10
from difusion.data.cifar10 import HOW_TO_GET as CIFAR10_HOW_TO_GET
from difusion.data.digits import DIGITS_SPLITS, digits_location, load_digits
from difusion.data.folder import load_folder
from difusion.data.idx import IDX_SPLITS, how_to_get, load_idx_dataset, locate_idx
from difusion.data.idx import download_files as download_idx_files
from difusion.data.toy2d import DISTRIBUTIONS, TOY2D_SPLITS, load_toy2d
from difusion.errors import DatasetNotFoundError, DifusionError

__all__ = [
    "DATASETS",
    "HOLDOUT_SPLITS",
    "LEVELS",
    "VALIDATION",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "describe_datasets",
    "download_files",
    "data_levels",
    "holdout",
    "load_dataset",
]


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset name."""

    name: str
    kind: str  # "points" or "image"
    description: str
    shape: tuple[int, ...]  # one example, at the native size
    classes: int | None
    splits: tuple[str, ...]
    how_to_get: str
    # Where the data is found, or None; no locate: generated or user-supplied, nothing to fetch.
    locate: Callable[[], Path | None] | None = None

    def location(self) -> Path | None:
        """The directory or file the data is read from, or None if not found (or not on disk)."""
        return self.locate() if self.locate is not None else None

    def available(self) -> bool:
        """Whether :func:`load_dataset` works now without downloading anything."""
        return self.locate is None or self.locate() is not None


# Held out of the training split for choosing settings: "val" is its last VALIDATION[name] examples
# and "fit" the rest, so a choice made on "val" never sees the test split, and "train" = fit + val.
VALIDATION = {"digits": 300, "mnist": 10_000, "fashion-mnist": 10_000, "cifar10": 5_000}
HOLDOUT_SPLITS = ("fit", "val")
# How many grey levels each image dataset's pixels take (k -> 2k/(L-1) - 1 on [-1, 1]): the bin
# width of a discrete likelihood. 8-bit files have 256; scikit-learn's digits count ink 0..16.
LEVELS = {"digits": 17, "mnist": 256, "fashion-mnist": 256, "cifar10": 256, "folder": 256}


def data_levels(name: str) -> int:
    """The number of grey levels of image dataset ``name``, or a one-line error for data that is
    not discrete (points, latents): a bits/dim needs the data's own bins."""
    name = _resolve(name).name
    if name not in LEVELS:
        raise DifusionError(
            f"{name} is not discrete image data, so it has no bits/dim on its levels; the "
            "likelihood in bits/dim is for " + ", ".join(LEVELS)
        )
    return LEVELS[name]


DATASETS: dict[str, DatasetInfo] = {
    "toy2d": DatasetInfo(
        name="toy2d",
        kind="points",
        description="Generated 2-D points: " + ", ".join(DISTRIBUTIONS) + ".",
        shape=(2,),
        classes=None,
        splits=TOY2D_SPLITS,
        how_to_get="Nothing to get: generated on the fly (choose distribution=, n=, seed=).",
    ),
    "digits": DatasetInfo(
        name="digits",
        kind="image",
        description="scikit-learn's 1,797 handwritten 8x8 digits (train 1,500 = fit 1,200 + val "
        "300 / test 297).",
        shape=(1, 8, 8),
        classes=10,
        splits=(*DIGITS_SPLITS, *HOLDOUT_SPLITS),
        how_to_get="Ships with scikit-learn (`pip install scikit-learn`).",
        locate=digits_location,
    ),
    "mnist": DatasetInfo(
        name="mnist",
        kind="image",
        description="MNIST handwritten digits, 28x28 grayscale (train 60,000 = fit 50,000 + val "
        "10,000 / test 10,000).",
        shape=(1, 28, 28),
        classes=10,
        splits=(*IDX_SPLITS, *HOLDOUT_SPLITS),
        how_to_get=how_to_get("mnist"),
        locate=lambda: locate_idx("mnist"),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        kind="image",
        description="Zalando's Fashion-MNIST clothes, 28x28 grayscale (train 60,000 = fit 50,000 "
        "+ val 10,000 / test 10,000).",
        shape=(1, 28, 28),
        classes=10,
        splits=(*IDX_SPLITS, *HOLDOUT_SPLITS),
        how_to_get=how_to_get("fashion-mnist"),
        locate=lambda: locate_idx("fashion-mnist"),
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        kind="image",
        description="CIFAR-10 small color photos, 32x32 RGB (train 50,000 = fit 45,000 + val "
        "5,000 / test 10,000).",
        shape=(3, 32, 32),
        classes=10,
        splits=(*CIFAR10_SPLITS, *HOLDOUT_SPLITS),
        how_to_get=CIFAR10_HOW_TO_GET,
        locate=locate_cifar10,
    ),
    "folder": DatasetInfo(
        name="folder",
        kind="image",
        description="Your own directory of images, center-cropped and resized (subfolders "
        "become classes).",
        shape=(3, 32, 32),
        classes=None,
        splits=("train", "all"),
        how_to_get="Pass the image folder as root= (CLI: --root PATH); png/jpg/bmp/webp.",
    ),
    "latents": DatasetInfo(
        name="latents",
        kind="image",
        description="The unit-variance latents of a trained autoencoder run (root=), e.g. 4x7x7 "
        "for Fashion-MNIST: what latent diffusion diffuses.",
        shape=(4, 7, 7),
        classes=None,
        splits=("train", "test"),
        how_to_get="Train a spatial autoencoder (difusion train vae-fmnist-spatial --out DIR) and "
        "set data.root=DIR (in Python: first_stage=difusion.build.load_first_stage(DIR)).",
    ),
}

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "toy": "toy2d",
    "toy-2d": "toy2d",
}


def _resolve(name: str) -> DatasetInfo:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise DifusionError(f"unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}.")
    return DATASETS[key]


def _adapt(dataset: Dataset, image_size: int | None, channels: int | None) -> Dataset:
    """Resize images to ``image_size`` (bilinear, antialiased) and convert to ``channels``."""
    data = dataset.data
    if channels is not None and channels != data.shape[1]:
        if channels == 3 and data.shape[1] == 1:
            data = data.repeat(1, 3, 1, 1)
        elif channels == 1 and data.shape[1] == 3:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=data.dtype).view(1, 3, 1, 1)
            data = (data * weights).sum(dim=1, keepdim=True)
        else:
            raise DifusionError(
                f"{dataset.name}: cannot turn {data.shape[1]} channels into {channels}; "
                "use channels=1 or channels=3."
            )
    if image_size is not None and image_size != data.shape[-1]:
        data = F.interpolate(
            data,
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        ).clamp_(-1.0, 1.0)
    if data is dataset.data:
        return dataset
    info = {**dataset.info, "resized_from": list(dataset.shape)}
    return Dataset(dataset.name, data.contiguous(), dataset.labels, dataset.class_names, info)


def holdout(train: Dataset, split: str, size: int) -> Dataset:
    """``split`` "val": the last ``size`` examples of the training split; "fit": the others.

    A fixed cut, not a shuffle, so every run and every machine hold out the same examples (the
    training files are already in random order)."""
    if not 0 < size < len(train):
        raise DifusionError(f"{train.name}: cannot hold out {size} of {len(train)} examples")
    part = slice(len(train) - size, None) if split == "val" else slice(0, len(train) - size)
    labels = None if train.labels is None else train.labels[part]
    info = {**train.info, "split": split, "held_out_of": "train"}
    return Dataset(train.name, train.data[part].contiguous(), labels, train.class_names, info)


def load_dataset(
    name: str,
    *,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
    channels: int | None = None,
    distribution: str = "moons",
    n: int = 8000,
    seed: int = 0,
    first_stage=None,
) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`) into memory.

    ``split`` must be one of the dataset's splits; "fit" and "val" cut the training split in two
    (:data:`VALIDATION`: choose settings on "val", then report the test split once). ``root`` is the directory to read from
    (required for ``folder``; for mnist/fashion-mnist/cifar10 it overrides the usual search).
    ``download=True`` fetches missing mnist/fashion-mnist/cifar10 files. ``image_size`` and
    ``channels`` resize / convert any image dataset (``folder`` defaults: 32 and 3).
    ``distribution``, ``n`` and ``seed`` apply to ``toy2d`` only. ``first_stage`` (``latents``
    only) is the trained autoencoder as a :class:`~difusion.data.latents.LatentCodec`, e.g.
    ``difusion.build.load_first_stage(RUN)``.
    """
    info = _resolve(name)
    if split not in info.splits:
        raise DifusionError(
            f"{info.name}: unknown split {split!r}. Valid splits: {', '.join(info.splits)}."
        )
    check_image_options(info.name, image_size, channels)
    if info.kind == "points" and (image_size is not None or channels is not None):
        raise DifusionError(
            f"{info.name}: image_size and channels apply to image datasets only; drop them."
        )
    if info.name in ("toy2d", "digits") and root is not None:
        origin = "generated" if info.name == "toy2d" else "shipped with scikit-learn"
        raise DifusionError(f"{info.name}: root does not apply (the data is {origin}); drop it.")
    if info.name == "toy2d":
        return load_toy2d(distribution, n, seed, split=split)
    if info.name == "latents":
        if first_stage is None:
            raise DifusionError(
                "latents: hand in the first stage, first_stage=difusion.build.load_first_stage(RUN) "
                "with RUN an autoencoder run folder (a config sets data.root=RUN), e.g. trained by "
                "`difusion train vae-fmnist-spatial --out RUN`"
            )
        return first_stage.dataset(split)
    if first_stage is not None:
        raise DifusionError(f"{info.name}: first_stage applies to latents only; drop it.")
    if split in HOLDOUT_SPLITS:
        train = load_dataset(info.name, split="train", root=root, download=download)
        return _adapt(holdout(train, split, VALIDATION[info.name]), image_size, channels)
    if info.name == "digits":
        dataset = load_digits(split)
    elif info.name in ("mnist", "fashion-mnist"):
        dataset = load_idx_dataset(info.name, split, root=root, download=download)
    elif info.name == "cifar10":
        dataset = load_cifar10(split, root=root, download=download)
    else:  # folder
        if root is None:
            raise DifusionError(
                "folder: no folder given; pass root=PATH (CLI: --root PATH) with your images."
            )
        return load_folder(root, image_size=image_size or 32, channels=channels or 3)
    return _adapt(dataset, image_size, channels)


def download_files(name: str, root: str | Path | None = None) -> Path:
    """Download dataset ``name`` (mnist, fashion-mnist or cifar10) and return its directory.

    Files go to ``root`` if given, else to the cache ``$XDG_CACHE_HOME/difusion/<name>``; every
    file is MD5-checked and nothing already present is fetched again.
    """
    info = _resolve(name)
    if info.name in ("mnist", "fashion-mnist"):
        return download_idx_files(info.name, root)
    if info.name == "cifar10":
        return download_cifar10(root)
    raise DifusionError(f"{info.name}: nothing to download. {info.how_to_get}")


def describe_datasets() -> list[dict]:
    """One dict per dataset name: what it is, its shape, and whether and where it is on disk."""
    rows = []
    for info in DATASETS.values():
        location = info.location()
        rows.append(
            {
                "name": info.name,
                "description": info.description,
                "kind": info.kind,
                "shape": info.shape,
                "classes": info.classes,
                "splits": list(info.splits),
                "location": str(location) if location is not None else None,
                "available": info.locate is None or location is not None,
                "how_to_get": info.how_to_get,
            }
        )
    return rows
