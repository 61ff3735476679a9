"""Fold real runs on a target into that target's calibration.

A run report (``run_report.json`` from ``ninefit run`` or the deadline-aware
runtime; read fields: ``members[].name``, ``variant``, ``rows``, ``seconds``,
``load_seconds``, ``status``, and when present ``rows_computed``,
``warmup_seconds``, ``warmup_rows``, ``batch_size``) gives, per member, the
seconds its rows took on the target. The runtime books them in disjoint parts
(:class:`runtime.output.report.MemberReport`): ``load_seconds`` (load and activate),
``warmup_seconds`` (the first batch after each load, ``warmup_rows`` rows) and
``seconds`` (every other batch). Each is compared with the *uncalibrated*
estimate of the same member and variant, like with like:

* inference: ``seconds`` against the inference item for the rows after the
  warm-up (``rows_computed - warmup_rows``), the steady per-batch path;
* load: ``load_seconds + warmup_seconds`` against the load item (set-up plus
  the first call's extra cost) plus the steady cost of the warm-up rows.

and the ratio is added to a :class:`~packager.estimate.price.roofline.Calibration`:

* per member, keyed ``name:sha256[:12]`` of its first variant's ONNX file (the
  same graph on the same target), applied to that member's inference;
* target-wide (``"all"``), every member's ratio: applied to members that have
  no record of their own (e.g. another bundle);
* ``"setup"``: the load ratio (when either side is at least ``MIN_LOAD_S``),
  applied to every member's load.

On a GPU target priced by the GPU model fitted to published figures
(:mod:`packager.estimate.price.gpuprice`), each member's run is also an *observation* of that model:
its graph's work per call, the GPU, precision and backend it ran with (``backend_used``) and the
seconds per call on the device (the run's seconds less the host work the estimate holds). The
observations are kept with the store (``gpu_observations``, every target's) and the model is refitted
on them with the table (:func:`packager.estimate.price.gpufit.current_fit`): the same fitted
efficiencies the table gave, updated, for every member and bundle. A member's own ratio still
applies to its own graph (on the fit without the runs, so nothing counts twice); the target-wide
``all`` ratio does not apply to GPU-fitted members (the refit is what generalises a run). The
report lists, per member, the estimate against the actual, and what the refit makes of it.

Only a run on the target's device calibrates it (:func:`check_device`): the
report's ``machine`` (its CPU and GPUs) and each member's ``device`` must be
the target's. A CPU run folded into a T4 target would scale every GPU figure by
a CPU's speed: such a report is refused with the reason (exit status 2), and a
member of a GPU run that fell back to the CPU is left out, said so. A report
without those fields (an older ninefit) is used on the word of the user, with a
note saying so.

Storage: one JSON file, by default ``$XDG_CACHE_HOME/ninefit/calibration.json``
(``~/.cache/ninefit/calibration.json``), so a calibration made with one
bundle helps the next; ``--calibration FILE`` picks another file (e.g. one
kept with the bundle's sources). Written atomically. A report already folded
(same sha256) is not counted twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packager.estimate.price.costing import Costing
from packager.estimate.price.gpufit import Observation as GpuObservation
from packager.estimate.price.gpuprice import RUN_BACKENDS, backend_for, observation
from packager.estimate.price.hardware import TARGETS, Hardware, get_target, known_gpu
from packager.estimate.price.items import EstimateOptions
from packager.estimate.price.roofline import Calibration
from runtime.errors import DataError
from runtime.fileio import atomic_write
from runtime.manifest import Manifest

CALIBRATION_VERSION = 1
#: Load times below this (estimated and measured) are not folded into the calibration.
MIN_LOAD_S = 0.25
_USABLE = ("done", "partial", "degraded")


def default_calibration_path() -> Path:
    """``$XDG_CACHE_HOME/ninefit/calibration.json``, else ``~/.cache/ninefit/calibration.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ninefit" / "calibration.json"


def member_key(manifest: Manifest, name: str) -> str:
    """``name:sha256[:12]`` of the member's first variant file (``name`` alone if unknown)."""
    member = manifest.member(name)
    sha = manifest.files.get(member.variants[0].file, "") if member.variants else ""
    return f"{name}:{sha[:12]}" if sha else name


class CalibrationStore:
    """Calibrations per target, in one JSON file."""

    def __init__(self, path: str | os.PathLike, data: dict[str, Any] | None = None):
        self.path = Path(path)
        self.data = data or {"version": CALIBRATION_VERSION, "targets": {}}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> CalibrationStore:
        """Read ``path`` (default :func:`default_calibration_path`); a missing file is empty.

        Raises:
            DataError: The file exists but is not a calibration file.
        """
        path = Path(path) if path is not None else default_calibration_path()
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
                raise ValueError("no 'targets' object")
        except (ValueError, OSError) as exc:
            raise DataError(f"calibration file {path} is not readable ({exc}); expected the JSON that "
                            "`ninefit estimate --calibrate` writes (delete it to start over)") from exc
        return cls(path, data)

    def save(self) -> None:
        """Write the file atomically (``runtime.fileio.atomic_write``), creating its folder."""
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True))

    def _target(self, target: str) -> dict[str, Any]:
        return self.data["targets"].setdefault(target.strip().lower(), {"members": {}, "reports": []})

    def _get(self, target: str, *path: str) -> Calibration | None:
        node: Any = self.data["targets"].get(target.strip().lower())
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return Calibration.from_dict(node) if isinstance(node, dict) else None

    def for_member(self, target: str, manifest: Manifest, name: str) -> Calibration | None:
        """The member's own calibration on ``target``, else the target-wide one."""
        own = self._get(target, "members", member_key(manifest, name), "calibration")
        return own if own is not None and own.count else self._get(target, "all")

    def own(self, target: str, manifest: Manifest, name: str) -> Calibration | None:
        """The member's own calibration on ``target`` (None without one: no target-wide fallback)."""
        own = self._get(target, "members", member_key(manifest, name), "calibration")
        return own if own is not None and own.count else None

    def gpu_observations(self) -> tuple[GpuObservation, ...]:
        """Every GPU run folded in (all targets), as observations for the GPU model's fit.

        Raises:
            DataError: An observation in the file is damaged.
        """
        try:
            return tuple(GpuObservation.from_json(o["observation"]) for o in self.data.get("gpu_observations", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"calibration file {self.path}: a GPU observation is damaged ({exc!r}); expected what "
                            "`ninefit estimate --calibrate` writes (delete the file to start over)") from exc

    def for_setup(self, target: str) -> Calibration | None:
        """The calibration of load times on ``target``."""
        return self._get(target, "setup")

    def _update(self, node: dict[str, Any], key: str, target: str, member: str | None,
                estimated: float, actual: float) -> Calibration:
        old = Calibration.from_dict(node[key]) if key in node else Calibration(target=target, member=member)
        new = old.update(estimated, actual)
        node[key] = new.to_dict()
        return new


@dataclass(frozen=True)
class Observation:
    """One member of a run report compared with its estimate."""

    member: str
    variant: str
    what: str  # "inference" or "load"
    rows: int
    estimated_s: float
    actual_s: float

    @property
    def ratio(self) -> float:
        return self.actual_s / self.estimated_s

    def line(self) -> str:
        return (f"{self.member}/{self.variant} {self.what}: estimated {self.estimated_s:.3g} s, measured "
                f"{self.actual_s:.3g} s for {self.rows} rows (x{self.ratio:.3f})")


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """Load a run report; :class:`DataError` naming the expected fields if it is not one."""
    path = Path(path)
    expected = ("expected the run_report.json that `ninefit run` writes, with members[].name, variant, rows, "
                "seconds, load_seconds, status")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"run report {path} not found; {expected}") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"run report {path} is not JSON ({exc}); {expected}") from exc
    members = report.get("members") if isinstance(report, dict) else None
    if not isinstance(members, list) or not all(isinstance(m, dict) and "name" in m for m in members):
        raise DataError(f"run report {path} has no members list; {expected}")
    return report


def _here() -> tuple[str, int]:
    """This machine's CPU model and usable cores, as a run report of a run here records them."""
    from runtime.execute.lanes import usable_cores
    from runtime.machine import cpu_model

    return cpu_model(), usable_cores()


def _target_hardware(target: str) -> Hardware:
    """The target as the estimate prices it (``local``: this machine, its GPU where torch sees one)."""
    return get_target(target)


def _gpu_model(name: str) -> str:
    """A GPU's model as the catalog names it (``Tesla T4`` -> ``NVIDIA T4``), else the name itself."""
    known = known_gpu(name)
    return known.device_name if known is not None else name


def check_device(report: dict[str, Any], options: EstimateOptions, path: str | os.PathLike = "run report") -> str:
    """Check that ``report`` ran on the device of ``options.target``; returns a line saying where it ran.

    The run's device is its members' (``device``, where the run recorded which backend each ended on)
    and its ``machine``: the GPU model must be the target's (a T4 for ``t4x2``), a CPU run calibrates
    a CPU target only; ``local`` is this machine (same CPU model and cores, same GPU), and the Kaggle
    ``cpu`` target is not this machine. Members that ran elsewhere than the rest are left out by
    :func:`calibrate`, not here.

    Raises:
        DataError: The report ran on another device than the target's, with where it ran and what to do.
    """
    target = options.target.strip().lower()
    hw = _target_hardware(target)
    raw = report.get("machine")
    machine: dict[str, Any] = raw if isinstance(raw, dict) else {}
    devices = {str(m.get("device")) for m in report["members"] if isinstance(m, dict) and m.get("device")}
    gpus = [str(g) for g in machine.get("gpus") or []]
    kind = "gpu" if "gpu" in devices else "cpu" if devices else ("gpu" if gpus else "cpu" if machine else "")
    cpu, cores = str(machine.get("cpu_model") or ""), machine.get("cores")
    where = (f"the GPU ({', '.join(dict.fromkeys(gpus)) or 'model not recorded'})" if kind == "gpu"
             else f"the CPU ({cpu or 'model not recorded'}{f', {cores} cores' if cores else ''})" if kind else "")
    if not kind:
        return (f"{path}: the report does not say which device it ran on (written by an older ninefit); used for "
                f"{target} ({hw.name}) as given: fold only reports of runs on {hw.name}")
    wanted = f"--target {target} is {hw.name}" + (" (this machine)" if target == "local" else "")
    advice = (f"a calibration must come from a run on the target's device. Fold the run_report.json of a run on "
              f"{hw.name}, or use this report with the target it ran on")
    if kind == "cpu":
        other = "--target local" if (cpu, cores) == _here() else "--target cpu if it ran in a Kaggle CPU notebook"
    else:
        known = known_gpu(gpus[0]) if gpus else None
        other = f"--target {known.key}" if known is not None and known.key in TARGETS else "the target of its GPU"
    if kind != hw.kind:
        raise DataError(f"{path} ran on {where}; {wanted}, a {hw.kind.upper()} target: {advice} "
                        f"({other}). Nothing was folded in.")
    if kind == "gpu" and gpus and _gpu_model(hw.device_name or hw.name) not in {_gpu_model(g) for g in gpus}:
        raise DataError(f"{path} ran on {where}; {wanted}: {advice} ({other}). Nothing was folded in.")
    if kind == "cpu" and machine:
        here = (cpu, cores) == _here()
        if target == "local" and not here:
            raise DataError(f"{path} ran on {where}, another machine; {wanted} "
                            f"({_here()[0]}, {_here()[1]} cores): {advice}. Nothing was folded in.")
        if target == "cpu" and here:
            raise DataError(f"{path} ran on {where}, this machine, not in a Kaggle notebook; {wanted}: {advice} "
                            "(--target local). Nothing was folded in.")
    return f"{path} ran on {where}: the device of {target} ({hw.name})"


def gpu_calibration(store: CalibrationStore | None, target: str, manifest: Manifest
                    ) -> tuple[tuple[GpuObservation, ...], frozenset[str]]:
    """(the GPU runs the GPU model refits on, the members with a calibration of their own on ``target``)."""
    if store is None:
        return (), frozenset()
    own = frozenset(m.name for m in manifest.members if store.own(target, manifest, m.name) is not None)
    return store.gpu_observations(), own


def _gpu_observation(costing: Costing, member, variant, batch: int, rows: int, seconds: float, estimated: float,
                     backend_used: str) -> GpuObservation | None:
    """A member's GPU run as an observation of the fitted model: per call, the device's seconds (the run's less the
    host work the estimate holds, at least a tenth of the run), with the backend the run used."""
    gpu = costing.gpu_call(variant, batch).estimate.seconds * rows / batch
    device_s = max(seconds - max(estimated - gpu, 0.0), 0.1 * seconds)
    backend = RUN_BACKENDS.get(backend_used, backend_for(costing.options.tensorrt))
    return observation(costing.cost(variant, batch), costing.target, costing.precision(variant), backend,
                       device_s * batch / rows, member.name)


def _refit_lines(store: CalibrationStore, bundle: str | os.PathLike, manifest: Manifest, options: EstimateOptions,
                 folded: list[tuple[str, str, int, int, float, float]]) -> list[str]:
    """What the refit GPU model makes of each member just folded, as if it had no record of its own."""
    costing = Costing(Path(bundle), manifest, options, store.gpu_observations())
    runs = len(costing.observations)
    lines = []
    for name, variant_name, batch, rows, estimated, actual in folded:
        member = manifest.member(name)
        refit = costing.inference(member, member.variant(variant_name), batch, rows)[0].seconds
        lines.append(f"GPU model refitted on {runs} run(s): {name}/{variant_name} inference {refit:.3g} s against "
                     f"{actual:.3g} s measured (x{actual / refit:.3f}; the table alone gave {estimated:.3g} s)")
    return lines


def calibrate(store: CalibrationStore, bundle: str | os.PathLike, manifest: Manifest, report_path: str | os.PathLike,
              options: EstimateOptions, notes: list[str] | None = None) -> list[Observation]:
    """Fold one run report on ``options.target`` into ``store`` (not saved).

    Args:
        notes: Receives where the report ran (:func:`check_device`) and each member left out because it
            ran on another device than the target's.

    Returns:
        The observations folded in; empty when this report was folded before.

    Raises:
        DataError: Not a run report, one run on another device than the target's, or nothing in it is
            usable (no member of this bundle finished any rows on the target's device).
    """
    notes = [] if notes is None else notes
    report = read_report(report_path)
    notes.append(check_device(report, options, report_path))  # another device's run is refused before folding
    digest = hashlib.sha256(Path(report_path).read_bytes()).hexdigest()
    node = store._target(options.target)
    if digest in node.setdefault("reports", []):
        return []
    target = options.target.strip().lower()
    kind = _target_hardware(target).kind
    names = {m.name for m in manifest.members}
    observations: list[Observation] = []
    skipped: list[str] = []
    folded: list[tuple[str, str, int, int, float, float]] = []  # GPU runs: member, variant, batch, rows, est., actual
    for entry in report["members"]:
        name = str(entry.get("name"))
        try:
            computed = int(entry.get("rows_computed") or entry.get("rows") or 0)
            warm_rows = min(int(entry.get("warmup_rows") or 0), computed)
            seconds = float(entry.get("seconds") or 0.0)  # warm-up batches excluded
            load_s = float(entry.get("load_seconds") or 0.0) + float(entry.get("warmup_seconds") or 0.0)
            batch = int(entry.get("batch_size") or 0)
        except (TypeError, ValueError):
            skipped.append(f"{name} (non-numeric rows/seconds)")
            continue
        if name not in names:
            skipped.append(f"{name} (not in bundle {manifest.name!r})")
            continue
        if entry.get("device") and entry.get("device") != kind:
            skipped.append(f"{name} (ran on the {str(entry['device']).upper()} with {entry.get('backend_used') or '?'}, "
                           f"not the target's {kind.upper()}: left out)")
            notes.append(f"{report_path}: member {skipped[-1]}")
            continue
        member = manifest.member(name)
        variant = member.variant(str(entry.get("variant") or member.variants[0].name))
        rows = computed - warm_rows  # the rows ``seconds`` is for
        if entry.get("status") not in _USABLE or computed < 1:
            skipped.append(f"{name} (status {entry.get('status')!r}, {computed} rows)")
            continue
        costing = Costing(Path(bundle), manifest, replace(options, rows=computed))
        batch = batch or costing.batch_for(member)
        estimated = costing.inference(member, variant, batch, rows)[0].seconds if rows > 0 else 0.0
        if estimated > 0 and seconds > 0:
            key = member_key(manifest, name)
            slot = node["members"].setdefault(key, {"name": name})
            store._update(slot, "calibration", target, name, estimated, seconds)
            store._update(node, "all", target, None, estimated, seconds)
            observations.append(Observation(name, variant.name, "inference", rows, estimated, seconds))
            gpu = _gpu_observation(costing, member, variant, batch, rows, seconds, estimated,
                                   str(entry.get("backend_used") or "")) if costing.gpu_priced else None
            if gpu is not None:
                store.data.setdefault("gpu_observations", []).append(
                    {"target": target, "report": digest, "observation": gpu.to_json()})
                folded.append((name, variant.name, batch, rows, estimated, seconds))
        if load_s > 0:
            load = costing.load(member, variant, batch)[0].seconds
            if warm_rows:  # the warm-up batch is booked with the load: its steady cost too
                load += costing.inference(member, variant, batch, warm_rows)[0].seconds
            # Sub-second loads are noise next to a run's budget, and the first one loaded
            # also pays the backend's import (counted in imports here): not folded in.
            if max(load, load_s) >= MIN_LOAD_S:
                store._update(node, "setup", target, None, load, load_s)
                observations.append(Observation(name, variant.name, "load", computed, load, load_s))
    if not observations:
        raise DataError(f"run report {report_path} has nothing to calibrate with for bundle {manifest.name!r}: "
                        f"{'; '.join(skipped) or 'no members'}; expected members of this bundle with status "
                        f"{' / '.join(_USABLE)} and rows > 0")
    node["reports"].append(digest)
    if folded:
        notes.extend(_refit_lines(store, bundle, manifest, replace(options, rows=max(f[3] for f in folded)),
                                  folded))
    return observations


__all__ = ["CALIBRATION_VERSION", "CalibrationStore", "Observation", "calibrate", "check_device",
           "default_calibration_path", "gpu_calibration", "member_key", "read_report"]
