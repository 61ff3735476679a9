"""Which of the bundle's CPU rungs can run here: the others leave the ladder at the start of a run, said why.

int8, bf16 and OpenVINO rungs (``Variant.precision`` "int8"/"bf16", ``Variant.backend`` "openvino") are CPU
rungs. At the start of a run, before anything is probed or planned:

* on a GPU run they are left out: the GPU rungs are the ones to plan with (an int8 file on a CUDA session
  runs its quantize nodes on the CPU, and OpenVINO here runs on the CPU only);
* a rung bound to OpenVINO is left out where openvino is not installed;
* a bf16 rung is left out on a CPU without native bf16 (OpenVINO's OPTIMIZATION_CAPABILITIES, which
  reflects AVX-512 BF16 / AMX), never run emulated or silently in fp32.

What stays joins the ladder: probing measures it, the cost model prunes it when it is not cheaper than a
rung above it (:meth:`runtime.schedule.costs.CostModel.pruned_by`), and the planner uses it where its value
per second is the better buy.
"""

from __future__ import annotations

from dataclasses import replace

from runtime import backends
from runtime.manifest import Manifest, Member, Variant

#: Precisions that make a rung a CPU rung.
CPU_PRECISIONS = ("int8", "bf16")


def is_cpu_rung(v: Variant) -> bool:
    return v.precision in CPU_PRECISIONS or v.backend == "openvino"


def _why_not(v: Variant, gpu_run: bool, bf16: tuple[bool, str] | None) -> str:
    """Why the rung cannot run here ("" when it can)."""
    if gpu_run:
        return "a CPU rung, and this run is on the GPU"
    if v.backend == "openvino" and "openvino" not in backends.available():
        return f"its backend openvino {backends.unavailable().get('openvino', 'is not available')}"
    if v.precision == "bf16" and bf16 is not None and not bf16[0]:
        return f"this CPU has no native bf16 ({bf16[1]})"
    return ""


def runnable(manifest: Manifest, gpu_run: bool) -> tuple[Manifest, list[str]]:
    """The manifest with the CPU rungs that cannot run here removed, and one line for each removed."""
    bf16 = None
    if not gpu_run and "openvino" in backends.available() and any(
            v.precision == "bf16" for m in manifest.members for v in m.variants):
        from runtime.backends.openvino import native_bf16

        try:
            bf16 = native_bf16()
        except Exception as exc:  # OpenVINO itself fails to start: its rungs cannot run
            bf16 = (False, f"OpenVINO failed to start: {type(exc).__name__}: {exc}")
    notes: list[str] = []
    members: list[Member] = []
    for m in manifest.members:
        kept = [m.variants[0]]
        for v in m.variants[1:]:
            why = _why_not(v, gpu_run, bf16) if is_cpu_rung(v) else ""
            if why:
                notes.append(f"{m.name}/{v.name} ({v.precision}{', ' + v.backend if v.backend else ''}) left out of "
                             f"the ladder: {why}")
            else:
                kept.append(v)
        members.append(replace(m, variants=tuple(kept)) if len(kept) < len(m.variants) else m)
    return (replace(manifest, members=tuple(members)) if notes else manifest), notes


__all__ = ["CPU_PRECISIONS", "is_cpu_rung", "runnable"]
