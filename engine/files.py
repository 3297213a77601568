"""Write files so that a crash or a full disk never leaves a half-written result."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def not_replaceable(path: str | Path) -> str | None:
    """Why no file may be written at `path`, or None when one may.

    An atomic write renames over whatever is there: a folder, a device node or a pipe
    would be replaced by a regular file instead of being written to, so only a regular
    file (or nothing) may be at `path`. Symbolic links are followed.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (creating it may still fail, and say why)
        return None
    except OSError as e:
        return f"cannot be checked ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe, not a regular file"
    return "is not a regular file"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temp file lives in the same folder so the final `os.replace` is atomic. On any
    exception the temp file is removed and whatever was at `path` before stays untouched.
    A symbolic link is followed (its target is what gets written, as a plain write would);
    anything but a regular file at `path` is refused with an OSError, never replaced.
    """
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    problem = not_replaceable(path)
    if problem is not None:
        raise OSError(errno.EEXIST, problem, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in whole.

    Used for model folders and adapters: a killed run leaves only a `.tmp` folder that the
    next run removes, never a folder that looks complete but is not. An existing folder
    at `path` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
