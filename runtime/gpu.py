"""GPU facts through NVML (nvidia-ml-py), imported lazily; None where absent."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_total: int
    memory_used: int


@functools.lru_cache(maxsize=1)
def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no GPU: all mean "no NVML here"
        return None


def gpu_count() -> int:
    nvml = _nvml()
    if nvml is None:
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return 0


def gpu_info(index: int = 0) -> GpuInfo | None:
    """Name, compute capability and memory of GPU ``index``, or None without NVML."""
    nvml = _nvml()
    if nvml is None or index >= gpu_count():
        return None
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(h)
    name = name.decode() if isinstance(name, bytes) else str(name)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(h)
    mem = nvml.nvmlDeviceGetMemoryInfo(h)
    return GpuInfo(index, name, (int(major), int(minor)), int(mem.total), int(mem.used))


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, without importing torch or onnxruntime.

    NVML where it is installed, else the driver's own listing (a GPU machine
    without nvidia-ml-py still has ``/proc/driver/nvidia/gpus/<bus id>``).
    """
    if gpu_count():
        return True
    try:
        return any(Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return False


def gpu_memory_used(index: int = 0) -> int | None:
    """Bytes in use on GPU ``index`` (every process), or None without NVML."""
    nvml = _nvml()
    if nvml is None or index >= gpu_count():
        return None
    try:
        return int(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index)).used)
    except Exception:
        return None


__all__ = ["GpuInfo", "gpu_count", "gpu_info", "gpu_memory_used", "gpu_present"]
