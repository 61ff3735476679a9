"""Where a profile was measured, and how its host work scales to the target.

:func:`measured_on` tells whether the target is the very machine (and device) the profile was
measured on (then the figures stand, +-10 %), and otherwise by which clock ratio host work
(reading, preprocessing, writing...) scales from there to the target, with the note the estimate
shows for it. :func:`hardware_of` rebuilds the measuring machine from the profile's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from packager.estimate.measure.machine import fingerprint
from packager.estimate.price.hardware import KAGGLE_HOST_MHZ, Hardware, detect_local, from_fingerprint
from runtime.profile import Fingerprint, Profile


@dataclass(frozen=True)
class MeasuredOn:
    """Where the profile was measured, and how host work scales to the target."""

    source: Hardware
    same: bool  # the target is the very machine (and device) that was measured
    host_ratio: float
    notes: tuple[str, ...] = ()


def same_machine(fp: Fingerprint) -> bool:
    """Whether a profile fingerprint describes this machine (CPU, cores and GPUs)."""
    here = fingerprint()
    return (fp.cpu_model == here.cpu_model and fp.cpu_threads == here.cpu_threads
            and [g.name for g in fp.gpus] == [g.name for g in here.gpus])


def hardware_of(fp: Fingerprint) -> Hardware:
    """The :class:`Hardware` a profile was measured on: this machine, detected, when the
    fingerprint is this machine's, else :func:`~packager.estimate.price.hardware.from_fingerprint`."""
    if same_machine(fp):
        return detect_local(use_gpu=(fp.device or "cpu") == "gpu")
    return from_fingerprint(fp)


def measured_on(profile: Profile, target: Hardware) -> MeasuredOn:
    """Where ``profile`` was measured, against ``target``: the same machine, or the clock ratio of host work."""
    fp = profile.fingerprint
    source = hardware_of(fp)
    here = same_machine(fp)
    if target.key == "local":
        same = here and (target.kind == source.kind)
        target_mhz = float(fingerprint().cpu_mhz or 0) if not here else float(fp.cpu_mhz or 0) or 1.0
    else:
        same = False
        target_mhz = KAGGLE_HOST_MHZ
    ratio = 1.0 if same else float(fp.cpu_mhz or KAGGLE_HOST_MHZ) / target_mhz
    notes = () if same else (f"host work scaled by the clock ratio x{ratio:.2f} "
                             f"({fp.cpu_mhz or '?'} MHz here, {target_mhz:.0f} MHz there)",)
    return MeasuredOn(source=source, same=same, host_ratio=ratio, notes=notes)


__all__ = ["MeasuredOn", "hardware_of", "measured_on", "same_machine"]
