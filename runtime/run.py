"""Run a bundle on test data and write ``submission.csv``, before the deadline.

Order of work: verify the bundle (schema, checksums) before anything runs
(a damaged member or rung is left out and reported, a damaged runtime or
manifest stops the run: :func:`runtime.bundle.open_bundle`); open the test
data and match its ids against the sample submission; write a first valid
submission at once (the declared fallback, with the sample
submission's values for ids it lacks, plus whatever an earlier killed run
checkpointed); then let :class:`runtime.execute.executor.Executor` run the members to
the deadline, rewriting the submission atomically as each member finishes;
finally write it once more, and the run report.

The submission is always combined from the checkpointed chunks, members in
manifest order and chunks in row order, so it depends on which rows each
member covered and never on timing: a resumed run writes the same bytes as an
uninterrupted one.

The clock is the notebook's: ``start_time`` (epoch seconds, recorded by the
notebook's first cell) makes install and loading time count against
``time_limit_s``. Everything must end by ``start + limit - margin``; a
``reserve`` before that is kept for the final write.

Outputs: the submission at ``out``; the run report at ``report_path``
(default: ``<out stem>.run_report.json`` beside ``out``) and the checkpoints
under ``work_dir`` (default: ``<out stem>.ninefit-work/`` beside ``out``), so
two runs writing different submissions into one folder never share either.
A rerun with the same outputs resumes from the checkpoints and says so;
``fresh`` discards them first.

Custom backends: set ``NINEFIT_PLUGINS`` to a comma-separated list of module
names; :func:`run` imports each (they must be importable, e.g. on
``PYTHONPATH``) before choosing the backend, and each registers its backends
with :func:`runtime.backends.register`. Pass ``--backend NAME`` to use one.
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from runtime import backends
from runtime.backends.base import Runner
from runtime.bundle import Bundle, open_bundle
from runtime.data.loaders import resolve_loader
from runtime.data.pipeline import FeedPipeline, default_workers
from runtime.data.tables import table_engine
from runtime.data.testdata import TestData, open_test_data
from runtime.data.text import length_stats, row_costs
from runtime.errors import DataError, NinefitError, StorageError, UsageError
from runtime.execute.checkpoint import ChunkStore, data_fingerprint, member_grid, run_key
from runtime.execute.executor import Executor, ExecutorSettings, Work
from runtime.execute.lanes import LaneSpec, choose_lanes, free_ram, largest_model_bytes, usable_cores  # re-exported
from runtime.execute.memory import MemoryMonitor
from runtime.execute.predict import predict_rows  # re-exported: part of runtime.run's API
from runtime.execute.runners import load_runner, trt_input_shapes  # re-exported: part of runtime.run's API
from runtime.gpu import device_mismatch, gpu_count, gpu_present
from runtime.manifest import CPU_TARGETS, Manifest, Member, Variant, is_gpu_target
from runtime.output.backends_used import record_backends
from runtime.output.formats import match
from runtime.output.report import MemberReport, RunReport, kaggle_failure
from runtime.output.submission import read_sample
from runtime.output.writer import SubmissionWriter, load_fallback, make_formatter, member_width  # re-exported
from runtime.progress import format_seconds, log
from runtime.schedule.budget import Clock, make_budget
from runtime.schedule.rungs import runnable


@dataclass(frozen=True)
class RunOptions:
    """How to run a bundle; ``None`` means the default."""

    backend: str | None = None  # None: the preferred available backend
    batch_size: int | None = None  # None: each member's packaged batch size
    threads: int | None = None
    device_id: int = 0
    work_dir: Path | None = None  # engine caches, checkpoints; None: <out stem>.ninefit-work/ next to the submission
    progress: bool = True
    report_path: Path | None = None  # run report JSON; None: <out stem>.run_report.json next to the submission
    fresh: bool = False  # discard the work folder's checkpoints (not its engine cache) before running
    # The deadline: the run must be over by start_time + time_limit_s - margin_s.
    time_limit_s: float | None = None  # None: no limit
    start_time: float | None = None  # epoch seconds (time.time()) when the clock started; None: now
    margin_s: float | None = None  # safety margin; None: measured (budget.measured_margin), default_margin at least
    reserve_s: float | None = None  # kept for the final write; None: measured (budget.RESERVE_FLOOR_S at least)
    torch_compile: bool = False  # torch backend: torch.compile each program on load (counted as setup time)
    lanes: int | None = None  # lanes run at once; None: the default rule (runtime.execute.lanes.choose_lanes)
    devices: tuple[int, ...] | None = None  # GPUs to run lanes on; None: every visible GPU

    def __post_init__(self) -> None:
        """Counts are checked here, once, for the CLI and the library alike (the budget's numbers by make_budget).

        Raises:
            UsageError: A batch size, thread count or lane count that is not a positive whole number.
        """
        for flag, value, what in (("--batch-size", self.batch_size, "rows"),
                                  ("--threads", self.threads, "CPU threads per model"),
                                  ("--lanes", self.lanes, "lanes")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{flag} {value}: expected a positive number of {what}")


def default_report_path(out: str | os.PathLike) -> Path:
    """The run report written for submission ``out`` by default: ``submission.csv`` -> ``submission.run_report.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.run_report.json")


def default_work_dir(out: str | os.PathLike) -> Path:
    """The work folder used for submission ``out`` by default: ``submission.csv`` -> ``submission.ninefit-work/``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.ninefit-work")


def discard_checkpoints(work_dir: Path) -> int:
    """Remove ``work_dir/checkpoints`` (every run key); returns the chunk files removed. The engine cache stays."""
    folder = Path(work_dir) / "checkpoints"
    if not folder.is_dir():
        return 0
    n = sum(1 for _ in folder.rglob("*.npy"))
    shutil.rmtree(folder)
    return n


def _log_missing(test: TestData, member: Member) -> None:
    columns = test.missing_columns(member)
    if not columns:
        return
    policy, fill = member.missing_policy(test.spec)
    bad = test.nonfinite(member)  # (a member with missing columns has non-finite rows)
    rows = int(bad.sum()) if bad is not None else 0
    shown = ", ".join(f"{c} ({n})" for c, n in list(columns.items())[:8])
    more = ' ...' if len(columns) > 8 else ''
    if policy == "model":  # the model's own handling of missing values (trees): nothing went wrong, said as progress
        log(f"{member.name}: missing values in {rows} row(s), in {shown}{more}, go to the model as they are "
            "(missing = \"model\")")
        return
    what = ("those rows are left to the other members (missing = \"skip\")" if policy == "skip"
            else f"filled with {fill:g} (missing = \"fill\")")
    log(f"{member.name}: {rows} row(s) have non-finite inputs, in {shown}{more}; {what}")


def run(bundle_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, options: RunOptions = RunOptions(),
        *, clock: Callable[[], float] | None = None) -> RunReport:
    """Run the members of a bundle over the test data, to the deadline, and write the submission.

    The stages in order: open and check everything (the bundle's checksums,
    the data against every member, the backend, the work folder); write the
    fallback submission, then run the bundle's hooks under the deadline; choose
    the lanes and the data pipeline; execute the members to the deadline
    (:class:`runtime.execute.executor.Executor`), writing the submission as
    they finish and once more at the end; write the run report.

    ``clock`` (seconds since the start) is what every time the run measures and
    every deadline decision reads; None: the notebook's clock
    (:class:`runtime.schedule.budget.Clock` from ``options.start_time``). Tests
    pass a fake one, on which a backend's costs are set by the test.

    Raises:
        NinefitError: a user-facing problem (bad bundle, bad data, impossible
            budget, unknown backend); then nothing is written. Failures of one
            member are not raised: it is skipped and reported.
    """
    from runtime.generate.filerun import is_generative

    if is_generative(Path(bundle_dir)):  # a causal LM's bundle (the notebook calls this function for every bundle)
        from runtime.generate.runreport import run_generative

        return run_generative(bundle_dir, data, out, options, clock)
    r = _Run(bundle_dir, data, out, options, clock)
    r.write_fallback_and_run_hooks()
    r.choose_lanes()
    return r.execute()


class _Run:
    """One run, stage by stage (:func:`run`): what each stage leaves for the next is an attribute."""

    def __init__(self, bundle_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                 options: RunOptions, clock: Callable[[], float] | None = None):
        """Open the bundle and the data and check them: anything wrong is raised before a file is written."""
        self.t0 = time.perf_counter()
        self.clock = clock = clock if clock is not None else Clock(options.start_time)
        self.budget = make_budget(options.time_limit_s, options.margin_s, options.reserve_s, options.start_time, clock)
        backends.load_plugins()
        bundle = open_bundle(bundle_dir, allow_damage=True)  # a damaged runtime or manifest raises here
        self.damage = damage = bundle.damage
        for line in damage.lines():
            log(f"DAMAGED BUNDLE FILE {line}")
        self.bundle = bundle = replace(bundle, manifest=damage.usable(bundle.manifest))
        self.m = m = bundle.manifest
        self.out = out = Path(out)
        report_path = Path(options.report_path) if options.report_path else default_report_path(out)
        if report_path.resolve() == out.resolve():
            raise NinefitError(f"the run report {report_path} would overwrite the submission; give --report another path")
        data_dir = Path(data)
        self.present, how = gpu_present() if is_gpu_target(m.target) else (True, "")
        self.gpu_here = is_gpu_target(m.target) and self.present
        m, dropped = runnable(m, self.gpu_here)  # CPU rungs that cannot run here leave the ladder, said why
        self.bundle = bundle = replace(bundle, manifest=m)
        self.m = m
        self.test = test = open_test_data(data_dir, m.data, assets=bundle.root, gpu=self.gpu_here, defer_features=True)
        sample_dir = data_dir if data_dir.is_dir() else data_dir.parent
        self.sample = read_sample(sample_dir / m.submission.sample, m.submission)
        self.layout = match(m.submission, self.sample, test.ids, sample_name=m.submission.sample)
        self.fallback = load_fallback(bundle, self.sample)
        self.failed: dict[str, str] = dict(damage.removed_members)
        _check_members(test, m, self.failed)  # the hook's columns are checked once it ran
        backend = options.backend or backends.default_backend()
        backends.get(backend)  # an unknown or missing backend is the user's mistake: say so before running
        self.work = work = Path(options.work_dir) if options.work_dir else default_work_dir(out)
        self.options = options = replace(options, work_dir=work, report_path=report_path)
        if options.fresh:
            log(f"--fresh: discarded {discard_checkpoints(work)} checkpointed chunk(s) in {work / 'checkpoints'}")
        fingerprint = data_fingerprint(data_dir if data_dir.is_file() else data_dir / m.data.test)
        self.store = ChunkStore(work, run_key(m, fingerprint, backend))
        self.grids = {mem.name: member_grid(test.n_rows, mem, m.profile) for mem in m.members}
        self.report = self._new_report(how)
        for line in dropped:
            self.report.events.append(line)
            log(line)
        log(f"bundle {m.name!r}: {len(m.members)} member(s), {test.n_rows} rows; backend {backend} "
            f"(here: {', '.join(backends.available())})"
            + (f"; limit {format_seconds(self.budget.deadline)}, margin {format_seconds(self.budget.margin_s)}, "
               f"{clock():.1f}s used before the run" if options.time_limit_s is not None else ""))
        if not self.present:
            self.report.events.append(f"the bundle was packaged for {m.target} (a GPU target), but this machine has "
                                      f"no GPU ({how}): running on the CPU")
            log(self.report.events[-1])
        self.executor: Executor | None = None
        self.writer = SubmissionWriter(out, m, self.store, self.grids, test, self.sample,
                                       make_formatter(bundle, self.sample, test, self.layout, self.fallback, hook=False),
                                       clock=clock)

    def _new_report(self, how: str) -> RunReport:
        m, test = self.m, self.test
        report = RunReport(bundle=str(self.bundle.root), rows=test.n_rows, submission=str(self.out),
                           time_limit_s=self.options.time_limit_s, margin_s=self.budget.margin_s,
                           started_at_s=self.clock(), work_dir=str(self.store.root),
                           report_path=str(self.options.report_path),
                           damage=[{"file": f.path, "problem": f.problem, "effect": f.effect} for f in self.damage.files])
        report.members = [MemberReport(name=mem.name, weight=mem.weight, value=mem.value) for mem in m.members]
        self.texts = {mem.name: test.text_rows(mem) for mem in m.members
                      if mem.text is not None and mem.name not in self.failed}
        for name, rows in self.texts.items():
            report.member(name).text = {"lengths": length_stats(rows)}
        return report

    # -- the user's code, under the deadline ------------------------------------------
    def hook_time(self, final: bool) -> Callable[[], float | None] | None:
        """Seconds a hook call may still take: up to the margin for the final write's, the reserve before it else."""
        if self.options.time_limit_s is None:
            return None

        def left() -> float:
            b = self.executor.budget if self.executor is not None else self.budget
            reserve = 0.0 if final else max(b.reserve_s, 2 * self.writer.slowest)
            return b.deadline - b.margin_s - reserve - self.clock()
        return left

    def write_fallback_and_run_hooks(self) -> None:
        """Before any user code runs (a hook may hang, or eat the time), the fallback submission goes to disk."""
        m, test, writer = self.m, self.test, self.writer
        if test.features_pending or (m.submission.mode == "postprocess" and not self.damage.postprocess):
            writer.write(skip=frozenset(mem.name for mem in m.members))
            log(f"fallback submission written before the bundle's hooks run ({writer.seconds:.2f}s)")
        writer.formatter = make_formatter(self.bundle, self.sample, test, self.layout, self.fallback,
                                          hook=not self.damage.postprocess, time_left=self.hook_time(final=True))
        if test.features_pending:
            _run_features(test, m, self.report, self.hook_time(final=False), self.clock, self.failed)

    # -- lanes and the data path ------------------------------------------------------
    def choose_lanes(self) -> None:
        """The lanes (:func:`run_lanes`), the one data pipeline feeding them, and the memory watch."""
        m, options = self.m, self.options
        loader, why = resolve_loader(is_gpu_target(m.target)) if m.data.format == "images" else ("", "")
        self.specs, self.report.lane_rule = run_lanes(self.bundle, options,
                                                      max(len(g) for g in self.grids.values()) if self.grids else None)
        self.feeds = feeds = FeedPipeline(self.test, m.members, workers=default_workers(options.threads, self.gpu_here),
                                          loader=loader, lanes=len(self.specs))
        feeds.times.table = table_engine()
        if loader:
            feeds.times.decoder = f"{loader} ({why})"
            log(f"images decoded with {loader} ({why}); {feeds.workers} decode worker(s), {feeds.depth} chunk(s) ahead")
        if len(self.specs) > 1 or "intra-op thread" in self.report.lane_rule:
            log(f"{len(self.specs)} lane(s) ({self.report.lane_rule}): {', '.join(s.describe() for s in self.specs)}")
        gpu_lanes = tuple(s.device_id for s in self.specs if s.kind == "gpu")
        self.monitor = MemoryMonitor(
            device_id=(gpu_lanes[0] if gpu_lanes else options.device_id) if gpu_count() else None, devices=gpu_lanes)
        self.runners: dict[str, list[Runner]] = {}  # every runner each member loaded: the backend it really used

    def _lane_loader(self, spec: LaneSpec) -> Callable[[Member, Variant], Runner]:
        lane_options = replace(self.options, device_id=spec.device_id, threads=spec.threads)

        def load(mem: Member, v: Variant) -> Runner:
            runner = load_runner(self.bundle, mem, v, lane_options)
            self.runners.setdefault(mem.name, []).append(runner)
            return runner
        return load

    def write(self) -> float:
        """Write the submission from the chunks checkpointed now (failed members left out); its seconds."""
        failed = self.executor.failed_members() if self.executor else frozenset(self.failed)
        seconds = self.writer.write(failed)
        for event in self.writer.new_events():  # a failing postprocess hook costs its rows, never the run
            self.report.events.append(event)
            log(event)
        return seconds

    # -- the members, to the deadline -------------------------------------------------
    def execute(self) -> RunReport:
        """Run the members on the lanes; the final write and the report happen whatever goes wrong."""
        m, options, writer, report = self.m, self.options, self.writer, self.report
        error: BaseException | None = None
        # The test table, sample and sessions live all run long: move them out of the
        # collector's sight, so its passes during the run stay as cheap on a 100k-row
        # table as on a 1k-row one (measured: they otherwise cost more than the writes).
        # No gc.collect() first: in a big process (a notebook, the packager) a full
        # collection costs more than the garbage it would free before unfreeze().
        gc.freeze()
        self.monitor.start()
        try:
            profile = row_costs(m.profile.members, m.members, self.texts, self.grids, options.batch_size)
            self.executor = executor = Executor(
                Work(m.members, self.grids, self.test, self.store, member_width(m), profile, self.failed),
                [(spec.name, self._lane_loader(spec)) for spec in self.specs],
                clock=self.clock, budget=self.budget, report=report, monitor=self.monitor, write_submission=self.write,
                feeds=self.feeds, device_check=lambda runner: device_mismatch(m.target, runner),
                settings=ExecutorSettings(batch_size=options.batch_size, limited=options.time_limit_s is not None,
                                          fixed_reserve=options.reserve_s is not None,
                                          fixed_margin=options.margin_s is not None, progress=options.progress))
            if report.chunks_resumed:
                log(_resume_text(report, self.grids, self.store, self.work))
            if writer.writes:  # the fallback's write, before the hooks: the reserve's first measure
                executor.after_write(writer.slowest)
            if report.chunks_resumed or not writer.writes:  # else the file on disk is this one already
                executor.after_write(self.write())
                log(f"first submission written ({writer.covered}/{self.test.n_rows} rows from checkpoints, "
                    f"the rest from {'the fallback ' + m.fallback if m.fallback else 'the sample submission'})")
            executor.run()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._final_write(error)
        return report

    def _final_write(self, error: BaseException | None) -> None:
        """The last submission write, then everything closed and the report written (an error is kept)."""
        writer = self.writer
        try:
            self.write()
        except Exception as exc:  # keep the error that got us here; the last good file is still on disk
            log(f"could not write the final submission: {exc}")
        if isinstance(error, StorageError) and writer.writes:  # what the user is left with, in the one message
            error.args = (f"{error} The submission on disk, {self.out}, is whole: the last one written "
                          f"({writer.covered} of {self.test.n_rows} rows from the models).",)
        self.monitor.stop()
        self.feeds.close()
        self.test.close()
        self.feeds.book(write_s=writer.seconds)
        self.report.stages = self.feeds.times.to_dict()
        gc.unfreeze()
        record_backends(self.report, self.runners, self.m.target)
        _finish_report(self.report, self.executor, writer, self.store, self.monitor, self.clock, self.t0, error,
                       self.out, self.options, self.specs)


def _check_members(test: TestData, m: Manifest, failed: dict[str, str]) -> None:
    """Check every member against the test data: a member it does not fit is failed; none fitting is raised.

    While the features hook has not run, its columns are taken as declared; the
    missing-value checks then wait for them too (:func:`_run_features` checks again).

    Raises:
        DataError: No member can run on this data (the user's mistake), or a
            member's missing = "error" policy meets a non-finite value.
    """
    errors = []
    for member in m.members:
        if member.name in failed:
            continue
        try:
            test.check(member)
        except DataError as exc:
            failed[member.name] = f"failed (test data): {exc}"
            errors.append(exc)
    if errors and len(failed) == len(m.members):
        raise errors[0]  # no member can run on this data: the user's mistake, said before anything is written
    if test.features_pending:
        return
    for member in m.members:
        if member.name not in failed:
            test.check_missing(member)  # missing = "error": the run stops before any model runs
            _log_missing(test, member)


def _run_features(test: TestData, m: Manifest, report: RunReport, time_left: Callable[[], float | None] | None,
                  clock: Callable[[], float], failed: dict[str, str]) -> None:
    """The features hook over the test table, under the deadline; its events and costs into the report."""
    from runtime.hooks import pandas_engine

    t0 = clock()
    test.run_features(time_left)
    features = test.features
    assert features is not None, "run_features sets test.features or raises"
    engine, warning = pandas_engine()
    report.features = {"hook": m.data.features, "seconds": features.seconds, "engine": engine,
                       "rows_failed": int(features.failed.sum()) if features.failed is not None else 0}
    for event in [warning] * bool(warning) + features.events:
        report.events.append(event)
        log(event)
    log(f"features hook {m.data.features!r} ran in {clock() - t0:.2f}s "
        f"({report.features['rows_failed']} of {test.n_rows} row(s) without features)")
    _check_members(test, m, failed)


def run_lanes(bundle: Bundle, options: RunOptions, max_chunks: int | None = None) -> tuple[list[LaneSpec], str]:
    """The lanes a run of ``bundle`` uses here (:func:`runtime.execute.lanes.choose_lanes`) and why."""
    return choose_lanes(gpus=gpu_count(), cores=usable_cores(), lanes=options.lanes, devices=options.devices,
                        threads=options.threads, model_bytes=largest_model_bytes(bundle.root, bundle.manifest),
                        ram_free=free_ram(), max_chunks=max_chunks,
                        cpu_target=bundle.manifest.target.strip().lower() in CPU_TARGETS)


def _resume_text(report: RunReport, grids: Mapping[str, list[tuple[int, int]]], store: ChunkStore, work: Path) -> str:
    done = ", ".join(f"{mr.name} {mr.chunks_resumed}/{len(grids[mr.name])}" for mr in report.members)
    return (f"resuming from the checkpoints in {store.root} (chunks done per member: {done}); "
            f"to start fresh, rerun with --fresh (RunOptions(fresh=True)) or delete {work / 'checkpoints'}")


def _finish_report(report: RunReport, executor: Executor | None, writer: SubmissionWriter, store: ChunkStore,
                   monitor: MemoryMonitor, clock: Callable[[], float], t0: float, error: BaseException | None, out: Path,
                   options: RunOptions, specs: list[LaneSpec]) -> None:
    report.finished_at_s = clock()
    report.seconds = time.perf_counter() - t0
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or SIGTERM through the CLI (runtime.cli.Terminated)
        report.events.append(f"the run was {'terminated (SIGTERM)' if type(error).__name__ == 'Terminated' else 'interrupted'}"
                             f" at {report.finished_at_s:.1f}s; the submission written then is the final one")
    report.covered_rows = writer.covered
    report.submission_writes = writer.writes
    if writer.formatter.hook is not None:
        report.postprocess = {"hook": writer.formatter.hook_name, "seconds": writer.formatter.hook_s,
                              "rows_failed": writer.formatter.failed_rows}
    if executor is not None:
        report.reserve_s, report.margin_s = executor.budget.reserve_s, executor.budget.margin_s
        span = report.finished_at_s - report.started_at_s
        by_name = {s.name: s for s in specs}
        report.lanes = [lane.log.report(by_name.get(lane.name), lane.name, span, lane.retired)
                        for lane in executor.workers]
        report.weight_delivered, report.value_delivered = executor.delivered()
    if report.time_limit_s is not None:
        report.slack_s = report.time_limit_s - report.finished_at_s
    report.peak_rss_bytes = monitor.peak_rss
    report.peak_ram_used_bytes = monitor.peak_ram_used
    report.peak_gpu_bytes = monitor.peak_gpu_used
    report.peak_gpu_by_device = dict(monitor.peak_gpu_by_device)
    if monitor.last is not None:
        report.ram_limit_bytes, report.gpu_total_bytes = monitor.last.ram_limit, monitor.last.gpu_total
    report.checkpoint_bytes = store.nbytes()
    for mr in report.members:
        if mr.text and mr.text.get("real_tokens"):
            mr.text["padding_waste"] = mr.text["padded_tokens"] / mr.text["real_tokens"]
    in_output = Path(store.root).resolve().is_relative_to(out.resolve().parent)
    report.failure, report.failure_reason = kaggle_failure(
        report, submission_exists=out.is_file(), exception=error if isinstance(error, Exception) else None,
        disk_bytes=report.checkpoint_bytes if in_output else 0,
    )
    assert options.report_path is not None, "run() sets it: --report, or the default beside --out"
    try:
        report.write_json(options.report_path)
    except (OSError, StorageError) as exc:
        log(f"could not write the run report: {exc}")


__all__ = [
    "MemberReport",
    "RunOptions",
    "RunReport",
    "SubmissionWriter",
    "default_report_path",
    "default_work_dir",
    "discard_checkpoints",
    "free_ram",
    "largest_model_bytes",
    "load_fallback",
    "load_runner",
    "make_formatter",
    "member_width",
    "predict_rows",
    "run_lanes",
    "run",
    "trt_input_shapes",
]
