"""GPU facts through NVML (nvidia-ml-py), imported lazily; None where absent.

Also whether this machine has a GPU at all (:func:`gpu_present`: NVML, else
the driver's ``/proc/driver/nvidia/gpus``, else ``nvidia-smi -L``), and :func:`device_mismatch`: the loud warning for a bundle
packaged for a GPU target whose models run on the CPU although a GPU is here
(the CPU build of onnxruntime installed, or onnxruntime-gpu unable to load
CUDA). ``NINEFIT_GPU_PRESENT=1`` (or ``0``) overrides the detection: it is
how tests on a machine without a GPU rehearse that case, and it is passed on
to the notebook by ``ninefit simulate``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.manifest import is_gpu_target
from runtime.settings import env_flag

if TYPE_CHECKING:
    from runtime.backends.base import Runner

#: Environment variable overriding GPU detection (1: a GPU is here, 0: none).
GPU_PRESENT_ENV = "NINEFIT_GPU_PRESENT"


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


def detect_gpu() -> tuple[bool, str]:
    """Whether this machine has a GPU, and how that was found, looked for now (no override, no cache):
    NVML, else the driver's ``/proc/driver/nvidia/gpus``, else ``nvidia-smi -L``."""
    count = gpu_count()
    if count:
        return True, f"NVML sees {count} GPU(s)"
    try:  # a GPU machine without nvidia-ml-py still has the driver's own listing
        listed = sorted(p.name for p in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        listed = []
    if listed:
        return True, f"the NVIDIA driver lists {len(listed)} GPU(s) in /proc/driver/nvidia/gpus"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False, "no GPU through NVML or the driver, and no nvidia-smi"
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"nvidia-smi -L failed ({exc})"
    gpus = [line for line in done.stdout.splitlines() if line.startswith("GPU ")]
    if done.returncode == 0 and gpus:
        return True, f"nvidia-smi lists {len(gpus)} GPU(s): {gpus[0].split(' (')[0]}"
    return False, f"nvidia-smi -L lists no GPU (exit {done.returncode})"


_detected = functools.lru_cache(maxsize=1)(detect_gpu)  # the hardware does not change during a process


def gpu_present() -> tuple[bool, str]:
    """Whether this machine has a GPU, and how that was found.

    ``NINEFIT_GPU_PRESENT`` (1/0) overrides the detection; else NVML, else the
    driver's own listing, else ``nvidia-smi -L`` (a driver without NVML
    bindings): :func:`detect_gpu`, once a process, lazily.

    Raises:
        UsageError: ``NINEFIT_GPU_PRESENT`` is not a boolean.
    """
    if os.environ.get(GPU_PRESENT_ENV, "").strip():
        present = env_flag(GPU_PRESENT_ENV)
        return present, f"{GPU_PRESENT_ENV}={os.environ[GPU_PRESENT_ENV].strip()}"
    return _detected()


def device_mismatch(target: str, runner: Runner) -> str | None:
    """The warning for a GPU-target bundle whose ``runner`` runs on the CPU while a GPU is here; else None."""
    if not is_gpu_target(target) or runner.device_kind() == "gpu" or getattr(runner, "cpu_by_design", False):
        return None
    present, how = gpu_present()
    if not present:
        return None
    cause = runner.cpu_cause()
    return (f"the bundle was packaged for {target} (a GPU target) and this machine has a GPU ({how}), "
            f"but the models run on the CPU: {runner.describe()}. "
            + (f"{cause}. " if cause else "")
            + "Expect it to be many times slower than estimated, and to cover fewer rows before the deadline.")


def gpu_memory_used(index: int = 0) -> int | None:
    """Bytes in use on GPU ``index`` (every process), or None without NVML."""
    nvml = _nvml()
    if nvml is None or index >= gpu_count():
        return None
    try:
        return int(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index)).used)
    except Exception:
        return None


__all__ = ["GPU_PRESENT_ENV", "GpuInfo", "detect_gpu", "device_mismatch", "gpu_count", "gpu_info", "gpu_memory_used",
           "gpu_present"]
