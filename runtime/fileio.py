"""Atomic file writes: a reader (or a crash) sees the old file or the whole new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None], *, fsync: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    Args:
        path: Destination; its folder is created if needed.
        data: Bytes, text (UTF-8), or a function writing to the open binary file.
        fsync: Flush to disk before the rename, so a power loss cannot leave an
            empty file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["atomic_write"]
