"""CIFAR-10 from the official *binary* version (no pickles are ever loaded).

Each ``.bin`` file is a run of 3,073-byte records: one label byte, then 1,024 red, 1,024 green
and 1,024 blue bytes of a 32x32 image in row-major order. Train is ``data_batch_1.bin`` ..
``data_batch_5.bin`` (50,000 images), test is ``test_batch.bin`` (10,000).

Where the files are looked for when no ``root`` is given: ``$DIFUSION_DATA/cifar10``, then the
cache ``$XDG_CACHE_HOME/difusion/cifar10`` (each directly or in a ``cifar-10-batches-bin``
subdirectory), where :func:`download_cifar10` extracts the archive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from difusion.data.base import Dataset, pixels_to_tensor
from difusion.data.download import cache_dir, user_data_dir
from difusion.data.download import download as fetch
from difusion.errors import DatasetNotFoundError, DifusionError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_DIRNAME = "cifar-10-batches-bin"
CIFAR10_CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR10_SPLITS = ("train", "test")
CIFAR10_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
# Members taken from the archive; anything else in it is ignored, never extracted.
_WANTED = {*CIFAR10_FILES["train"], *CIFAR10_FILES["test"], "batches.meta.txt", "readme.html"}
RECORD_SIZE = 1 + 3 * 32 * 32
HOW_TO_GET = "Run `difusion datasets download cifar10` (or pass download=True)."


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels.

    Raises :class:`DifusionError` naming the file when it is missing, truncated or has labels
    outside 0..9.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        reason = error.strerror or error
        raise DifusionError(f"cannot read CIFAR-10 file {path}: {reason}.") from error
    if raw.size == 0 or raw.size % RECORD_SIZE:
        raise DifusionError(
            f"CIFAR-10 file {path} is truncated or not a CIFAR-10 binary batch ({raw.size} bytes "
            f"is not a multiple of {RECORD_SIZE}); delete it and download it again."
        )
    records = raw.reshape(-1, RECORD_SIZE)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR10_CLASS_NAMES):
        raise DifusionError(
            f"CIFAR-10 file {path} has labels above 9, so it is not a CIFAR-10 batch (the "
            "CIFAR-100 binary layout differs); use cifar-10-binary.tar.gz."
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return images, labels


def _has_split(directory: Path, split: str) -> bool:
    return all((directory / name).is_file() for name in CIFAR10_FILES[split])


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    """The directories searched, in order: ``root`` if given, else ``$DIFUSION_DATA/cifar10`` then
    the cache; each directly and in its ``cifar-10-batches-bin`` (the archive's own folder)."""
    if root is not None:
        bases = [Path(root).expanduser()]
    else:
        bases = [user_data_dir("cifar10"), cache_dir("cifar10")]
    return [d for base in bases if base is not None for d in (base, base / CIFAR10_DIRNAME)]


def find_cifar10_dir(split: str, root: str | Path | None = None) -> Path | None:
    """The first directory holding every ``.bin`` file of ``split``, or None."""
    return next((d for d in candidate_dirs(root) if _has_split(d, split)), None)


def locate_cifar10() -> Path | None:
    """Where CIFAR-10 is found without a root (any split), or None."""
    return find_cifar10_dir("train") or find_cifar10_dir("test")


def extract_cifar10(archive: str | Path, dest: str | Path) -> Path:
    """Safely extract the ``.bin`` files of the binary archive into ``dest/cifar-10-batches-bin``.

    Only regular-file members named ``cifar-10-batches-bin/<known name>`` are read, and they are
    written by us under fixed names, so no member can escape ``dest`` (no links, no ``..``).
    """
    archive, target = Path(archive), Path(dest) / CIFAR10_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if (
                    not member.isreg()
                    or len(parts) != 2
                    or parts[0] != CIFAR10_DIRNAME
                    or parts[1] not in _WANTED
                ):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                fd, tmp = tempfile.mkstemp(prefix=f".{parts[1]}.", suffix=".part", dir=target)
                try:
                    with source, os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out)
                    os.replace(tmp, target / parts[1])
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                found.add(parts[1])
    except (tarfile.TarError, OSError, EOFError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DifusionError(
            f"cannot extract CIFAR-10 archive {archive} ({reason}); delete it and download it "
            "again."
        ) from error
    missing = sorted(_WANTED - found - {"batches.meta.txt", "readme.html"})
    if missing:
        raise DifusionError(
            f"CIFAR-10 archive {archive} lacks {', '.join(missing)}; it is not "
            f"{CIFAR10_ARCHIVE}. Delete it and download it again."
        )
    return target


def download_cifar10(root: str | Path | None = None) -> Path:
    """Download and extract CIFAR-10 (MD5-checked) unless present; return the ``.bin`` folder.

    Goes to ``root`` if given, else the cache ``$XDG_CACHE_HOME/difusion/cifar10``. The archive is
    deleted once extracted.
    """
    base = Path(root).expanduser() if root is not None else cache_dir("cifar10")
    target = base / CIFAR10_DIRNAME
    if _has_split(target, "train") and _has_split(target, "test"):
        return target
    archive = fetch(CIFAR10_URL, base / CIFAR10_ARCHIVE, CIFAR10_MD5)
    extract_cifar10(archive, base)
    archive.unlink(missing_ok=True)
    return target


def load_cifar10(
    split: str = "train", root: str | Path | None = None, download: bool = False
) -> Dataset:
    """CIFAR-10 as ``(N, 3, 32, 32)`` float32 in [-1, 1] (``x / 255 * 2 - 1``) with int64 labels.

    ``root`` may hold the ``.bin`` files directly or a ``cifar-10-batches-bin`` folder. Missing
    files raise :class:`DatasetNotFoundError` unless ``download=True``.
    """
    if split not in CIFAR10_SPLITS:
        raise DifusionError(
            f"cifar10: unknown split {split!r}. Valid splits: {', '.join(CIFAR10_SPLITS)}."
        )
    directory = find_cifar10_dir(split, root)
    if directory is None and download:
        download_cifar10(root)
        directory = find_cifar10_dir(split, root)
    if directory is None:
        raise DatasetNotFoundError(
            f"cifar10: no binary batches ({', '.join(CIFAR10_FILES[split])}) in "
            f"{', '.join(str(d) for d in candidate_dirs(root))}. {HOW_TO_GET}"
        )
    parts = [read_cifar_bin(directory / name) for name in CIFAR10_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Dataset(
        name="cifar10",
        data=pixels_to_tensor(images),
        labels=torch.from_numpy(labels),
        class_names=list(CIFAR10_CLASS_NAMES),
        info={"source": "cifar10", "split": split, "location": str(directory)},
    )
