"""The budgeted ``predict`` of a serving run (see :mod:`runtime.serve`)."""

from __future__ import annotations

import inspect
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime import backends
from runtime.bundle import Bundle, open_bundle
from runtime.data.testdata import TestData
from runtime.errors import DataError, UsageError
from runtime.hooks import HOOKS_DIR, HookCaller, apply_features, load_hook
from runtime.manifest import Manifest, Member
from runtime.output.ensemble import Accumulator
from runtime.output.formats import width
from runtime.progress import log
from runtime.schedule import planner
from runtime.schedule.budget import Clock
from runtime.schedule.costs import CostModel
from runtime.serve.batch import SERVED_MODES, Batch, answer, read_batch
from runtime.serve.budget import CallBudget
from runtime.serve.members import MemberPool, Outcome
from runtime.serve.options import ServeOptions
from runtime.serve.report import CallRecord, ServeReport, default_report_path

#: A rung nothing is known about yet costs this per row: it is never planned inside a deadline.
_UNKNOWN_S_PER_ROW = 1e9
#: A member's step is left behind once it runs this share of its expected time past its planned finish...
OVERRUN_SHARE = 0.5
#: ... plus this (a batch's own jitter), or at the call's end, whichever comes first.
OVERRUN_FLOOR_S = 0.05


class Predictor:
    """``predict`` for a bundle, held to the deadlines of Kaggle's evaluation API.

    Args:
        bundle_dir: The bundle folder (``/kaggle/input/<dataset>``).
        options: The deadlines, the arguments and the answer's shape (:class:`ServeOptions`).

    Raises:
        NinefitError: The folder holds no bundle, or the bundle's submission is one the
            evaluation API cannot take (one row per test row, one cell per target).
    """

    def __init__(self, bundle_dir: str | Path, options: ServeOptions = ServeOptions()):
        self.options = options
        self.clock = Clock(options.start_time)
        self.root = Path(bundle_dir)
        self.manifest: Manifest = Manifest.load(self.root)  # the manifest only: the first call opens the rest
        mode = self.manifest.submission.mode
        if mode not in SERVED_MODES:
            raise UsageError(f"the bundle's submission mode {mode!r} writes rows a batch cannot be answered with; "
                             f"the evaluation API takes one row per test row: {', '.join(SERVED_MODES)}")
        self.budget = CallBudget(self.clock, options)
        self.report = ServeReport(options.report_path or default_report_path())
        self.calls = 0
        self.bundle: Bundle | None = None
        self.pool: MemberPool | None = None
        self.costs: CostModel | None = None
        self._features: HookCaller | None = None
        self._call_end: float | None = None
        self._lock = threading.Lock()  # the gateway calls one at a time; another caller waits its turn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Answer one batch (see :mod:`runtime.serve`).

        Raises:
            ServeInputError: The batch holds no table to predict: no answer can be made at all.
        """
        with self._lock:
            return self._call(args, kwargs)

    # -- one call ---------------------------------------------------------------------
    def _call(self, args: tuple, kwargs: dict) -> Any:
        t0 = self.clock()
        first = self.pool is None
        batch = read_batch(self.calls, args, kwargs, self.options)
        record = CallRecord(batch=self.calls, rows=batch.rows, started_s=round(t0, 4),
                            deadline_s=None if first else self.options.response_timeout_s)
        if first:
            record.load_s = self._load(record)
        end = self._call_end = self.budget.call_end(t0, first=first, calls_done=self.calls)
        record.end_s, record.share_s = end, (None if end is None else round(end - t0, 4))
        member_s = 0.0
        try:
            values, covered, member_s = self._predict(batch, end, record, first)
        except Exception as exc:  # noqa: BLE001 - never raise for what the members do: the fallback answers
            record.events.append(f"the batch's work failed ({type(exc).__name__}: {exc}); it takes the fallback")
            values, covered = np.full((batch.rows, width(self.manifest.submission)), np.nan), np.zeros(batch.rows, bool)
        result = answer(batch, values, covered, self.manifest.submission, self.options, self.manifest.data.id_column,
                        record.events)
        record.fallback_rows = int(batch.rows - covered.sum())
        record.latency_s = round(self.clock() - t0, 4)
        if record.deadline_s is not None:
            record.slack_s = round(record.deadline_s - record.latency_s, 4)
        self.budget.measured(max(0.0, record.latency_s - member_s - record.load_s))
        for event in record.events:
            log(f"batch {batch.index}: {event}")
        self.report.add(record)
        self.calls += 1
        return result

    def _load(self, record: CallRecord) -> float:
        """The first call: verify the bundle, load every member's best rung and the features hook (timed)."""
        t0 = self.clock()
        backends.load_plugins()
        backends.get(self.options.backend or backends.default_backend())  # an unknown backend: said at once
        bundle = open_bundle(self.root, allow_damage=True)
        for line in bundle.damage.lines():
            record.events.append(f"DAMAGED BUNDLE FILE {line}")
        self.bundle = bundle = replace(bundle, manifest=bundle.damage.usable(bundle.manifest))
        self.manifest = m = bundle.manifest
        self.costs = CostModel(m.members, m.profile.members)
        self.pool = MemberPool(bundle, self.options, self.clock, self.costs, dict(bundle.damage.removed_members))
        if m.data.features:
            self._features = HookCaller(load_hook(m.data.features, bundle.path(HOOKS_DIR)), m.data.features,
                                        self._time_left)
        for member in m.members:
            if self.pool.available(member.name):
                continue
            try:
                self.pool.runner(member, member.variants[0])
            except Exception as exc:  # noqa: BLE001 - tried again on the first batch, which says why
                record.events.append(f"{member.name}: could not load {member.variants[0].name}: {exc}")
        return round(self.clock() - t0, 4)

    def _time_left(self) -> float | None:
        return None if self._call_end is None else self._call_end - self.clock()

    # -- the members ------------------------------------------------------------------
    def _predict(self, batch: Batch, end: float | None, record: CallRecord,
                 first: bool) -> tuple[np.ndarray, np.ndarray, float]:
        """The batch through the features hook and the members the plan gives it; (values, covered, seconds)."""
        m = self.manifest
        n = batch.rows
        acc = Accumulator(n, width(m.submission), m.combiner)
        if not n:
            return acc.result(), acc.covered, 0.0
        test, unfed = self._test_data(batch, record)
        runnable = self._runnable(test, record)
        steps = self._plan(runnable, n, end, first=first)
        t0 = self.clock()
        outcomes = {name: Outcome(name, reason=why) for name, why in runnable.items() if why}
        for member in m.members:
            if member.name not in runnable:
                continue
            step = steps.get(member.name)
            if step is None:
                outcomes.setdefault(member.name, Outcome(member.name, reason="left out: not enough time"))
                continue
            variant, rows, expected = step
            until = None if expected is None else min(end, self.clock() + (1 + OVERRUN_SHARE) * expected + OVERRUN_FLOOR_S)
            out = self.pool.run(member, member.variant(variant), test, rows, end, until)
            outcomes[member.name] = out
            if first and out.status == "done":
                self.pool.measure(member, member.variant(variant), test, rows)
            if out.values is not None and len(out.values):
                acc.add(member.weight, 0, out.values)
        record.members = [outcomes[mem.name].to_dict() for mem in m.members if mem.name in outcomes]
        covered = acc.covered if unfed is None else acc.covered & ~unfed
        return acc.result(), covered, self.clock() - t0

    def _test_data(self, batch: Batch, record: CallRecord) -> tuple[TestData, np.ndarray | None]:
        """The batch as test data, with the features hook's columns (rows it failed on: returned)."""
        m = self.manifest
        frame = batch.frame
        id_col = m.data.id_column
        ids = [str(x) for x in frame[id_col].tolist()] if id_col in frame.columns else [str(i) for i in range(len(frame))]
        unfed = None
        if self._features is not None:
            inputs = _accepted(self._features.fn, batch.inputs)
            result = apply_features(frame, m.data.features, self.bundle.path(HOOKS_DIR), ids=ids,
                                    columns=m.data.features_columns, chunk_rows=max(len(frame), 1),
                                    hook=self._features, inputs=inputs)
            frame, unfed = result.frame, result.failed
            record.events += result.events
        return TestData(ids, frame, m.data, Path.cwd(), self.bundle.root), unfed

    def _runnable(self, test: TestData, record: CallRecord) -> dict[str, str]:
        """Each member that may run this batch -> "" , or why not (it is then skipped)."""
        out = {}
        for member in self.manifest.members:
            why = self.pool.available(member.name)
            if not why:
                try:
                    test.check(member)
                except DataError as exc:  # a missing or renamed column, a dtype it cannot take
                    why = f"the batch does not fit it: {exc}"
            out[member.name] = why
        return out

    def _plan(self, runnable: dict[str, str], rows: int, end: float | None,
              first: bool) -> dict[str, tuple[str, int, float | None]]:
        """Member -> (rung, rows, expected seconds) for this call: every member's best rung on the first call
        (it measures them, with no deadline), else the planner's most valuable steps that end by ``end``.

        A step still running :data:`OVERRUN_SHARE` of its expected time past its expected end (counted
        from when it starts) is left behind then (by ``end`` at the latest), so one member's overrun
        leaves the later steps their time.
        """
        members = [mem for mem in self.manifest.members if not runnable.get(mem.name)]
        if first or end is None:
            return {mem.name: (mem.variants[0].name, rows, None) for mem in members}
        states = [self._member_state(mem, rows) for mem in members]
        plan = planner.plan(states, self.clock(), planner.Budget(deadline=end))
        return {s.member: (s.variant, s.rows, s.expected_s) for s in plan.steps}

    def _member_state(self, member: Member, rows: int) -> planner.MemberState:
        variants = []
        for i, v in enumerate(member.variants):
            if i and self.costs.pruned_by(member.name, v.name):
                continue
            spr = self.costs.cautious_s_per_row(member.name, v.name) if self.costs.s_per_row(
                member.name, v.name) is not None else _UNKNOWN_S_PER_ROW
            loaded = v.name in self.pool.slots[member.name].runners
            variants.append(planner.Variant(v.name, spr, 0.0 if loaded else self.costs.setup_s(member.name, v.name),
                                            v.value_factor))
        return planner.MemberState(member.name, member.value, tuple(variants), rows)

    def close(self) -> None:
        """Close the members' sessions (the notebook's end; on Kaggle's rerun the container goes first)."""
        if self.pool is not None:
            self.pool.close()


def _accepted(fn: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The other arguments a features hook takes by name (all of them when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(inputs)
    return {k: v for k, v in inputs.items() if k in params}


__all__ = ["Predictor"]
