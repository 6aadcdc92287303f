"""Writing files so that they survive a crash: whole or not at all, and on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a written file's contents to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` (fsynced unless told not to).

    The caller moves it into place (``os.replace``, ``os.link``) and removes it on failure.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name)


def write_atomic(path: Path, data: bytes, fsync: bool = True, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` whole: a reader or a crash never sees half a file.

    With ``fsync`` the contents are on disk before the rename; with ``sync_dir`` too,
    the rename is on disk when this returns. A caller that writes many files in one
    directory may pass ``sync_dir=False`` and call :func:`fsync_dir` once after them.
    """
    tmp = write_temp(path, data, fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync and sync_dir:
        fsync_dir(path.parent)
