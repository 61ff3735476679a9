"""The machine a run ran on, as the run report records it (``machine``).

``ninefit estimate --calibrate`` folds a run report into the calibration of a
target only when the report ran on that target's device
(:mod:`packager.estimate.calibrate`): a CPU run's times say nothing of a T4,
nor an A100's of a T4. NVML names the GPUs; ``/proc/cpuinfo`` the CPU.
"""

from __future__ import annotations

import platform
import re
from typing import Any

from runtime.execute.lanes import usable_cores
from runtime.gpu import gpu_count, gpu_info


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s first ``model name``, else the platform's)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, Any]:
    """``{"cpu_model", "cores", "gpus"}``: the CPU, the cores this process may use, and the name of every GPU
    NVML sees (empty without NVML or GPUs)."""
    gpus = [info.name for info in (gpu_info(i) for i in range(gpu_count())) if info is not None]
    return {"cpu_model": cpu_model(), "cores": usable_cores(), "gpus": gpus}


__all__ = ["cpu_model", "describe_machine"]
