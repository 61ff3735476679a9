"""Which backend each member really ran on, its GPU memory, and the loud warnings.

A run that quietly fell from the GPU to the CPU is the classic lost Kaggle
submission (it times out hours later), so the report says, per member, the
backend it ended on, every backend passed over with the reason, and warns
when a bundle packaged for a GPU target ran a member on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.backends.base import Runner
from runtime.progress import log
from runtime.report import RunReport

#: ``Manifest.target`` values that are not GPU notebooks.
CPU_TARGETS = ("", "cpu", "local")


def _unwrap(runner: Runner) -> tuple[str, Runner, list[tuple[str, str]]]:
    """(label of the backend used, the runner doing the work, steps passed over)."""
    inner = getattr(runner, "inner", None)
    if inner is not None:
        return getattr(runner, "used", "") or type(inner).__name__, inner, list(getattr(runner, "attempts", []))
    return runner.describe().split(" ")[0], runner, []


def record_backends(report: RunReport, runners: Mapping[str, Sequence[Runner]], target: str = "") -> None:
    """Fill each member's backend fields from the runners it loaded; warn on a GPU target run on the CPU."""
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
        if target not in CPU_TARGETS and mr.device == "cpu":
            why = "; ".join(f for f in mr.fallbacks if "skipped: no GPU here" not in f) or "no GPU was visible"
            text = (f"{mr.name} ran on the CPU ({label}) although the bundle targets {target}, a GPU notebook: "
                    f"{why}. On Kaggle this is the path that times out; check the notebook's accelerator setting "
                    "and the bundle's GPU wheels")
            if text not in report.warnings:
                report.warnings.append(text)
                log(f"WARNING: {text}")


__all__ = ["CPU_TARGETS", "record_backends"]
