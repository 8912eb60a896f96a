"""The 2018 Data Science Bowl nuclei (Caicedo et al. 2019) as published by StarDist: ``dsb2018.zip``
(the fluorescence subset, 447 training and 50 test images with instance masks, as TIFF files
``dsb2018/{train,test}/{images,masks}/NAME.tif``).

:func:`download_dsb2018` streams the archive into the cache and keeps it only if its SHA-256 is
:data:`ZIP_SHA256`; that sum is the one the torch-em project pins for this URL (it could not be
measured here: github.com is not reachable from this machine). :func:`load_dsb2018` reads a split
straight from the zip, with tifffile.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from difusion.data.download import cache_dir, download, user_data_dir
from difusion.errors import DatasetNotFoundError, DifusionError

URL = "https://github.com/stardist/stardist/releases/download/0.1.0/dsb2018.zip"
ZIP_SHA256 = "e44921950edce378063aa4457e625581ba35b4c2dbd9a07c19d48900129f386f"
ZIP_NAME = "dsb2018.zip"


def dsb2018_zip() -> Path:
    """Where the archive is looked for: ``$DIFUSION_DATA/dsb2018/dsb2018.zip``, else the cache."""
    user = user_data_dir("dsb2018")
    if user is not None and (user / ZIP_NAME).is_file():
        return user / ZIP_NAME
    return cache_dir("dsb2018") / ZIP_NAME


def download_dsb2018(url: str = URL, sha256: str = ZIP_SHA256, timeout: float = 60.0) -> Path:
    """Download ``dsb2018.zip`` into the cache; nothing lands there unless the SHA-256 matches."""
    dest = cache_dir("dsb2018") / ZIP_NAME
    return download(url, dest, sha256, algorithm="sha256", timeout=timeout)


def load_dsb2018(
    split: str = "test", path: Path | None = None, limit: int | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, image, instances)]`` of a split, images normalised to about [0, 1] (percentiles 1
    and 99.8; colour images averaged to grey) and instance masks as int32, sorted by name."""
    import tifffile

    from difusion.data.cells import normalize

    if split not in ("train", "test"):
        raise DifusionError(f"dsb2018 has the splits train and test, not {split!r}")
    path = Path(path) if path is not None else dsb2018_zip()
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dsb2018.zip is not at {path}; download it with `difusion fetch dsb2018` or copy it "
            f"there from {URL}"
        )
    out = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            images = sorted(
                n for n in names if f"/{split}/images/" in n and n.endswith((".tif", ".tiff"))
            )
            for name in images[:limit]:
                mask_name = name.replace("/images/", "/masks/")
                if mask_name not in names:
                    raise DifusionError(f"{path} has {name} but no mask {mask_name}")
                img = tifffile.imread(io.BytesIO(zf.read(name))).astype(np.float32)
                if img.ndim == 3:
                    img = img[..., :3].mean(-1) if img.shape[-1] <= 4 else img.mean(0)
                mask = tifffile.imread(io.BytesIO(zf.read(mask_name))).astype(np.int32)
                out.append((Path(name).stem, normalize(img), mask))
    except zipfile.BadZipFile as e:
        raise DifusionError(f"{path} is not a valid zip archive ({e}); download it again") from e
    if not out:
        raise DifusionError(f"{path} holds no {split} images under dsb2018/{split}/images/")
    return out


__all__ = ["URL", "ZIP_SHA256", "download_dsb2018", "dsb2018_zip", "load_dsb2018"]
