"""The one real labelled nuclei image available offline: ``img2d.tif`` and ``mask2d.tif`` from the
PyPI wheel ``stardist==0.9.2`` (a 512x512 fluorescence image of nuclei from the 2018 Data Science
Bowl and its instance mask with 125 nuclei; Schmidt et al. 2018, Caicedo et al. 2019).

``difusion fetch stardist`` runs ``pip download --no-deps stardist==0.9.2`` into a temporary
folder, keeps only the two TIFF files, checks their SHA-256 against the sums measured here
(:data:`FILE_SHA256`; the data files are the same in every platform's wheel of the release) and
writes them into the cache ``$XDG_CACHE_HOME/difusion/stardist``. tifffile reads them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from difusion.data.download import cache_dir, user_data_dir
from difusion.errors import DatasetNotFoundError, DifusionError
from difusion.wheels import one_line, pip_download_wheel, read_members

WHEEL_REQUIREMENT = "stardist==0.9.2"
FIX_HINT = "check the network (or pip's index settings) and retry `difusion fetch stardist`"
MEMBERS = {
    "img2d.tif": "stardist/data/images/img2d.tif",
    "mask2d.tif": "stardist/data/images/mask2d.tif",
}
# Measured here on the files inside stardist-0.9.2-cp311-...-manylinux_2_28_x86_64.whl.
FILE_SHA256 = {
    "img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
    "mask2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
}


def stardist_dir() -> Path:
    """Where the pair lives: ``$DIFUSION_DATA/stardist`` if it holds both files, else the cache."""
    user = user_data_dir("stardist")
    if user is not None and all((user / name).is_file() for name in MEMBERS):
        return user
    return cache_dir("stardist")


def extract_pair(wheel: Path, dest: Path) -> Path:
    """Copy the two TIFF files out of ``wheel`` into ``dest`` after checking their SHA-256; a
    mismatch writes nothing."""
    blobs = read_members(wheel, {MEMBERS[n]: FILE_SHA256[n] for n in MEMBERS}, FIX_HINT)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name, member in MEMBERS.items():
            raw = blobs[member]
            tmp = dest / f".{name}.part"
            tmp.write_bytes(raw)
            os.replace(tmp, dest / name)
    except OSError as e:
        raise DifusionError(
            f"cannot write to {dest} ({one_line(str(e))}); set XDG_CACHE_HOME to a writable folder"
        ) from e
    return dest


def fetch_stardist(force: bool = False) -> Path:
    """Put ``img2d.tif`` and ``mask2d.tif`` into the cache (pip download of the wheel, SHA-256
    checked); nothing happens if both are there already (unless ``force``)."""
    dest = cache_dir("stardist")
    if not force and all((dest / n).is_file() for n in MEMBERS):
        return dest
    with tempfile.TemporaryDirectory(prefix="difusion-stardist-") as tmp:
        wheel = pip_download_wheel(WHEEL_REQUIREMENT, Path(tmp), FIX_HINT)
        return extract_pair(wheel, dest)


def load_stardist_pair(folder: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image, instances)``: the 512x512 nuclei image as float32 normalised to about [0, 1]
    (percentiles 1 and 99.8) and its int32 instance mask (125 nuclei)."""
    import tifffile

    from difusion.data.cells import normalize

    folder = folder or stardist_dir()
    paths = {n: folder / n for n in MEMBERS}
    if not all(p.is_file() for p in paths.values()):
        raise DatasetNotFoundError(
            f"the StarDist nuclei pair is not in {folder}; get it with `difusion fetch stardist`"
        )
    img = tifffile.imread(paths["img2d.tif"])
    mask = tifffile.imread(paths["mask2d.tif"])
    return normalize(img), mask.astype(np.int32)


__all__ = ["FILE_SHA256", "extract_pair", "fetch_stardist", "load_stardist_pair", "stardist_dir"]
