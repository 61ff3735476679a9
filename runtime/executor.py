"""Executing a plan against the clock: measure, re-plan, degrade, checkpoint.

:mod:`runtime.planner` decides; this module does the work and keeps the
planner's inputs true. The loop (:meth:`Executor.run`):

1. Members with no measured cost (no bundle profile, nothing saved by an
   earlier run in the work folder) are *probed*: loaded, then a warm-up batch
   and a short timed stretch of their first chunks. Those rows are kept.
2. Plan; run the first step chunk by chunk. Before each chunk, a chunk that
   would end past the limit (or past a partial step's finish) is not started.
   After each chunk the live throughput (:func:`planner.estimate_s_per_row`,
   and never less than the last few batches) feeds
   :func:`planner.should_replan`; on drift, re-plan: the planner then takes a
   cheaper variant, stops the running member, or drops members not started.
3. Every finished chunk is saved (:class:`runtime.checkpoint.ChunkStore`);
   each finished member triggers a rewrite of the submission. On resume, a
   saved chunk counts as done only once it loads with the right shape and
   finite values; one that does not is removed and recomputed.

A member whose backend raises is skipped with the reason; an out-of-memory
error halves the batch and retries, down to one row. Each pass of the loop
finishes a chunk or retires a member, so the loop ends.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from runtime import planner
from runtime.backends.base import Runner
from runtime.checkpoint import ChunkStore
from runtime.costs import CostModel
from runtime.data import TestData, apply_tta
from runtime.ensemble import activate
from runtime.errors import BackendError, BundleError, NinefitError, OutOfMemoryError
from runtime.manifest import Member, Variant
from runtime.memory import MemoryMonitor
from runtime.progress import Progress, log
from runtime.report import MemberReport, RunReport

#: Probing stops once this many seconds were timed (or 1/20 of the rows ran).
PROBE_S = 0.25
#: Cost assumed for a member nothing is known about (it is then never planned).
_UNKNOWN_S_PER_ROW = 1e9
_EPS = 1e-9


def predict_rows(
    runner: Runner, member: Member, variant: Variant, test: TestData, start: int, stop: int, batch_size: int = 0
) -> np.ndarray:
    """Activated predictions of one member for rows ``[start, stop)``, TTA-averaged."""
    feed = test.feed(member, start, stop, image_size=variant.image_size)
    total = None
    for t in variant.tta:
        outputs = runner.infer(apply_tta(feed, t, member))
        if member.output not in outputs:
            raise BackendError(f"{member.name}: model has no output {member.output!r}; outputs: {', '.join(outputs)}")
        values = activate(outputs[member.output], member.activation)
        total = values if total is None else total + values
    return total / len(variant.tta)


@dataclass
class _State:
    member: Member
    grid: list[tuple[int, int]]
    covered: dict[tuple[int, int], int]  # chunk -> index of the best variant holding it
    report: MemberReport
    batch: int
    status: str = "pending"  # pending / running (its runner is loaded) / done / failed / stopped
    drop_reason: str = ""
    last_variant: str = ""  # the variant it last ran on
    notes: list[str] = field(default_factory=list)
    progress: Progress | None = None  # kept across steps: one line per update period, not per re-plan

    def close_progress(self, status: str) -> None:
        if self.progress is not None:
            self.progress.close(status)
            self.progress = None

    @property
    def rows_total(self) -> int:
        return self.grid[-1][1] if self.grid else 0

    @property
    def rows_done(self) -> int:
        return sum(b - a for a, b in self.covered)

    def missing(self) -> list[tuple[int, int]]:
        return [c for c in self.grid if c not in self.covered]


class Executor:
    """Runs the members of one bundle to a deadline.

    Args:
        members: Manifest members, in manifest order.
        grids: Chunk grid of each member.
        test: The test data.
        store: Where chunks are saved (finished ones are resumed from it).
        load: ``(member, variant) -> Runner`` (not yet active).
        clock: Seconds since the notebook started; also times loads and batches
            (:class:`runtime.budget.Clock` reads ``perf_counter``; tests pass a fake one).
        budget: Deadline, margin and reserve on that clock.
        report: The run report to fill in (one MemberReport per member).
        monitor: Memory watcher.
        write_submission: Rewrites the submission; returns the seconds it took.
        profile: ``{member: {variant: {"s_per_row", "setup_s"}}}`` priors.
        batch_size: Override of every member's batch size.
        limited: False: no time limit (nothing is probed or degraded).
        fixed_reserve: False: grow the reserve to twice the slowest write.
        failed: Members known to fail before anything runs, with the reason.
        progress: Show progress lines.
        width: Values per row the submission needs from each member.
    """

    def __init__(self, members: tuple[Member, ...], grids: Mapping[str, list[tuple[int, int]]], test: TestData,
                 store: ChunkStore, load: Callable[[Member, Variant], Runner], clock: Callable[[], float],
                 budget: planner.Budget, report: RunReport, monitor: MemoryMonitor,
                 write_submission: Callable[[], float], *, profile: Mapping | None = None,
                 batch_size: int | None = None, limited: bool = True, fixed_reserve: bool = False,
                 failed: Mapping[str, str] | None = None, progress: bool = True, width: int):
        self.width = width
        self.test, self.store, self.load, self.clock = test, store, load, clock
        self.budget, self.report, self.monitor = budget, report, monitor
        self.write_submission = write_submission
        self.limited, self.fixed_reserve, self.progress = limited, fixed_reserve, progress
        self.write_s = 0.0
        self.runner: Runner | None = None
        self.loaded: tuple[str, str] | None = None  # (member, variant) of self.runner
        self.stepping: str | None = None  # member whose plan step runs (or last ran)
        self.costs = CostModel(members, profile, store.load_costs())
        self.states: dict[str, _State] = {}
        for m in members:
            mr = report.member(m.name)
            covered: dict[tuple[int, int], int] = {}
            for vi, v in enumerate(m.variants):  # best variant wins
                for a, b in sorted(store.chunks(m.name, v.name) & set(grids[m.name]) - set(covered)):
                    # Loaded, not trusted by name: a chunk the submission would reject is removed and recomputed.
                    if store.load(m.name, v.name, a, b, width) is not None:
                        covered[a, b] = vi
            st = _State(m, list(grids[m.name]), covered, mr, batch_size or m.batch_size)
            mr.chunks_resumed = len(covered)
            report.chunks_resumed += len(covered)
            if not st.missing():
                st.status = "done"
            if failed and m.name in failed:
                st.status, mr.reason = "failed", failed[m.name]
            self.states[m.name] = st

    # -- planning ---------------------------------------------------------------------
    def _planner_state(self, st: _State) -> planner.MemberState:
        variants = []
        name = st.member.name
        for v in st.member.variants:
            spr = self.costs.s_per_row(name, v.name)
            spr = (0.0 if not self.limited else _UNKNOWN_S_PER_ROW) if spr is None else spr
            # Each finished member rewrites the submission: charge that write as setup.
            variants.append(planner.Variant(v.name, spr, self.costs.setup_s(name, v.name) + self.write_s, v.value_factor))
        # Only a member a step started is "running" (pinned by the planner); one
        # just probed is pending, its runner kept in case the plan starts with it.
        loaded = self.loaded[1] if self.loaded and self.loaded[0] == st.member.name == self.stepping else None
        if st.status in ("done", "failed"):
            status = st.status
        elif st.status == "stopped":
            status = "dropped"
        else:
            status = "running" if loaded else "pending"
        return planner.MemberState(st.member.name, st.member.value, tuple(variants), st.rows_total, st.rows_done,
                                   status, loaded if status == "running" else None)

    def plan(self) -> planner.Plan:
        now = self.clock()
        p = planner.plan([self._planner_state(st) for st in self.states.values()], now, self.budget)
        self.report.replans += 1
        planned = {s.member for s in p.steps}
        for name in planned:
            self.states[name].drop_reason = ""
        for name, reason in p.dropped:
            st = self.states[name]
            if not st.drop_reason:
                verb, why = ("stopped", reason[len("stopped: "):]) if reason.startswith("stopped: ") else ("dropped", reason)
                self.event(f"{name}: {verb} at {now:.1f}s: {why}")
            st.drop_reason = reason
        return p

    # -- the loop -------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.limited:
                self._probe()
            while True:
                p = self.plan()
                if not p.steps:
                    break
                self._execute(p, p.steps[0])
        finally:
            self._unload()
            self._fill_reports()

    def _probe(self) -> None:
        """Measure members with no known cost on a first short stretch of their rows."""
        for st in self.states.values():
            name, v = st.member.name, st.member.variants[0]
            if st.status != "pending" or self.costs.s_per_row(name, v.name) is not None:
                continue
            if self.clock() >= self.budget.limit:
                break
            runner = self._ensure(st, v)
            if runner is None:
                continue
            r = self.costs.rate(name, v.name)
            for a, b in st.missing():
                if r.rows and (r.seconds >= PROBE_S or st.rows_done * 20 >= st.rows_total):
                    break
                if self.clock() + (b - a) * self.costs.cautious_s_per_row(name, v.name) > self.budget.limit:
                    break
                if not self._chunk(st, v, runner, a, b):
                    break
            if st.status == "running":
                spr = self.costs.s_per_row(name, v.name) or 0.0
                self.event(f"{name}: measured {v.name}: setup {self.costs.setup_s(name, v.name):.2f}s, "
                           f"{spr * 1e3:.3g} ms/row")
                if not st.missing():
                    self._finish(st)

    def _execute(self, p: planner.Plan, step: planner.Step) -> None:
        st = self.states[step.member]
        v = st.member.variant(step.variant)
        names = [x.name for x in st.member.variants]
        before = st.last_variant or names[0]
        if names.index(v.name) > names.index(before):
            ms = self._planner_state(st)
            now = self.clock()
            need = planner.expected_seconds(ms, ms.variants[names.index(before)])
            why = f"{before} would need {need:.1f}s for the {ms.rows_left} rows left, {self.budget.limit - now:.1f}s left"
            self.event(f"{st.member.name}: degraded to {v.name} at {now:.1f}s: {why}")
            st.notes.append(f"{before} -> {v.name} at {now:.1f}s: {why}")
        st.last_variant = v.name
        self.stepping = st.member.name
        runner = self._ensure(st, v)
        if runner is None:
            return
        label = st.member.name if v is st.member.variants[0] else f"{st.member.name}/{v.name}"
        if st.progress is None or st.progress.label != label:
            st.close_progress("paused")
            st.progress = Progress(label, st.rows_total, enabled=self.progress, done=st.rows_done)
        rows = 0
        for a, b in st.missing():
            if rows >= step.rows:
                break
            spr = self.costs.cautious_s_per_row(st.member.name, v.name)
            end = step.finish if step.partial else self.budget.limit
            now = self.clock()
            if self.limited and now + (b - a) * spr > end + _EPS:
                if rows == 0:  # not one chunk fits: retire it, so the loop always progresses
                    st.status = "stopped"
                    st.drop_reason = (f"stopped at {now:.1f}s: the next chunk ({b - a} rows, ~{(b - a) * spr:.1f}s) "
                                      f"would end past the limit")
                    self.event(f"{st.member.name}: {st.drop_reason}")
                break
            if not self._chunk(st, v, runner, a, b):
                return
            rows += b - a
            st.progress.update(st.rows_done)
            if self.limited and not step.partial and planner.should_replan(
                p, step, self.clock(), min(rows, step.rows), s_per_row=self.costs.s_per_row(st.member.name, v.name)
            ):
                break
        if st.status == "running" and not st.missing():
            self._finish(st)
        elif st.status == "stopped":
            self._unload()

    # -- one member, one chunk ----------------------------------------------------------
    def _ensure(self, st: _State, v: Variant) -> Runner | None:
        """The active runner for ``v``: reused if loaded, else loaded (timed). None if it failed."""
        if self.loaded == (st.member.name, v.name) and self.runner is not None:
            return self.runner
        self._unload()
        t0 = self.clock()
        try:
            runner = self.load(st.member, v)
            runner.activate()
        except Exception as exc:
            self._fail(st, exc, f"could not load {v.name}")
            return None
        dt = self.clock() - t0
        self.costs.loaded(st.member.name, v.name, dt, gpu=runner.device_kind() == "gpu")
        if getattr(runner, "fell_back", False):  # its profile was measured on another backend
            self.costs.rebase(st.member.name)
        st.report.load_seconds += dt
        st.report.backend = runner.describe()
        self.runner, self.loaded, st.status = runner, (st.member.name, v.name), "running"
        log(f"{st.member.name}/{v.name}: {st.report.backend}, batch {st.batch}, loaded in {dt:.2f}s")
        return runner

    def _unload(self) -> None:
        if self.runner is None:
            return
        name = self.loaded[0]
        try:
            self.runner.deactivate()
        except Exception as exc:  # a runner failing to close must not end the run
            log(f"{name}: error while unloading: {exc}")
        self.runner, self.loaded = None, None
        st = self.states[name]
        if st.status == "running":
            st.status = "pending"

    def _chunk(self, st: _State, v: Variant, runner: Runner, a: int, b: int) -> bool:
        """Predict, check and save one chunk. False when the member failed (and was skipped)."""
        try:
            if self.monitor.low_on_ram() and st.batch > 1:
                st.batch = max(1, st.batch // 2)
                self.event(f"{st.member.name}: RAM nearly exhausted, batch size halved to {st.batch}")
            values = self._predict(st, v, runner, a, b)
            self.store.save(st.member.name, v.name, a, values)
        except Exception as exc:
            self._fail(st, exc, f"rows {a}-{b} on {v.name}")
            return False
        st.covered[(a, b)] = st.member.variants.index(v)
        st.report.chunks_computed += 1
        st.report.rows_computed += b - a
        return True

    def _predict(self, st: _State, v: Variant, runner: Runner, a: int, b: int) -> np.ndarray:
        parts, pos, width = [], a, self.width
        while pos < b:
            n = min(st.batch, b - pos)
            t0 = self.clock()
            try:
                values = predict_rows(runner, st.member, v, self.test, pos, pos + n, n)
            except OutOfMemoryError as exc:
                if st.batch <= 1:
                    raise OutOfMemoryError(f"{exc} (even at batch size 1)") from exc
                st.batch = max(1, st.batch // 2)
                st.report.oom_retries += 1
                self.event(f"{st.member.name}: out of memory, batch size halved to {st.batch} and retried")
                continue
            dt = self.clock() - t0
            if values.shape != (n, width):
                raise BundleError(f"{st.member.name}: output {st.member.output!r} has shape {values.shape[1:]}, "
                                  f"but the submission needs {width} values per row")
            if not np.isfinite(values).all():
                raise BackendError(f"{st.member.name}/{v.name}: non-finite outputs in rows {pos}-{pos + n}")
            rate = self.costs.rate(st.member.name, v.name)
            if rate.warm:
                st.report.seconds += dt
            else:  # the first batch after a load: kept out of the throughput, and booked apart
                st.report.warmup_seconds += dt
                st.report.warmup_rows += n
            rate.add(n, dt)
            parts.append(values)
            pos += n
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _fail(self, st: _State, exc: BaseException, where: str) -> None:
        st.close_progress("failed")
        self._unload()
        st.status = "failed"
        kind = "" if isinstance(exc, NinefitError) else f"{type(exc).__name__}: "
        st.report.reason = f"failed ({where}): {kind}{exc}"[:600]
        self.event(f"{st.member.name}: {st.report.reason}; skipped, the run goes on")
        if not isinstance(exc, NinefitError):  # a bug somewhere: keep the trace for the log
            log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)).rstrip())

    def _finish(self, st: _State) -> None:
        st.close_progress("done")
        self._unload()
        st.status = "done"
        self._save_costs()
        try:
            self.after_write(self.write_submission())
        except OSError as exc:  # the previous file is still whole on disk; the final write retries
            self.event(f"could not rewrite the submission after {st.member.name}: {exc}")

    def after_write(self, seconds: float) -> None:
        """Account for one submission write: later writes and the reserve are sized from it."""
        self.write_s = max(self.write_s, seconds)
        if not self.fixed_reserve:
            self.budget = replace(self.budget, reserve_s=max(self.budget.reserve_s, 2 * seconds))

    def _save_costs(self) -> None:
        costs = self.store.load_costs()
        for member, variants in self.costs.measured().items():
            costs.setdefault(member, {}).update(variants)
        try:
            self.store.save_costs(costs)
        except OSError as exc:
            log(f"could not save measured costs: {exc}")

    def event(self, text: str) -> None:
        self.report.events.append(text)
        log(text)

    def delivered(self) -> tuple[float, float]:
        """Shares of the ensemble's weight and value delivered, row-weighted (failed members count 0)."""
        weight = value = 0.0
        for st in self.states.values():
            if st.status == "failed" or not st.rows_total:
                continue
            weight += st.member.weight * st.rows_done / st.rows_total
            factors = sum((b - a) * st.member.variants[i].value_factor for (a, b), i in st.covered.items())
            value += st.member.value * factors / st.rows_total
        total_w = sum(st.member.weight for st in self.states.values())
        total_v = sum(st.member.value for st in self.states.values())
        return (weight / total_w if total_w else 0.0), (value / total_v if total_v else 0.0)

    def _fill_reports(self) -> None:
        for st in self.states.values():
            st.close_progress("stopped")
            mr = st.report
            used = sorted(set(st.covered.values()))
            mr.variants = [st.member.variants[i].name for i in used]
            counts: dict[int, int] = {}
            for (a, b), i in st.covered.items():
                counts[i] = counts.get(i, 0) + b - a
            mr.variant = st.member.variants[max(counts, key=counts.get)].name if counts else st.member.variants[0].name
            mr.rows, mr.batch_size = st.rows_done, st.batch
            mr.s_per_row = self.costs.s_per_row(st.member.name, mr.variant)
            if st.status == "failed":
                mr.status, mr.rows = "failed", 0  # its rows are left out of the submission
            elif st.rows_total and not st.missing():
                mr.status = "done" if used == [0] else "degraded"
                mr.reason = "; ".join(st.notes) if used != [0] else ""
            elif st.rows_done:
                mr.status = "partial"
                mr.reason = "; ".join([*st.notes, st.drop_reason or "stopped at the limit"])
            else:
                mr.status = "dropped"
                mr.reason = st.drop_reason or "not started: no time left"


__all__ = ["PROBE_S", "Executor", "predict_rows"]
