"""Atomic file writes: a reader (or a crash) sees the old file or the whole new one, never a torn one.

The temporary file :func:`tempfile.mkstemp` makes is private (0600); it is
given the mode a plainly created file gets (``0666`` less the umask: 0644
with the usual umask 022) before it is renamed into place, so a submission,
report or notebook is as readable as any other file the user writes.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Callable

from runtime.errors import StorageError

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


#: errno values that mean the machine's disk, not the data: no room, or no right to write there.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_RIGHT = {errno.EACCES, errno.EPERM, errno.EROFS}


def free_space(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(free, total)`` bytes of the filesystem holding ``path`` (its nearest existing folder); None if unreadable."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    return usage.free, usage.total


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def storage_error(exc: OSError, path: str | os.PathLike, what: str, remedy: str) -> StorageError | None:
    """The :class:`StorageError` for a failed write of ``what`` at ``path``; None when ``exc`` is no disk problem.

    A full disk (``ENOSPC``, a quota, numpy's short write "N requested and M
    written") and a folder the process may not write (``EACCES``, ``EPERM``,
    ``EROFS``) are the machine's, said with the free space and ``remedy``.
    """
    short = exc.errno is None and "requested and" in str(exc) and "written" in str(exc)
    if exc.errno not in _NO_ROOM | _NO_RIGHT and not short:
        return None
    room = free_space(path)
    where = f"{_size(room[0])} free of {_size(room[1])} there" if room else "free space unknown"
    if exc.errno in _NO_RIGHT:
        why = f"{exc.strerror or exc} (the folder is not writable by this process)"
    else:
        why = f"no space left on the device ({where})"
    return StorageError(f"could not write {what} {os.fsdecode(path)}: {why}. {remedy}".rstrip())


@contextlib.contextmanager
def guarded(path: str | os.PathLike, what: str, remedy: str) -> Iterator[None]:
    """Turn a disk or permission failure inside the block into a :class:`StorageError` (:func:`storage_error`)."""
    try:
        yield
    except OSError as exc:
        error = storage_error(exc, path, what, remedy)
        if error is None:
            raise
        raise error from exc


def full_write(fd: int, data: bytes, offset: int) -> None:
    """``os.pwrite`` all of ``data`` at ``offset``; a write that stops short (a full disk) raises ``ENOSPC``."""
    done = 0
    while done < len(data):
        n = os.pwrite(fd, data[done:], offset + done)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object], *, fsync: bool = True,
                 what: str = "the file", remedy: str = "Free some space there, or write to another folder.") -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    Args:
        path: Destination; its folder is created if needed.
        data: Bytes, text (UTF-8), or a function writing to the open binary file.
        fsync: Flush to disk before the rename, so a power loss cannot leave an
            empty file under the final name.
        what: The file in words, for the message when the disk is full or not writable.
        remedy: What the user can do then.

    Raises:
        StorageError: No space left, or the folder is not writable (the old
            file, if any, is left as it was).
    """
    path = Path(path)
    with guarded(path, what, remedy):
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
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = 0
    return need <= free / 2 and free > 0, free, root


def sweep_dead(root: str | os.PathLike, prefix: str) -> list[tuple[Path, int]]:
    """Remove the folders ``<prefix><pid>-*`` in ``root`` whose process is gone; returns them with their sizes.

    A process killed with ``kill -9`` cannot remove its own temporary folders:
    the next one to make such a folder does. A folder of a live process (or one
    not ours to signal) is left alone.
    """
    removed = []
    for old in Path(root).glob(f"{glob.escape(prefix)}*-*"):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not old.is_dir() or not process_gone(int(pid)):
            continue
        size = sum(p.stat().st_size for p in old.rglob("*") if p.is_file())
        shutil.rmtree(old, ignore_errors=True)
        removed.append((old, size))
    return removed


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists (one that is alive, or not ours to signal, is not gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def scratch_dir(kind: str, base: str | os.PathLike | None = None) -> Path:
    """A new private folder for a run's scratch files (``ninefit-<kind>-<pid>-*`` under ``base``, default the
    system temp folder), after removing those of processes that are gone (:func:`sweep_dead`), so decoded
    images and spooled tables do not pile up."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    sweep_dead(root, f"ninefit-{kind}-")
    return Path(tempfile.mkdtemp(prefix=f"ninefit-{kind}-{os.getpid()}-", dir=root))


#: What to do when the run's scratch files (table and image spools) find no room.
SCRATCH_REMEDY = ("Set TMPDIR to a folder on a disk with room (the run's scratch files go there), or free some space "
                  "there.")

__all__ = ["SCRATCH_REMEDY", "atomic_write", "file_mode", "folder_mode", "free_space", "full_write", "guarded", "scratch_dir",
           "process_gone", "scratch_room", "storage_error", "sweep_dead", "umask"]
