"""This machine, as it measures: its CPU, cores, RAM, GPUs and inference stack.

:func:`fingerprint` describes it, to store with a measured profile (``manifest.profile.fingerprint``);
the pricing side (:mod:`packager.estimate.price.hardware`) rebuilds a :class:`Hardware` from it, or
from these same readings for ``--target local``. torch is imported lazily and only to describe a GPU.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re

from runtime.profile import Fingerprint

#: A CPU's clock when neither psutil nor /proc/cpuinfo tells it.
DEFAULT_MHZ = 2000.0


def parse_cpuinfo(text: str) -> tuple[str, float | None, set[str]]:
    """Return (model name, highest "cpu MHz" or the "@ x GHz" in the name, flags)."""
    model = next(iter(re.findall(r"^model name\s*:\s*(.+)$", text, re.M)), platform.processor())
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    named = re.search(r"@\s*([\d.]+)\s*GHz", model)
    freq = max(mhz) if mhz else (float(named.group(1)) * 1000 if named else None)
    flags_line = next(iter(re.findall(r"^flags\s*:\s*(.+)$", text, re.M)), "")
    return model.strip(), freq, set(flags_line.split())


def read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def host_ram() -> float:
    try:
        import psutil

        return float(psutil.virtual_memory().total)
    except ImportError:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def cpu_mhz(cpuinfo_mhz: float | None) -> float:
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq and (freq.max or freq.current):
            return float(freq.max or freq.current)
    except (ImportError, NotImplementedError, OSError):
        pass
    return cpuinfo_mhz or DEFAULT_MHZ


def cuda_devices() -> list[dict[str, object]]:
    """Name, capability and memory of each visible CUDA GPU; [] without torch or CUDA."""
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append({"name": props.name, "capability": (props.major, props.minor),
                    "memory_bytes": props.total_memory, "sms": props.multi_processor_count})
    return out


#: /proc/cpuinfo flags that decide how fast int8 and bf16 rungs run (Fingerprint.cpu_isa).
LOW_PRECISION_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


def fingerprint() -> Fingerprint:
    """Describe this machine and its inference stack, to store with a measured profile."""
    model, mhz, flags = parse_cpuinfo(read_cpuinfo())
    simd = next((f for f in ("avx512f", "avx2", "avx", "neon", "asimd") if f in flags), "none")
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    versions = {}
    for dist in ("numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "openvino"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return Fingerprint.from_dict({
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cpu_mhz": cpu_mhz(mhz),
        "cpu_simd": simd,
        "cpu_fma": "fma" in flags,
        "cpu_isa": ",".join(sorted(f for f in flags if f in LOW_PRECISION_FLAGS)),
        "cpu_cores_physical": physical,
        "cpu_threads": local_cores(),
        "host_ram_bytes": host_ram(),
        "gpus": [{**g, "capability": list(g["capability"])} for g in cuda_devices()],  # type: ignore[call-overload]
        "versions": versions,
    })


__all__ = ["DEFAULT_MHZ", "LOW_PRECISION_FLAGS", "cpu_mhz", "cuda_devices", "fingerprint", "host_ram", "local_cores", "parse_cpuinfo",
           "read_cpuinfo"]
