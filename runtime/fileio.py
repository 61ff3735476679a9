"""Atomic file writes: a reader (or a crash) sees the old file or the whole new one, never a torn one.

The temporary file :func:`tempfile.mkstemp` makes is private (0600); it is
given the mode a plainly created file gets (``0666`` less the umask: 0644
with the usual umask 022) before it is renamed into place, so a submission,
report or notebook is as readable as any other file the user writes.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask: from ``/proc/self/status`` where Linux has it, else by setting it and putting it back."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # another thread creating a file meanwhile would get the stricter 077: never a looser mode
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a newly created regular file: ``0o666`` less the umask."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """Mode of a newly created folder: ``0o777`` less the umask."""
    return 0o777 & ~umask()


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
        os.fchmod(fd, file_mode())
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


def scratch_room(need: int, base: str | os.PathLike | None = None) -> tuple[bool, int, Path]:
    """Whether ``need`` bytes of scratch files fit under ``base`` (default the system temp folder): at
    most half its free space, so a run never fills the disk the notebook writes to. Also returns
    the free bytes (0 when unreadable: nothing fits) and the folder, for the caller's message."""
    import shutil

    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = 0
    return need <= free / 2 and free > 0, free, root


def scratch_dir(kind: str, base: str | os.PathLike | None = None) -> Path:
    """A new private folder for a run's scratch files (``ninefit-<kind>-<pid>-*`` under ``base``, default the
    system temp folder), after removing those of processes that are gone (a run killed with ``kill -9``
    cannot remove its own: the next run does, so decoded images and spooled tables do not pile up)."""
    import shutil

    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    for old in root.glob(f"ninefit-{kind}-*-*"):
        parts = old.name.split("-")
        if len(parts) != 4 or not parts[2].isdigit() or int(parts[2]) == os.getpid() or not old.is_dir():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:  # alive, or not ours to signal: leave it
            pass
    return Path(tempfile.mkdtemp(prefix=f"ninefit-{kind}-{os.getpid()}-", dir=root))


__all__ = ["atomic_write", "file_mode", "folder_mode", "scratch_dir", "scratch_room", "umask"]
