"""Measure what each member of a bundle costs on the machine at hand.

:func:`profile_bundle` drives the very runtime that will run on Kaggle
(``runtime.run.load_runner`` / ``runtime.execute.predict.predict_rows`` over ``runtime.data`` test
data) and returns the bundle's profile (:class:`runtime.profile.Profile`, stored as
``manifest.profile``) the estimator and the deadline-aware runtime read. Per member and
variant it measures:

* setup: ``load_runner`` plus ``activate()`` (session / engine creation), the
  same span the runtime reports as ``load_seconds``;
* at several batch sizes, the whole per-batch path (read the rows out of the
  table, preprocess, infer with every TTA transform, activate): warm-up
  first (the first call of a session can be 1000x slower), then measurement
  windows until ``stable_windows`` consecutive windows agree within
  ``tolerance`` (perf_analyzer's stability rule: max/min - 1 <= 10 %), bounded
  by a share of ``seconds_per_member``. A point that never settles keeps the
  fastest of its windows (other work only slows a window down) and is marked
  ``"stable": false``;
* the split of that path into preprocess (``TestData.feed``), infer
  (``Runner.infer``, once per TTA transform) and postprocess (the rest).

Bundle-wide (:mod:`.overheads`, :mod:`.sampling`) it measures interpreter
start plus imports, bundle verification, reading the test table and sample
submission at two sizes (fixed + per row), per-row ensembling, checkpoint
chunks, the writing of the submission, and runs the runtime itself end to
end at two sizes: what its report shows beyond the parts measured above is
the runtime's own work, stored as fixed + per chunk.

Rows come from the public test data when given, else from synthetic rows of
the declared input shapes written to a temporary folder (``data.source``
says which). Small tables are tiled (with fresh ids) to reach the largest
batch. The profile's format is :mod:`runtime.profile` (versioned by
:data:`~runtime.profile.PROFILE_VERSION`). What it measures is logged to
``ninefit.profile`` (a line per variant, and what went wrong).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packager.estimate.measure.load import BUSY, LoadMeter
from packager.estimate.measure.machine import fingerprint
from packager.estimate.measure.overheads import (
    check_run,
    cold_start,
    hash_rate,
    measure_checkpoint,
    measure_ensemble,
    measure_startup,
    measure_write,
)
from packager.estimate.measure.sampling import SYNTHETIC_ROWS, measure_data, write_synthetic_data
from runtime.bundle import Bundle, checksum_tree, open_bundle
from runtime.data.testdata import TestData
from runtime.errors import BundleError, DataError, NinefitError
from runtime.execute.predict import predict_rows
from runtime.fileio import atomic_write
from runtime.manifest import MANIFEST_NAME, Manifest, Member, Variant
from runtime.profile import (
    PROFILE_VERSION,
    Checkpoint,
    CheckRun,
    DataRead,
    Fingerprint,
    Load,
    MeasureOptions,
    Profile,
    Startup,
    VariantCost,
    Write,
)
from runtime.run import RunOptions, load_runner

_SPLIT_CALLS = 3  # calls timed for the preprocess / infer split of each point
_CHECK_MAX_ROWS = 100_000  # rows of the larger end-to-end check run, at most
#: What profiling says as it goes: a line per measured variant, what went wrong (the CLI shows it).
LOG = logging.getLogger("ninefit.profile")


@dataclass(frozen=True)
class ProfileOptions:
    """How long and how to measure; ``None`` means the default.

    Attributes:
        seconds_per_member: Soft bound on measuring one member, all its
            variants and batch sizes together (setup excluded).
        batch_sizes: Batch sizes to measure; None: the member's own, a quarter
            of it and four times it.
        tolerance: Windows agree when max/min - 1 is at most this.
        stable_windows: How many consecutive windows must agree.
        backend: Runtime backend (None: the runtime's default).
        threads: CPU intra-op threads (None: the backend's default, as ``ninefit run``).
        device_id: GPU to measure on.
        startup: Measure interpreter start, imports and exit in subprocesses.
        check_run: Run the runtime end to end once (about a second of
            inference) to measure its per-chunk bookkeeping.
    """

    seconds_per_member: float = 3.0
    batch_sizes: tuple[int, ...] | None = None
    tolerance: float = 0.10
    stable_windows: int = 3
    backend: str | None = None
    threads: int | None = None
    device_id: int = 0
    startup: bool = True
    check_run: bool = True

    def __post_init__(self) -> None:
        if not self.seconds_per_member > 0:
            raise ValueError(f"seconds_per_member must be > 0, got {self.seconds_per_member}")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ValueError(f"batch_sizes must be positive integers, got {self.batch_sizes}")


def batch_sizes_for(member: Member, options: ProfileOptions) -> tuple[int, ...]:
    """Batch sizes measured for ``member``, ascending."""
    if options.batch_sizes is not None:
        return tuple(sorted(set(options.batch_sizes)))
    b = member.batch_size
    return tuple(sorted({max(1, b // 4), b, b * 4}))


# -- timing ----------------------------------------------------------------------------


@dataclass
class _Point:
    batch: int
    s_per_row: float
    s_per_batch: float
    windows: list[float]
    stable: bool
    calls: int
    rows: int
    read: float = 0.0  # the data stages of the run report: read, decode, preprocess (per batch)
    decode: float = 0.0
    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0
    first_call_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "s_per_row": self.s_per_row, "s_per_batch": self.s_per_batch, "stable": self.stable,
            "first_call_s": self.first_call_s,
            "windows": self.windows, "calls": self.calls, "rows": self.rows,
            "stages": {"read": self.read, "decode": self.decode, "preprocess": self.preprocess, "infer": self.infer,
                       "postprocess": self.postprocess},
        }


def stable(windows: list[float], count: int, tolerance: float) -> bool:
    """Whether the last ``count`` windows agree within ``tolerance`` (max/min - 1)."""
    if len(windows) < count:
        return False
    last = windows[-count:]
    return min(last) > 0 and max(last) / min(last) - 1 <= tolerance + 1e-12


def _measure_point(runner, member: Member, variant: Variant, test: TestData, batch: int,
                   budget_s: float, options: ProfileOptions) -> _Point:
    """Warm up, then time windows of whole ``predict_rows`` calls until stable or out of time."""
    n = test.n_rows
    starts = list(range(0, max(n - batch, 0) + 1, batch)) or [0]
    cursor = 0

    def call() -> float:
        nonlocal cursor
        start = starts[cursor % len(starts)]
        cursor += 1
        stop = min(start + batch, n)
        t = time.perf_counter()
        predict_rows(runner, member, variant, test, start, stop, batch)
        return time.perf_counter() - t

    t_begin = time.perf_counter()
    deadline = t_begin + budget_s
    # Warm-up: at least two calls and a fifth of the budget, or until the latest
    # call is no slower than the fastest seen (lazy allocation is over).
    times = [call(), call()]
    while time.perf_counter() < t_begin + budget_s / 5 and times[-1] > 1.2 * min(times):
        times.append(call())
    window_s = max(budget_s / 10, min(times))
    windows: list[float] = []
    calls = rows = 0
    rows_per_call = min(batch, n)
    while True:
        t0, k = time.perf_counter(), 0
        while True:
            call()
            k += 1
            if time.perf_counter() - t0 >= window_s:
                break
        elapsed = time.perf_counter() - t0
        windows.append(elapsed / (k * rows_per_call))
        calls += k
        rows += k * rows_per_call
        if stable(windows, options.stable_windows, options.tolerance):
            settled = True
            break
        if time.perf_counter() >= deadline:
            settled = False
            break
    recent = windows[-options.stable_windows:]
    # Unsettled windows mean other work disturbed some of them (it only ever slows a
    # window down): the fastest is the best guess of an undisturbed notebook.
    s_per_row = statistics.mean(recent) if settled else min(windows)
    point = _Point(batch=rows_per_call, s_per_row=s_per_row, s_per_batch=s_per_row * rows_per_call,
                   windows=windows, stable=settled, calls=calls, rows=rows, first_call_s=times[0])
    _split(point, runner, member, variant, test)
    return point


def _split(point: _Point, runner, member: Member, variant: Variant, test: TestData) -> None:
    """Share the per-batch time between the data stages (read, decode, preprocess), infer (x TTA) and postprocess."""
    from runtime.data.pipeline import FeedPipeline

    b = point.batch
    pre, inf, parts = [], [], []
    with FeedPipeline(test, [member], depth=0, workers=1, share=False) as feeds:  # the runtime's data path, in line
        for _ in range(_SPLIT_CALLS):
            before = (feeds.times.read_s, feeds.times.decode_s, feeds.times.preprocess_s)
            t0 = time.perf_counter()
            batch = feeds.get(member, variant, 0, min(b, test.n_rows))
            t1 = time.perf_counter()
            for feed in batch:
                runner.infer(feed)
            t2 = time.perf_counter()
            pre.append(t1 - t0)
            inf.append(t2 - t1)
            parts.append((feeds.times.read_s - before[0], feeds.times.decode_s - before[1],
                          feeds.times.preprocess_s - before[2]))
    total = point.s_per_batch
    best = min(range(len(pre)), key=lambda i: pre[i])
    pre_s, inf_s = pre[best], min(inf)
    if pre_s + inf_s > total:  # noise: keep the proportions, the window total rules
        scale = total / (pre_s + inf_s)
        pre_s, inf_s = pre_s * scale, inf_s * scale
    read, decode, _ = parts[best]
    share = pre_s / max(pre[best], 1e-12)
    point.read, point.decode = read * share, decode * share
    point.preprocess = max(0.0, pre_s - point.read - point.decode)
    point.infer, point.postprocess = inf_s, total - pre_s - inf_s


def _measure_setup(bundle: Bundle, member: Member, variant: Variant, run_options: RunOptions):
    """Seconds to load and activate a runner (mean of two when quick), and the active runner."""
    times = []
    for attempt in range(2):
        t0 = time.perf_counter()
        runner = load_runner(bundle, member, variant, run_options)
        runner.activate()
        times.append(time.perf_counter() - t0)
        if attempt == 0 and times[0] > 1.0:
            break
        if attempt == 0:
            runner.deactivate()
    return statistics.mean(times), runner


def profile_member(bundle: Bundle, member: Member, test: TestData, options: ProfileOptions) -> dict[str, VariantCost]:
    """``{variant: VariantCost}`` for every variant of ``member`` (see :func:`profile_bundle`)."""
    if member.text is not None:  # cost per token, over the public lengths: .textcost
        from packager.estimate.measure.textcost import profile_text_member

        return profile_text_member(bundle, member, test, options, _measure_setup, RunOptions(
            backend=options.backend, threads=options.threads, device_id=options.device_id, progress=False))
    batches = batch_sizes_for(member, options)
    share = options.seconds_per_member / (len(member.variants) * len(batches))
    run_options = RunOptions(backend=options.backend, threads=options.threads,
                             device_id=options.device_id, progress=False)
    out: dict[str, VariantCost] = {}
    for variant in member.variants:
        t_variant = time.perf_counter()
        points: dict[int, _Point] = {}
        setups: dict[int, float] = {}
        runner = None
        for b in batches:
            if runner is None or _needs_fixed_batch(runner):
                if runner is not None:
                    runner.deactivate()
                setups[b], runner = _measure_setup(bundle, member, variant, replace(run_options, batch_size=b))
            try:
                points[b] = _measure_point(runner, member, variant, test, b, share, options)
            except NinefitError as exc:
                raise type(exc)(f"profiling {member.name}/{variant.name} at batch {b}: {exc}") from exc
        assert runner is not None, "batch_sizes_for gives at least one batch size: one runner was loaded"
        device, backend = runner.device_kind(), runner.describe()
        runner.deactivate()
        packaged = points.get(member.batch_size) or min(points.values(), key=lambda p: abs(p.batch - member.batch_size))
        best = min(points.values(), key=lambda p: p.s_per_row)
        setup_s = setups.get(member.batch_size, max(setups.values()))
        ordered = [points[b] for b in batches]
        # The session's first call pays lazy initialisation; each new shape pays a little again.
        warmup_s = max(ordered[0].first_call_s - ordered[0].s_per_batch, 0.0)
        reshape_s = statistics.median([max(p.first_call_s - p.s_per_batch, 0.0) for p in ordered[1:]] or [0.0])
        out[variant.name] = cost = VariantCost.from_dict({
            "s_per_row": packaged.s_per_row,
            "setup_s": setup_s,
            "warmup_s": warmup_s,
            "reshape_s": reshape_s,
            "batch_size": packaged.batch,
            "best_batch_size": best.batch,
            "precision": variant.precision,
            "tta": len(variant.tta),
            "device": device,
            "backend": backend,
            "stable": all(p.stable for p in points.values()),
            "rows_measured": sum(p.rows for p in points.values()),
            "seconds": time.perf_counter() - t_variant,
            "batches": {str(b): p.to_dict() for b, p in sorted(points.items())},
        })
        LOG.info(f"{member.name}/{variant.name}: {packaged.s_per_row * 1e6:.1f} us/row at batch {packaged.batch} "
            f"(fastest at {best.batch}), setup {setup_s * 1e3:.0f} ms"
            f"{'' if cost.stable else ' (windows never settled: fastest kept)'}")
    return out


def _needs_fixed_batch(runner) -> bool:
    """TensorRT engines are built for one largest batch: rebuild per batch size."""
    return "tensorrt" in type(runner).__module__ or "Tensorrt" in runner.describe()


# -- the bundle -----------------------------------------------------------------------


def profile_bundle(
    bundle: str | os.PathLike | Bundle,
    data: str | os.PathLike | None = None,
    options: ProfileOptions = ProfileOptions(),
) -> Profile:
    """Measure every member of a bundle here; returns the profile (stored as ``manifest.profile``).

    Args:
        bundle: A bundle folder (verified first) or an opened :class:`Bundle`
            (e.g. the staged one inside ``ninefit package``).
        data: The public test data, or None for synthetic rows: the data folder
            (holding ``manifest.data.test``), or the test table itself, whatever
            its name (the sample submission and images are looked for beside it).
        options: What to measure and for how long.

    Returns:
        The :class:`runtime.profile.Profile`: its ``members[name][variant]``
        (:class:`~runtime.profile.VariantCost`) has ``s_per_row`` (whole per-batch path at the
        member's batch size), ``setup_s``, ``batch_size``, ``best_batch_size``, ``device``,
        ``backend``, ``stable`` and ``batches[b]`` with ``s_per_row``, ``s_per_batch``,
        ``windows``, ``stable`` and ``stages`` (seconds per batch of read, decode, preprocess,
        infer, postprocess); ``data``, ``write``, ``ensemble``, ``checkpoint``, ``startup`` the
        bundle-wide stages; ``fingerprint``, ``options`` and ``load`` (the other processes' share
        of the cores meanwhile, :class:`packager.estimate.measure.load.LoadMeter`) where.

    Raises:
        BundleError: The bundle fails verification.
        DataError: The data does not fit the bundle.
        BackendError: A member cannot be loaded or run here.
    """
    meter = LoadMeter()  # other processes' share of the cores while measuring (packager.estimate.measure.load)
    bundle, t_verify = _opened(bundle)
    manifest = bundle.manifest
    if not manifest.members:
        raise BundleError(f"bundle {bundle.root} has no members to profile")
    with tempfile.TemporaryDirectory(prefix="ninefit-profile-") as tmp:
        work = Path(tmp)
        read, test, sample = _read_data(bundle, data, work, options)
        try:  # imported before timing setup: the import is counted in startup
            import onnxruntime  # noqa: F401
        except ImportError:
            pass
        members = {m.name: profile_member(bundle, m, test, options) for m in manifest.members}
        write = measure_write(manifest, test, sample, [min(int(read.rows or 0), test.n_rows), test.n_rows], work)
        checkpoint = measure_checkpoint(manifest, work / "chunks")
        rate = hash_rate()
        if options.check_run:
            checkpoint = replace(checkpoint, run=_check_run(bundle, work, members, read, write, checkpoint, options,
                                                            rate))
    ensemble = measure_ensemble(manifest, test.n_rows)
    startup = _startup(bundle, options, checkpoint.run, t_verify, rate)
    return Profile(
        version=PROFILE_VERSION, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        fingerprint=_fingerprint(members, options), options=_options(options), data=read, startup=startup,
        ensemble=ensemble, write=write, checkpoint=checkpoint, members=members, load=_load(meter),
    )


def _opened(bundle: str | os.PathLike | Bundle) -> tuple[Bundle, float | None]:
    """The bundle, opened and verified (and how long that took) unless it is one already."""
    if isinstance(bundle, Bundle):
        return bundle, None
    t0 = time.perf_counter()
    opened = open_bundle(bundle)
    return opened, time.perf_counter() - t0


def _read_data(bundle: Bundle, data: str | os.PathLike | None, work: Path, options: ProfileOptions):
    """Reading the test data (the public one, else synthetic rows written into ``work``): its cost, the
    tiled test data the members are measured on, and the sample submission."""
    manifest = bundle.manifest
    if data is None:
        if any(m.text is not None for m in manifest.members):
            raise DataError("profiling a text bundle needs the public test data (its token lengths set the "
                            "cost): pass --data, or keep the spec's test table on disk when packaging")
        data_dir = write_synthetic_data(manifest, work / "synthetic")
        source = f"synthetic: {SYNTHETIC_ROWS} random rows of the declared input shapes"
    else:  # a folder holding manifest.data.test, or the table itself (whatever its name)
        data_dir = Path(data)
        source = f"public test data: {data_dir if data_dir.is_file() else data_dir / manifest.data.test}"
    max_batch = max(max(batch_sizes_for(m, options)) for m in manifest.members)
    read, test, sample = measure_data(manifest, data_dir, work, max_batch, assets=Path(bundle.root))
    return replace(read, source=source, synthetic=data is None), test, sample


def _check_run(bundle: Bundle, work: Path, members: dict[str, dict[str, VariantCost]], read: DataRead, write: Write,
               checkpoint: Checkpoint, options: ProfileOptions, rate: float) -> CheckRun:
    """The runtime end to end (:func:`packager.estimate.measure.overheads.check_run`), on one lane: the check
    run refines one session's figures; lanes are the plan's to model. A failure leaves its error."""
    run_options = RunOptions(backend=options.backend, threads=options.threads, device_id=options.device_id, lanes=1)
    try:
        return check_run(bundle, work / "tiled", work, members, read, write, checkpoint, _CHECK_MAX_ROWS, run_options,
                         hash_bytes_per_s=rate)
    except Exception as exc:  # noqa: BLE001 - a refinement: the profile stands without it
        failed = CheckRun(error=f"{type(exc).__name__}: {exc}"[:300])
        LOG.warning(f"end-to-end check run failed, its refinements are left out: {failed.error}")
        return failed


def _startup(bundle: Bundle, options: ProfileOptions, run: CheckRun, t_verify: float | None, rate: float) -> Startup:
    """The process around a run (:func:`packager.estimate.measure.overheads.measure_startup`), the bundle's
    verification, and a fresh process's first touches (from the check runs)."""
    root, manifest = Path(bundle.root), bundle.manifest
    if t_verify is None:
        t0 = time.perf_counter()
        checksum_tree(root)
        t_verify = time.perf_counter() - t0
    bundle_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    smallest = min((root / v.file for m in manifest.members for v in m.variants), key=lambda p: p.stat().st_size)
    images = manifest.data.format == "images"
    loaded = tuple(root / m.variants[0].file for m in manifest.members)  # what the run has loaded when it exits
    startup = (measure_startup(root, smallest, images, loaded) if options.startup
               else Startup.from_dict({"import_s": None, "note": "not measured"}))
    startup = replace(startup, verify_s=t_verify, bundle_bytes=bundle_bytes, hash_bytes_per_s=rate)
    cold = cold_start(startup, run) if options.check_run else None
    return replace(startup, cold_s=cold) if cold is not None else startup


def _load(meter: LoadMeter) -> Load:
    """The other processes' share of the cores while measuring; said when it makes the figures uncertain."""
    busy = meter.read()
    if (busy.others_cpu_share or 0.0) > BUSY:
        LOG.warning(f"other processes used {busy.others_cpu_share:.0%} of the cores while profiling: the figures are "
            "uncertain (the estimate widens their bands); profile again on a quiet machine for firmer ones")
    return busy


def _fingerprint(members: dict[str, dict[str, VariantCost]], options: ProfileOptions) -> Fingerprint:
    """This machine (:func:`packager.estimate.measure.machine.fingerprint`), how the members ran on it."""
    devices = {v.device for m in members.values() for v in m.values()}
    return fingerprint().updated(intra_op_threads=options.threads, backend=options.backend or "default",
                                 device="gpu" if "gpu" in devices else "cpu")


def _options(options: ProfileOptions) -> MeasureOptions:
    return MeasureOptions.from_dict({"seconds_per_member": options.seconds_per_member, "tolerance": options.tolerance,
                                     "stable_windows": options.stable_windows, "batch_sizes": options.batch_sizes})


def profile_step(options: ProfileOptions = ProfileOptions()):
    """A step of packaging (``PackageOptions.steps``): profile the staged bundle and store the profile.

    Uses the spec's public test data when it is on disk, else synthetic rows.
    """

    def step(stage: Path, spec, manifest: Manifest) -> Manifest:
        data = spec.test_path if spec.test_path.is_file() else None
        LOG.info(f"profiling on {'the public test data' if data else 'synthetic rows'} "
            f"(about {options.seconds_per_member:g} s per member; --no-profile skips)")
        profile = profile_bundle(Bundle(root=Path(stage), manifest=manifest), data, options)
        return replace(manifest, profile=profile)

    return step


def store_profile(bundle_dir: str | os.PathLike, profile: Profile | Mapping[str, Any]) -> Path:
    """Replace ``manifest.profile`` in place, atomically (``runtime.fileio.atomic_write``); a mapping is
    read as the profile's JSON (:meth:`runtime.profile.Profile.from_dict`).

    The manifest is not among the checksummed files, so the bundle stays valid.
    """
    root = Path(bundle_dir)
    manifest = Manifest.load(root)
    profile = profile if isinstance(profile, Profile) else Profile.from_dict(profile)  # (as Manifest reads a mapping)
    path = atomic_write(root / MANIFEST_NAME, replace(manifest, profile=profile).to_json())
    json.loads(path.read_text(encoding="utf-8"))  # cheap self-check of what was written
    return path


__all__ = [
    "PROFILE_VERSION",
    "ProfileOptions",
    "batch_sizes_for",
    "profile_bundle",
    "profile_step",
    "profile_member",
    "stable",
    "store_profile",
    "write_synthetic_data",  # from .sampling, kept here for callers of the profile API
]
