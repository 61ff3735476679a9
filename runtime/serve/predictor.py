"""The budgeted ``predict`` of a serving run (see :mod:`runtime.serve`)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime import backends
from runtime.bundle import Bundle, open_bundle
from runtime.errors import DataError, UsageError
from runtime.hooks import HOOKS_DIR, HookCaller, apply_features, load_hook
from runtime.manifest import SERVED_MODES, Manifest, Member, Variant
from runtime.output.ensemble import Accumulator
from runtime.output.formats import width
from runtime.progress import log
from runtime.schedule import planner
from runtime.schedule.budget import Clock
from runtime.schedule.costs import CostModel
from runtime.serve.batch import Batch, answer, read_batch
from runtime.serve.budget import CallBudget
from runtime.serve.members import MemberPool, Outcome
from runtime.serve.options import ServeOptions
from runtime.serve.pacing import Pace, Rung, Share, allocate
from runtime.serve.report import CallRecord, ServeReport, default_report_path
from runtime.serve.rows import BatchRows

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
        self.pace = Pace(options.expected_rows, options.expected_batches)
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
        shares = None if first else self._shares(batch.rows)
        end = self._call_end = self.budget.call_end(self.clock(), first=first, share_s=self._share_s(batch.rows))
        record.end_s, record.share_s = end, (None if end is None else round(end - t0, 4))
        member_s = 0.0
        try:
            values, covered, member_s = self._predict(batch, end, record, first, shares)
        except Exception as exc:  # noqa: BLE001 - never raise for what the members do: the fallback answers
            record.events.append(f"the batch's work failed ({type(exc).__name__}: {exc}); it takes the fallback")
            values, covered = np.full((batch.rows, width(self.manifest.submission)), np.nan), np.zeros(batch.rows, bool)
        result = answer(batch, values, covered, self.manifest.submission, self.options, self.manifest.data.id_column,
                        record.events)
        record.fallback_rows = int(batch.rows - covered.sum())
        record.latency_s = round(self.clock() - t0, 4)
        if record.deadline_s is not None:
            record.slack_s = round(record.deadline_s - record.latency_s, 4)
        self.budget.measured(max(0.0, record.latency_s - member_s - record.load_s), first=first)
        self.pace.seen(batch.rows)
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
    def _predict(self, batch: Batch, end: float | None, record: CallRecord, first: bool,
                 shares: dict[str, Share] | None) -> tuple[np.ndarray, np.ndarray, float]:
        """The batch through the features hook and the members the plan gives it; (values, covered, seconds)."""
        m, pool = self.manifest, self.pool
        assert pool is not None, "_load makes the pool on the first call"
        n = batch.rows
        acc = Accumulator(n, width(m.submission), m.combiner)
        if not n:
            return acc.result(), acc.covered, 0.0
        test, unfed = self._test_data(batch, record)
        runnable = self._runnable(test, record)
        steps = self._plan(runnable, n, end, first=first, shares=shares)
        t0 = self.clock()
        outcomes = {name: Outcome(name, reason=why or "left out: not enough time")
                    for name, why in runnable.items() if name not in steps}
        members = {mem.name: mem for mem in m.members}
        for name, (variant, rows, expected) in steps.items():  # the plan's order: best value per second first
            member = members[name]
            until = None if expected is None or end is None else min(end, self.clock() + (1 + OVERRUN_SHARE) * expected + OVERRUN_FLOOR_S)
            out = pool.run(member, member.variant(variant), test, rows, end, until)
            outcomes[member.name] = out
            if first and out.status == "done":
                pool.measure(member, member.variant(variant), test, rows)
            if out.values is not None and len(out.values):
                acc.add(member.weight, 0, out.values)
        record.members = [outcomes[mem.name].to_dict() for mem in m.members if mem.name in outcomes]
        covered = acc.covered if unfed is None else acc.covered & ~unfed
        return acc.result(), covered, self.clock() - t0

    def _test_data(self, batch: Batch, record: CallRecord) -> tuple[BatchRows, np.ndarray | None]:
        """The batch's rows as the members read them, with the features hook's columns (rows it failed on: returned)."""
        m, bundle = self.manifest, self.bundle
        assert bundle is not None, "_load opens the bundle on the first call"
        id_col = m.data.id_column
        ids = ([str(x) for x in batch.column(id_col)] if id_col in batch.table.columns
               else [str(i) for i in range(batch.rows)])
        if self._features is None:
            return BatchRows(batch.table, ids, m.data, bundle.root), None
        inputs = _accepted(self._features.fn, batch.inputs)
        result = apply_features(batch.frame, m.data.features, bundle.path(HOOKS_DIR), ids=ids,
                                columns=m.data.features_columns, chunk_rows=max(batch.rows, 1), hook=self._features,
                                inputs=inputs)
        record.events += result.events
        return BatchRows(result.frame, ids, m.data, bundle.root, pandas=result.frame), result.failed

    def _runnable(self, test: BatchRows, record: CallRecord) -> dict[str, str]:
        """Each member that may run this batch -> "" , or why not (it is then skipped)."""
        out = {}
        assert self.pool is not None, "_load makes the pool on the first call"
        for member in self.manifest.members:
            why = self.pool.available(member.name)
            if not why:
                try:
                    test.check(member)
                except DataError as exc:  # a missing or renamed column, a dtype it cannot take
                    why = f"the batch does not fit it: {exc}"
            out[member.name] = why
        return out

    def _plan(self, runnable: dict[str, str], rows: int, end: float | None, first: bool,
              shares: dict[str, Share] | None) -> dict[str, tuple[str, int, float | None]]:
        """Member -> (rung, rows, expected seconds) for this call: every member's best rung on the first call
        (it measures them, with no deadline), else the planner's most valuable steps that end by ``end``,
        each member on its paced rung and share of the rows (or cheaper) where the run is paced.

        A step still running :data:`OVERRUN_SHARE` of its expected time past its expected end (counted
        from when it starts) is left behind then (by ``end`` at the latest), so one member's overrun
        leaves the later steps their time.
        """
        members = [mem for mem in self.manifest.members if not runnable.get(mem.name)]
        if first or end is None:
            return {mem.name: (mem.variants[0].name, rows, None) for mem in members}
        states = []
        for mem in members:
            share = None if shares is None else shares.get(mem.name)
            if shares is not None and share is None:
                continue  # paced out: its time is worth more to the others
            n = rows if share is None else self.pace.rows_of(mem.name, share, rows)
            if n:
                states.append(self._member_state(mem, n, None if share is None else share.rung))
        plan = planner.plan(states, self.clock(), planner.Budget(deadline=end), fill=shares is None)
        return {s.member: (s.variant, s.rows, s.expected_s) for s in plan.steps}

    def _rungs(self, member: Member, start: str | None = None, *,
               mean: bool = False) -> list[tuple[Variant, float, float]]:
        """(rung, seconds per row, setup seconds) down the member's ladder from ``start`` (default: its best),
        the pruned rungs left out: the cautious cost (a call's plan), or the ``mean`` (the run's pace); a rung
        never measured costs :data:`_UNKNOWN_S_PER_ROW`."""
        out, names = [], [v.name for v in member.variants]
        assert self.costs is not None and self.pool is not None, "_load makes them on the first call"
        cost = self.costs.mean_s_per_row if mean else self.costs.cautious_s_per_row
        for i, v in enumerate(member.variants[names.index(start) if start in names else 0:]):
            if (i or start) and self.costs.pruned_by(member.name, v.name):
                continue
            known = self.costs.s_per_row(member.name, v.name) is not None
            spr = cost(member.name, v.name) if known else None  # (known: either cost is a number)
            spr = _UNKNOWN_S_PER_ROW if spr is None else spr
            loaded = v.name in self.pool.slots[member.name].runners
            out.append((v, spr, 0.0 if loaded else self.costs.setup_s(member.name, v.name)))
        return out

    def _member_state(self, member: Member, rows: int, start: str | None) -> planner.MemberState:
        variants = [planner.Variant(v.name, spr, setup, v.value_factor) for v, spr, setup in self._rungs(member, start)]
        return planner.MemberState(member.name, member.value, tuple(variants), rows)

    # -- pacing -----------------------------------------------------------------------
    def _paced(self) -> bool:
        return self.pace.known and self.budget.notebook_end() is not None

    def _calls_left(self, rows: int) -> float:
        """Calls still to come, this one included."""
        if self.options.expected_batches is not None:
            return max(1.0, float(self.options.expected_batches - self.calls))
        return max(1.0, self.pace.rows_left(rows) * self.calls / max(self.pace.rows_seen, 1))

    def _member_time_left(self, rows: int) -> float:
        """The notebook's time left for the members: its time left less each call's overhead to come."""
        left = self.budget.time_left(self.clock())
        assert left is not None, "asked only where the run is paced: the notebook has an end"
        return left - self._calls_left(rows) * self.budget.mean_overhead_s

    def _shares(self, rows: int) -> dict[str, Share] | None:
        """Each member's rung and share of this batch's rows, pacing the notebook's time over the rows to
        come (:mod:`~runtime.serve.pacing`); None where the rows to come are not known."""
        if not self._paced():
            return None
        rows_left = self.pace.rows_left(rows)
        ladders: dict[str, Sequence[Rung]] = {}
        assert self.pool is not None, "_load makes the pool on the first call (no shares are asked for on it)"
        for mem in self.manifest.members:
            if self.pool.available(mem.name):
                continue
            ladders[mem.name] = [Rung(v.name, spr + setup / rows_left, mem.value * v.value_factor)
                                 for v, spr, setup in self._rungs(mem, mean=True) if spr < _UNKNOWN_S_PER_ROW]
        return allocate(ladders, max(0.0, self._member_time_left(rows)) / rows_left)

    def _share_s(self, rows: int) -> float | None:
        """The call's share of the notebook's time: twice this batch's paced part of the time left (room for
        jitter: the pace evens it out over the later calls), or the time left over the calls left."""
        left = self.budget.time_left(self.clock())
        if left is None:  # the notebook has no end
            return None
        if self._paced():
            return 2.0 * left * rows / self.pace.rows_left(rows)
        if self.options.expected_batches is not None:
            return left / self._calls_left(rows)
        return None

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
