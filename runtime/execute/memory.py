"""Host and GPU memory: what is used, what is left, and the peaks of a run.

A notebook killed for memory scores nothing ("Notebook Exceeded Allowed
Compute"), and the kernel's OOM killer sends no exception to catch. So the
executor watches the headroom and shrinks batches before the limit, and the
run report records the peaks.

The RAM limit is the smaller of the machine's memory (psutil) and the
container's cgroup limit, since a notebook's container may be given less than
the host has. GPU memory comes from NVML where present (:mod:`runtime.gpu`).
psutil and pynvml are imported lazily; without them the numbers are None.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Where this container's memory cgroup says its limit and its use: ``(limit file, used file)``, v2 then v1.
CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),  # cgroup v2
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),  # v1
)
#: A cgroup "limit" at or above this is no limit (v1 writes a huge number).
_UNLIMITED = 1 << 60


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_memory() -> tuple[int | None, int | None]:
    """(limit, used) bytes of this container's memory cgroup; None where unknown or unlimited."""
    for limit_file, used_file in CGROUP_FILES:
        if limit_file.exists():
            limit = _read_int(limit_file)
            return (limit if limit is not None and limit < _UNLIMITED else None), _read_int(used_file)
    return None, None


def peak_rss() -> int:
    """Peak resident memory of this process, in bytes (kernel-tracked, no sampling gaps)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass(frozen=True)
class MemorySnapshot:
    """One reading; None where the number is not available here."""

    rss: int | None  # this process
    ram_used: int | None  # the machine, or the container where it has a limit
    ram_limit: int | None
    gpu_used: int | None  # the whole device, every process
    gpu_total: int | None

    @property
    def ram_free(self) -> int | None:
        if self.ram_used is None or self.ram_limit is None:
            return None
        return self.ram_limit - self.ram_used


@functools.lru_cache(maxsize=1)
def _this_process():
    import psutil

    return psutil.Process()


def snapshot(device_id: int | None = 0) -> MemorySnapshot:
    """Read RAM (psutil, cgroup) and GPU memory (NVML) now."""
    rss = used = limit = None
    try:
        import psutil

        vm = psutil.virtual_memory()
        rss = _this_process().memory_info().rss
        used, limit = vm.total - vm.available, vm.total
    except ImportError:
        pass
    cg_limit, cg_used = cgroup_memory()
    if cg_limit is not None and (limit is None or cg_limit < limit):
        limit, used = cg_limit, cg_used
    gpu_used = gpu_total = None
    if device_id is not None:
        from runtime.gpu import gpu_info

        try:
            info = gpu_info(device_id)
        except Exception:  # NVML errors on odd drivers mean "unknown", never a failed run
            info = None
        if info is not None:
            gpu_used, gpu_total = info.memory_used, info.memory_total
    return MemorySnapshot(rss, used, limit, gpu_used, gpu_total)


def _device_used(device_id: int) -> int | None:
    """GPU memory used on one device (NVML; None when unknown)."""
    from runtime.gpu import gpu_memory_used

    try:
        return gpu_memory_used(device_id)
    except Exception:  # NVML errors on odd drivers mean "unknown", never a failed run
        return None


class MemoryMonitor:
    """Samples memory in a background thread and keeps the peaks.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. The
    executor also calls :meth:`sample` between batches.

    Args:
        device_id: GPU to watch, or None for host memory only.
        devices: More GPUs to watch (the lanes' devices); each one's peak is
            in :attr:`peak_gpu_by_device` (``device_id``'s too).
        interval_s: Seconds between background samples.
        low_fraction: :meth:`low_on_ram` is true when less than this share of
            the RAM limit is free ...
        low_bytes: ... or less than this many bytes, whichever is more.
    """

    def __init__(self, device_id: int | None = 0, interval_s: float = 0.5, *,
                 low_fraction: float = 0.05, low_bytes: int = 256 << 20, devices: tuple[int, ...] = ()):
        self.device_id = device_id
        self.devices = tuple(d for d in dict.fromkeys(devices) if d != device_id)
        self.peak_gpu_by_device: dict[int, int] = {}
        self.interval_s = interval_s
        self.low_fraction, self.low_bytes = low_fraction, low_bytes
        self.peak_rss = 0
        self.peak_ram_used: int | None = None
        self.peak_gpu_used: int | None = None
        self.last: MemorySnapshot | None = None
        self._sampled_at = 0.0  # time.monotonic() of self.last
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> MemorySnapshot:
        s = snapshot(self.device_id)
        with self._lock:
            self.last, self._sampled_at = s, time.monotonic()
            self.peak_rss = max(self.peak_rss, s.rss or 0, peak_rss())
            if s.ram_used is not None:
                self.peak_ram_used = max(self.peak_ram_used or 0, s.ram_used)
            if s.gpu_used is not None and self.device_id is not None:  # (no device: no GPU reading)
                self.peak_gpu_used = max(self.peak_gpu_used or 0, s.gpu_used)
                self.peak_gpu_by_device[self.device_id] = max(self.peak_gpu_by_device.get(self.device_id, 0),
                                                              s.gpu_used)
        for d in self.devices:  # GPU memory is read per device: each lane's GPU on its own
            used = _device_used(d)
            if used is not None:
                with self._lock:
                    self.peak_gpu_by_device[d] = max(self.peak_gpu_by_device.get(d, 0), used)
        return s

    def low_on_ram(self, max_age_s: float = 0.0) -> bool:
        """Whether free RAM is below the threshold (False when unknown); a sample at most
        ``max_age_s`` old is reused (the executor asks after every chunk, on every lane)."""
        with self._lock:
            recent = self.last if self.last is not None and time.monotonic() - self._sampled_at <= max_age_s else None
        s = recent or self.sample()
        free = s.ram_free
        if free is None:
            return False
        return free < max(self.low_bytes, self.low_fraction * (s.ram_limit or 0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> MemoryMonitor:
        self.sample()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ninefit-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        self.sample()

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["CGROUP_FILES", "MemoryMonitor", "MemorySnapshot", "cgroup_memory", "peak_rss", "snapshot"]
