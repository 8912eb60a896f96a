"""Checked downloads: stream to a temporary file, verify the checksum, then rename into place.

Also the two places datasets live on disk: ``$DIFUSION_DATA/<name>`` (chosen by the user) and the
cache ``$XDG_CACHE_HOME/difusion/<name>`` (``~/.cache/difusion/<name>`` by default), where
downloads go.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
from pathlib import Path
from urllib.request import urlopen

from tqdm import tqdm

from difusion.errors import DifusionError

CHUNK_SIZE = 1 << 20


def cache_dir(name: str) -> Path:
    """Where downloads of dataset ``name`` go: ``$XDG_CACHE_HOME/difusion/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "difusion" / name


def user_data_dir(name: str) -> Path | None:
    """``$DIFUSION_DATA/<name>`` when the ``DIFUSION_DATA`` variable is set, else None."""
    base = os.environ.get("DIFUSION_DATA")
    return Path(base).expanduser() / name if base else None


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The hex digest (MD5, or another ``hashlib`` algorithm) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _one_line(error: BaseException) -> str:
    """The reason inside an exception, squeezed onto one line."""
    reason = getattr(error, "reason", None) or error
    return " ".join(str(reason).split()) or type(error).__name__


def download(
    url: str, dest: str | Path, checksum: str, *, algorithm: str = "md5", timeout: float = 60.0
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``; nothing lands there unless the checksum
    (the hex digest of ``algorithm``: MD5, or e.g. ``"sha256"``) matches.

    The bytes stream into a temporary file next to ``dest`` (with a tqdm progress bar on a
    terminal) and are renamed onto ``dest`` only once their digest equals ``checksum``. A file
    already at ``dest`` with the right digest is kept without downloading. A network failure or a
    checksum mismatch raises :class:`DifusionError` and leaves no partial file behind.
    """
    dest = Path(dest)
    checksum = checksum.lower()
    if dest.is_file() and file_digest(dest, algorithm) == checksum:
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as error:
        raise DifusionError(
            f"cannot write to {dest.parent} to download {url}: {_one_line(error)}. "
            "Choose a writable location (set XDG_CACHE_HOME or DIFUSION_DATA)."
        ) from error
    tmp = Path(tmp_name)
    digest = hashlib.new(algorithm, usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=None,
                leave=False,
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if got != checksum:
            raise DifusionError(
                f"checksum mismatch for {url}: expected {algorithm.upper()} {checksum}, got {got}. "
                "The download is corrupt or the file changed upstream; try again later or fetch it "
                f"by hand into {dest}."
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise DifusionError(
            f"could not download {url}: {_one_line(error)}. Check your internet connection "
            f"and try again, or copy the file by hand to {dest}."
        ) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return dest
