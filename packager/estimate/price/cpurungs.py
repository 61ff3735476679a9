"""How the estimate treats a bundle's CPU rungs (int8, bf16, OpenVINO) on its target, and what it assumed.

A CPU rung (:func:`runtime.schedule.rungs.is_cpu_rung`) is priced like any variant: from the profile, which
measured it here as the runtime runs it (``load_runner``: an int8 file on onnxruntime's CPU provider, an
OpenVINO rung on OpenVINO at its precision), translated to the target's CPU by the clock and cores as the fp32
rung is. What that cannot see is the instruction set: an int8 rung measured with AVX-512 VNNI or AMX-INT8 gains
less on a CPU that has only AVX2 (``vpmaddubsw``), and a bf16 rung does not run at all on a CPU without native
bf16 (the runtime leaves it out at run start). So:

* on a GPU target every CPU rung is left out of the plan (the runtime leaves them out of a GPU run);
* a bf16 rung is left out on a CPU target not known to have native bf16 (AVX-512 BF16 or AMX-BF16);
* every other CPU rung is priced, and the plan names the instruction sets its speed was measured with and
  those the target is known to have (Kaggle's CPU notebook: :data:`~packager.estimate.price.hardware.KAGGLE_CPU_FLAGS`,
  from users' reports).
"""

from __future__ import annotations

from collections.abc import Iterable

from packager.estimate.measure.machine import parse_cpuinfo, read_cpuinfo
from packager.estimate.price.hardware import KAGGLE_CPU_FLAGS, Hardware
from runtime.manifest import Member, Variant
from runtime.profile import Profile
from runtime.schedule.rungs import is_cpu_rung

#: The flags that give a rung of each precision its native speed.
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_NAMES = {"amx_int8": "AMX-INT8", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_bf16": "AMX-BF16",
          "avx512_bf16": "AVX-512 BF16", "avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512F"}


def _show(flags: Iterable[str]) -> str:
    return ", ".join(_NAMES.get(f, f) for f in sorted(flags)) or "none of them"


def target_flags(target: Hardware) -> tuple[set[str] | None, str]:
    """(the target CPU's known flags, where that comes from); None where not known."""
    if target.key == "cpu":
        return set(KAGGLE_CPU_FLAGS), "Kaggle's CPU notebook (Intel Xeon @ 2.20GHz, AVX2 and FMA in users' reports)"
    if target.key == "local":
        return parse_cpuinfo(read_cpuinfo())[2], "this machine's /proc/cpuinfo"
    return None, f"{target.name}'s host CPU (not known)"


def measured_flags(profile: Profile) -> tuple[set[str] | None, str]:
    """(the int8/bf16 flags of the CPU the profile was measured on, its name); None: an older profile."""
    fp = profile.fingerprint
    if fp.cpu_isa is None:
        return None, fp.cpu_model or "the profiling CPU"
    return {f for f in fp.cpu_isa.split(",") if f}, fp.cpu_model or "the profiling CPU"


def left_out(variant: Variant, target: Hardware) -> str:
    """Why the runtime would leave this CPU rung out on ``target`` ("" where it runs, or is no CPU rung)."""
    if not is_cpu_rung(variant):
        return ""
    if target.kind == "gpu":
        return "a CPU rung, and the runtime plans a GPU run with the GPU rungs"
    if variant.precision == "bf16":
        flags, where = target_flags(target)
        if flags is None or not flags & set(BF16_FLAGS):
            return (f"a bf16 rung runs only on a CPU with native bf16 ({_show(BF16_FLAGS)}), and {where} has "
                    f"{_show(flags & set(BF16_FLAGS)) if flags is not None else 'no known bf16'}")
    return ""


def assumption(member: Member, variant: Variant, target: Hardware, profile: Profile) -> str:
    """The note naming the instruction sets a priced CPU rung's speed assumes ("" for other rungs)."""
    if not is_cpu_rung(variant) or target.kind == "gpu":
        return ""
    wanted = INT8_FLAGS if variant.precision == "int8" else BF16_FLAGS if variant.precision == "bf16" else ()
    here, model = measured_flags(profile)
    there, where = target_flags(target)
    rung = f"{member.name}/{variant.name} ({variant.precision}{', ' + variant.backend if variant.backend else ''})"
    if not wanted:  # OpenVINO fp32: the same fp32 kernels' family as onnxruntime's
        return f"{rung} priced from its profile measured on {model}, as fp32 work"
    measured = _show(here & set(wanted)) if here is not None else "not recorded (a profile from before schema 7)"
    note = (f"{rung} priced assuming {measured} as on the CPU it was profiled on ({model}); "
            f"{where}: {_show(there & set(wanted)) if there is not None else 'instruction sets not known'}")
    if there is not None and here is not None and (here & set(wanted)) and not (there & set(wanted)):
        gain = ("int8 matrix products on AVX2 (vpmaddubsw) instead: expect less of the measured gain"
                if variant.precision == "int8" else "no native bf16: the runtime leaves the rung out there")
        note += f" ({gain}; `ninefit estimate --calibrate` with a run report from there corrects it)"
    return note


def rung_notes(members: Iterable[Member], target: Hardware, profile: Profile) -> tuple[str, ...]:
    """One line per CPU rung of the bundle: left out of the plan and why, or what its price assumed."""
    out = []
    for m in members:
        for v in m.variants:
            why = left_out(v, target)
            if why:
                out.append(f"{m.name}/{v.name} ({v.precision}) left out of the plan: {why}")
            else:
                text = assumption(m, v, target, profile)
                if text:
                    out.append(text)
    return tuple(out)


__all__ = ["BF16_FLAGS", "INT8_FLAGS", "assumption", "left_out", "measured_flags", "rung_notes", "target_flags"]
