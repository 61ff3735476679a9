"""Which backend each member really ran on, and its GPU memory.

A run that quietly fell from the GPU to the CPU is the classic lost Kaggle
submission (it times out hours later), so the report says, per member, the
backend it ended on and every backend passed over with the reason; the loud
warning itself comes from :func:`runtime.gpu.device_mismatch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.backends.base import Runner
from runtime.machine import describe_machine
from runtime.output.report import RunReport


def _unwrap(runner: Runner) -> tuple[str, Runner, list[tuple[str, str]]]:
    """(label of the backend used, the runner doing the work, steps passed over)."""
    inner = getattr(runner, "inner", None)
    if inner is not None:
        return getattr(runner, "used", "") or type(inner).__name__, inner, list(getattr(runner, "attempts", []))
    return runner.describe().split(" ")[0], runner, []


def record_backends(report: RunReport, runners: Mapping[str, Sequence[Runner]], target: str = "") -> None:
    """Fill each member's backend fields from the runners it loaded.

    A GPU target that ends on the CPU is warned about where it happens
    (:func:`runtime.gpu.device_mismatch`, in ``device_warnings``); here each
    member's report says which backend it ended on and why the others failed.
    The report's ``machine`` names the CPU and GPUs it ran on
    (:func:`runtime.machine.describe_machine`).
    """
    report.machine = describe_machine()
    for mr in report.members:
        loaded = [r for r in runners.get(mr.name, ()) if getattr(r, "used", True)]  # a chain that found none is left out
        if not loaded:
            continue
        label, inner, attempts = _unwrap(loaded[-1])
        mr.backend_used, mr.device = label, inner.device_kind()
        mr.fallbacks = [f"{step}: {reason}" for step, reason in attempts]
        peaks = [p for p in (getattr(r, "peak_gpu_bytes", None) for r in loaded) if p]
        if peaks:
            mr.gpu_peak_bytes = max(peaks)
            mr.gpu_memory_source = getattr(loaded[-1], "gpu_memory_source", "") or "torch.cuda.max_memory_allocated"


__all__ = ["record_backends"]
