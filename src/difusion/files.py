"""Files that are never half-written: every file the lab writes goes through :func:`atomic_path`.

The bytes go to a hidden temporary file beside the target (``.NAME.tmp-PID``), are flushed to disk
(fsync), and the temporary file is renamed over the target, which POSIX makes atomic: a reader, a
kill or a full disk sees the old file or the new one, never a torn one. A write that fails removes
its temporary file; one killed outright leaves it, and :func:`remove_stale` clears those at the next
start. Logs grow by :func:`append_line`, one whole line per write. OS errors (no space, read-only,
permission) become one-line :class:`FileWriteError`s that name the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

from difusion.errors import DifusionError

_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


# where else to write: a run's outputs follow --out, the caches XDG_CACHE_HOME
_ELSEWHERE = "write elsewhere (--out for a run or its outputs, XDG_CACHE_HOME for the caches)"


class FileWriteError(DifusionError):
    """A file could not be written (no space, read-only, permission); nothing was half-written."""


def describe_os_error(e: OSError, path: str | Path | None = None, action: str = "write") -> str:
    """One line for an OS error: the path, the cause and, where there is one, the fix."""
    where = path or e.filename or "a file"
    hint = {
        errno.ENOSPC: "free some disk space and run again",
        errno.EDQUOT: "free some disk space and run again",
        errno.EFBIG: "the file is larger than this system allows",
        errno.EROFS: f"the file system is read-only; {_ELSEWHERE}",
        errno.EACCES: _ELSEWHERE,
        errno.EPERM: _ELSEWHERE,
    }.get(e.errno or 0, "")
    cause = e.strerror or str(e)
    return f"cannot {action} {where}: {cause}" + (f"; {hint}" if hint else "")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new contents to; renamed over ``path`` on success,
    removed on failure (the old ``path``, if any, stays as it was)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise FileWriteError(describe_os_error(e, path)) from None
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` (created if missing) in one unbuffered write, so
    the line reaches the OS at once. A write that fails part-way (no space) is cut back off: the
    file ends with the previous complete line, never a torn one. A process killed in mid-write can
    still leave a torn last line; :func:`complete_lines` drops it."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise FileWriteError(describe_os_error(e, path)) from None
    try:
        size = os.fstat(fd).st_size
        try:
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise FileWriteError(describe_os_error(e, path)) from None
    finally:
        os.close(fd)


def complete_lines(path: str | Path) -> list[str]:
    """The lines of a text file that an appender finished (each ended by a newline): a torn last
    line, left by a process killed in mid-write, is left out. A missing file has none."""
    try:
        text = Path(path).read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return []
    return text.split("\n")[:-1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(folder: str | Path) -> list[Path]:
    """Delete the temporary files of writes killed before their rename (their process is gone);
    returns what was removed. Subfolders are searched too."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.rglob(".*.tmp-*"):
        m = _TMP.match(p.name)
        if m and p.is_file() and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
