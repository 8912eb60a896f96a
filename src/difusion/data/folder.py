"""Any directory of images, center-cropped and resized to one square size.

Images are found recursively (png, jpg, jpeg, bmp, webp) and sorted by relative path, so the order
is the same on every machine. If every image sits in a subdirectory, the first directory level
names the classes (``root/cat/1.png`` -> class ``cat``); otherwise there are no labels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from difusion.data.base import Dataset, check_image_options, pixels_to_tensor
from difusion.errors import DifusionError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive), sorted by relative POSIX path."""
    root = Path(root)
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def load_image(path: str | Path, image_size: int, channels: int) -> np.ndarray:
    """One image as a ``(channels, image_size, image_size)`` uint8 array.

    The largest centred square is cropped, then resized with bicubic filtering; the image is
    converted to grayscale (``L``) or ``RGB``. An unreadable file raises :class:`DifusionError`.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's palette-transparency notice
            with Image.open(path) as image:
                image.load()
                image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DifusionError(
            f"cannot read image {path} ({reason}); delete or replace the file."
        ) from error
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != image_size:
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def load_folder(path: str | Path, image_size: int = 32, channels: int = 3) -> Dataset:
    """Every image under ``path`` as ``(N, channels, image_size, image_size)`` float32 in [-1, 1].

    Labels (int64) and ``class_names`` come from the first-level subdirectories when every image
    is inside one; otherwise ``labels`` is None. Pixels 0..255 map to ``x / 255 * 2 - 1``.
    """
    check_image_options("folder", image_size, channels)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DifusionError(
            f"folder: {root} is not a directory; pass the folder that holds your images."
        )
    files = list_images(root)
    if not files:
        raise DifusionError(
            f"folder: no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found under "
            f"{root}; put some images there or point to another folder."
        )
    images = np.stack([load_image(f, image_size, channels) for f in files])
    labels, class_names = None, None
    groups = [f.relative_to(root).parts for f in files]
    if all(len(parts) > 1 for parts in groups):
        class_names = sorted({parts[0] for parts in groups})
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[parts[0]] for parts in groups], dtype=torch.int64)
    return Dataset(
        name="folder",
        data=pixels_to_tensor(images),
        labels=labels,
        class_names=class_names,
        info={"source": "folder", "location": str(root), "files": len(files)},
    )
