"""The bundle-wide stages of a run, priced on a target: everything but the members' own work.

* ``install``: the bundle's ``wheels/`` folder (if any) installed offline at
  ``INSTALL_BYTES_PER_S`` after ``INSTALL_FIXED_S`` of pip start-up - a rate
  constant, low confidence. Nothing for ``--target local``.
* ``python``, ``imports`` and ``exit``: the process around the run, as a
  user times it: interpreter start, the imports of the runtime and its
  backend (``python -m runtime run`` imports onnxruntime, pandas and what
  they load), and the interpreter's exit with the sessions loaded (tearing
  down onnxruntime, pandas and pyarrow takes a few tenths of a second).
  Measured at profile time in subprocesses (:func:`packager.estimate.measure.overheads.measure_startup`),
  host-scaled to the target. Profiles from before the split hold one
  ``import_s`` for the three, priced as ``imports``.
* ``verify``: the sha256 verification of every file the manifest lists
  (wheels included) at the measured hash rate, and no faster than
  ``KAGGLE_DISK_BYTES_PER_S`` on a Kaggle target: it grows with the bundle.
* ``startup``: the extra cost of a process's first inference session, the
  runtime's own fixed set-up (from the profile's end-to-end check runs), a
  fresh process's first touches (``startup.cold_s``: the small check run as
  a whole process less its parts, :func:`packager.estimate.measure.overheads.cold_start`;
  where negative, the parts over-count and it comes off ``imports``), plus
  ``CUDA_INIT_S`` of CUDA context creation on a GPU target.
* ``read``: reading the test table and sample submission, fitted as fixed +
  per-row on the public table and a tiled copy of it, times the rows.
* ``features``: the features hook (``[data] features``) over every row,
  once, before any member runs: seconds per row measured on the public test
  when packaging (one whole call), host-scaled; ``HOOK_S_PER_ROW`` without a
  measurement. Nothing without a hook.
* ``writing``: the runtime writes the submission a first time (the
  fallback file), after a finished member while work is left once
  ``runtime.schedule.budget.WRITE_SPACING`` writes' time has passed since the last
  (:meth:`~packager.estimate.price.costing.Costing.writes` follows the members'
  inference to count them), and at the end; one write (combine, format, write
  atomically) is measured as fixed + per row.
* ``postprocess``: the postprocess hook, called at every write but the
  first (which has no predictions yet) over all rows, at its seconds per row
  measured when packaging. Nothing without a hook.

The members' stages (load, inference, ensembling) are :class:`~packager.estimate.price.costing.Costing`'s.
"""

from __future__ import annotations

import math
from pathlib import Path

from packager.estimate.price.costing import KAGGLE_DISK_BYTES_PER_S, Costing
from packager.estimate.price.items import SPEC_BAND, Item, added, fixed
from packager.estimate.price.roofline import Estimate
from runtime.manifest import Manifest
from runtime.schedule.budget import WRITE_SPACING

HOOK_S_PER_ROW = 20e-6  # a hook's cost per row, without a measurement (rate constant, low confidence)
# Rate constants (documented guesses, each used at low confidence).
INSTALL_FIXED_S = 5.0  # pip start-up and dependency resolution, offline
INSTALL_BYTES_PER_S = 25e6  # unpacking wheels onto Kaggle's disk
CUDA_INIT_S = 2.0  # CUDA context + cuDNN/cuBLAS handles, once per process


def bundle_items(costing: Costing, rows: int) -> list[Item]:
    """The install, python, imports, verify, startup, exit, read, features, postprocess and writing items."""
    return [_install(costing), *_process(costing), _verify(costing), _startup(costing), *_exit(costing),
            _read(costing, rows), *_hooks(costing, rows), _writing(costing, rows)]


def _cold(costing: Costing) -> float:
    """A fresh process's first touches beyond its measured parts (negative: the parts over-count)."""
    return float(costing.profile.startup.cold_s or 0.0) if costing.measured else 0.0


def _process(costing: Costing) -> list[Item]:
    """Interpreter start and the imports (exit: :func:`_exit`), measured apart or, in an older profile, together."""
    startup = costing.profile.startup
    if costing.measured and startup.python_s is not None:
        cold = _cold(costing)
        imports, note = float(startup.imports_s or 0.0), "imports of the runtime and its backend, measured"
        if cold < 0:  # the parts measured apart add up to more than the whole process: the imports over-count
            imports = max(imports + cold, 0.0)
            note += (f", less {-cold:.2f} s: the small check run as a whole process took that much less "
                     "than its parts measured apart (the measure imports what any run may need)")
        return [Item("python", costing.host(float(startup.python_s), ("interpreter start, measured",)),
                     costing.measured_basis),
                Item("imports", costing.host(imports, (note,)), costing.measured_basis)]
    if costing.measured and startup.import_s is not None:
        return [Item("imports", costing.host(float(startup.import_s), (
            "interpreter start, imports and exit measured together (an older profile)",)), costing.measured_basis)]
    return [Item("imports", fixed(3.0, SPEC_BAND, "low", costing.key, notes=(
        "interpreter start, imports and exit not measured: 3 s assumed",)), "rate constant")]


def _verify(costing: Costing) -> Item:
    """Every file the manifest lists is verified, wheels included (added after profiling)."""
    startup = costing.profile.startup
    size = float(_listed_bytes(costing.root, costing.manifest) or startup.bundle_bytes or 0.0)
    rate = float(startup.hash_bytes_per_s or 0) or 400e6
    note = (f"sha256 of {size / 1e6:.1f} MB (every file the manifest lists)",)
    machine = costing.machine
    if machine is not None and machine.same:
        return Item("verify", costing.host(size / rate, note), "measured")
    ratio = machine.host_ratio if machine else 1.0
    return Item("verify", fixed(size / min(rate / ratio, KAGGLE_DISK_BYTES_PER_S), (0.5, 3.0), "low", costing.key,
                                notes=(*note, "at the disk / hash rate (rate constant)")), "rate constant")


def _startup(costing: Costing) -> Item:
    """The first session's extra cost, the runtime's own set-up, a fresh process's first touches, CUDA's context."""
    p = costing.profile
    est = costing.host(float(p.startup.first_session_s or 0.0) if costing.measured else 0.0)
    if p.checkpoint.run.fixed_s:  # the runtime's own set-up, from the profile's end-to-end check runs
        est = added(est, costing.host(float(p.checkpoint.run.fixed_s)))
    cold = _cold(costing)
    if cold > 0:  # a fresh process's first touches, measured
        est = added(est, costing.host(cold, (
            "first touches of a fresh process (lazy imports, first calls, the first chunk's wait): "
            "a whole `python -m runtime run` of the small check run less its parts, measured",)))
    measured_on_gpu = costing.machine is not None and costing.machine.source.kind == "gpu"
    if costing.target.kind == "gpu" and not measured_on_gpu:
        est = added(est, fixed(CUDA_INIT_S, (0.5, 3.0), "low", costing.key,
                               notes=(f"CUDA context creation {CUDA_INIT_S:g} s (rate constant)",)))
    return Item("startup", est, costing.measured_basis if costing.measured else "rate constant")


def _exit(costing: Costing) -> list[Item]:
    startup = costing.profile.startup
    if costing.measured and startup.exit_s is not None:
        return [Item("exit", costing.host(float(startup.exit_s), (
            "interpreter exit with the sessions loaded, measured",)), costing.measured_basis)]
    return []


def _read(costing: Costing, rows: int) -> Item:
    data = costing.profile.data
    if data.read_s_per_row is not None:
        read = costing.host(float(data.read_fixed_s or 0.0) + float(data.read_s_per_row) * rows)
        return Item("read", read, costing.measured_basis)
    values = sum(max(len(i.columns), 1) for m in costing.manifest.members for i in m.inputs)
    return Item("read", fixed(0.5 + rows * (1e-6 + 1e-7 * values), SPEC_BAND, "low", costing.key,
                              notes=("not measured: 0.1 us per value",)), "rate constant")


def _writing(costing: Costing, rows: int) -> Item:
    writes = costing.writes(rows)[0]
    note = (f"{writes} submission writes (first, after members while work is left, {WRITE_SPACING:g} writes' "
            "time apart at least, last)",)
    if costing.profile.write.s_per_row is not None:
        return Item("writing", costing.host(writes * costing.one_write(rows), note), costing.measured_basis)
    return Item("writing", fixed(writes * costing.one_write(rows), SPEC_BAND, "low", costing.key,
                                 notes=("not measured: 2 us per row", *note)), "rate constant")


def _hooks(costing: Costing, rows: int) -> list[Item]:
    """The features and postprocess stages: the user's hooks, measured when packaging."""
    measured = costing.profile.hooks
    writes = costing.writes(rows)[0]
    items = []
    for stage, used, calls, what in (
            ("features", bool(costing.manifest.data.features), 1, "features hook over every row, once"),
            ("postprocess", costing.manifest.submission.mode == "postprocess", writes - 1,
             f"postprocess hook over every row at {_plural(writes - 1, 'write')}")):
        if not used:
            items.append(Item(stage, fixed(0.0, (1, 1), "high", costing.key, notes=(f"no {stage} hook",)), "none"))
            continue
        rec = measured.get(stage)
        if rec is not None and rec.s_per_row is not None:
            per_call = float(rec.fixed_s or 0.0) * math.ceil(rows / int(rec.chunk_rows or rows or 1))
            items.append(Item(stage, costing.host(calls * (float(rec.s_per_row) * rows + per_call), (
                f"{what}, {float(rec.s_per_row) * 1e6:.1f} us/row measured on {rec.rows} public rows",)),
                costing.measured_basis))
        else:
            items.append(Item(stage, fixed(calls * HOOK_S_PER_ROW * rows, SPEC_BAND, "low", costing.key, notes=(
                f"{what}, not measured: {HOOK_S_PER_ROW * 1e6:g} us/row assumed",)), "rate constant"))
    return items


def _install(costing: Costing) -> Item:
    wheels = costing.root / "wheels"
    if costing.options.target.strip().lower() == "local":
        return Item("install", fixed(0.0, (1, 1), "high", costing.key,
                                     notes=("local: the environment is already installed",)), "none")
    if not wheels.is_dir():
        return Item("install", fixed(0.0, (1, 1), "high", costing.key,
                                     notes=("no wheels/ folder: nothing to install",)), "none")
    size = _folder_bytes(wheels)
    seconds = INSTALL_FIXED_S + size / INSTALL_BYTES_PER_S
    est: Estimate = fixed(seconds, (0.5, 3.0), "low", costing.key, notes=(
        f"{size / 1e6:.0f} MB of wheels at {INSTALL_BYTES_PER_S / 1e6:.0f} MB/s + {INSTALL_FIXED_S:g} s "
        "(rate constant)",))
    return Item("install", est, "rate constant")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listed_bytes(root: Path, manifest: Manifest) -> int:
    return sum((root / rel).stat().st_size for rel in manifest.files if (root / rel).is_file())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


__all__ = ["CUDA_INIT_S", "HOOK_S_PER_ROW", "INSTALL_BYTES_PER_S", "INSTALL_FIXED_S", "bundle_items"]
