"""Executing a plan against the clock: measure, re-plan, degrade, checkpoint.

:mod:`runtime.schedule.planner` decides; this module does the work and keeps the
planner's inputs true. The loop (:meth:`Executor.run`):

1. At the start every member is *probed* on this machine (:mod:`runtime.schedule.probing`): loaded, then a
   warm-up batch and a short timed stretch (:data:`PROBE_S`) of its first
   chunks, on the rung a plan made on what is known then gives it (its
   cheapest, if that plan drops it); those rows are kept as results. Members
   go most valuable per second first (on their priors). All probes together
   may take :data:`PROBE_SHARE` of the time left, as predicted from the priors; a
   member whose probe would not fit that share is not probed and is costed
   from its prior times the machine factor (:meth:`CostModel.calibration`),
   except the first, whose rows are the work the plan values most anyway.
   The machine factor is founded on best rungs only (a lower rung's error,
   fp16 profiled on a GPU and run on a CPU, may be its own), so until one is
   measured, one probe at a time runs a member's best rung whatever the share
   (the first probe excepted); until then a lower rung measured moves its
   member's other rungs and the same rung of other members
   (:meth:`CostModel.s_per_row`). No chunk is ever started that is
   predicted to end past the limit, so the probe cannot break the deadline. A member with no prior at all is always
   probed (it cannot be planned otherwise); one whose costs an earlier run
   measured here is not.
2. Plan; run the first step chunk by chunk. Before each chunk, a chunk that
   would end past the limit (or past a partial step's finish) is not started.
   After each chunk the live throughput (measured here, it replaces the
   prior at once; never less than the last few batches) feeds
   :func:`planner.should_replan`; on drift, re-plan: the planner then takes a
   cheaper variant, stops the running member, or drops members not started.
   The run also re-plans when a step runs well ahead of its plan while
   members are dropped, when a member finishes, stops or fails, and when a
   rung is pruned (measured not cheaper than the rung above it,
   :meth:`CostModel.pruned_by`). Dropped and stopped members are candidates
   again at every plan, as long as their next chunk fits. Each change of a
   member's decision is kept in its report, with the costs it was made on.
3. Every finished chunk is saved (:class:`runtime.execute.checkpoint.ChunkStore`);
   a finished member rewrites the submission while work is left, once
   :data:`WRITE_SPACING` times the slowest write has passed since the last
   write (a kill then loses at most that much of the finished members' rows
   from the file, none from the checkpoints). On resume, a
   saved chunk counts as done only once it loads with the right shape and
   values; one that does not is removed and recomputed.
4. Unless fixed, the margin follows the measured jitter
   (:func:`runtime.schedule.budget.measured_margin`: twice the largest overrun of a
   chunk over its prediction from a measured rate), and the reserve twice
   the slowest submission write.

Lanes (:mod:`runtime.execute.lanes`): with several, each lane is a thread with
runners of its own, and :func:`runtime.schedule.planner.plan_lanes` says what each runs
(:meth:`Executor.run` has the mechanics). At the start each lane probes the
next member of the probe list (one lane no longer measures while the others
wait: a probe on a wrong prior can take seconds), and a lane with none left
to probe is given plan steps at once. Out of memory halves the batch of the lane it
happened on only; a member failing on one lane is retired there and goes on
elsewhere, and fails only once every lane retired it. Two lanes never compute
the same chunk, so the chunks (and the submission) do not depend on lanes.

Rows, not chunks, are what a member covers: a row whose inputs are not
finite (missing-value policy "skip", :mod:`runtime.data`) or whose outputs
are not is saved as a row of NaN in its chunk, and the ensemble leaves that
member out of that row only (:class:`runtime.output.ensemble.Accumulator`).

A member whose backend raises is skipped with the reason; an out-of-memory
error halves the batch and retries, down to one row (a text member's token
budget, ``max_tokens``, is halved instead when it has one; its chunks run in
length-sorted, dynamically padded batches: :mod:`runtime.data.text`). Each pass of
the loop finishes a chunk or retires a member (a member stopped because its
next chunk cannot fit is only planned again once it can), so the loop ends.
"""

from __future__ import annotations

import math
import queue
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np

from runtime.schedule import planner
from runtime.backends.base import Runner
from runtime.schedule.budget import measured_margin
from runtime.execute.checkpoint import ChunkStore
from runtime.schedule.costs import CostModel
from runtime.data.testdata import TestData
from runtime.errors import BundleError, NinefitError, OutOfMemoryError, StorageError
from runtime.execute.lanes import LaneLog
from runtime.manifest import Member, Variant
from runtime.execute.memory import MemoryMonitor
from runtime.data.pipeline import FeedPipeline
from runtime.execute.predict import nan_rows, predict_rows, predict_windows
from runtime.schedule.probing import PROBE_S, PROBE_SHARE, ProbeRound, Probing
from runtime.progress import Progress, format_seconds, log
from runtime.output.report import MemberReport, RunReport
from runtime.data.text import Chunk

#: A finished member rewrites the submission only once this many times the slowest write has
#: passed since the last one (so the safety writes take ~1/WRITE_SPACING of the run at most), and
#: only while work is left (else the final write follows at once).
WRITE_SPACING = 10.0
#: A step running this share of its expected time ahead of plan re-plans, when members are dropped.
AHEAD_TOLERANCE = 0.1
#: Cost assumed for a member nothing is known about (it is then never planned).
_UNKNOWN_S_PER_ROW = 1e9
_EPS = 1e-9
#: The lane the current thread works for (lane threads set it; the main thread is lane 0).
_LANE = threading.local()


def _lane_index() -> int:
    return getattr(_LANE, "index", 0)


@dataclass
class _State:
    member: Member
    grid: list[tuple[int, int]]
    covered: dict[tuple[int, int], int]  # chunk -> index of the best variant holding it
    report: MemberReport
    start_batch: int
    status: str = "pending"  # pending / running (its runner is loaded) / done / failed / stopped
    drop_reason: str = ""
    last_variant: str = ""  # the variant it last ran on
    notes: list[str] = field(default_factory=list)
    decision: tuple[str, str] = ("", "")  # (kind, variant) of the last decision recorded
    pruned: set[str] = field(default_factory=set)  # rungs pruned (for the events)
    stuck_at: int = -1  # Executor.chunks_run when its next chunk last did not fit
    progress: Progress | None = None  # kept across steps: one line per update period, not per re-plan
    skipped: dict[tuple[int, int], int] = field(default_factory=dict)  # chunk -> its rows without a prediction
    start_tokens: int = 0  # text members: padded tokens per batch (0: ``batch`` windows per batch)
    # Per lane (out of memory on one lane halves that lane's batch only): lane -> batch / token budget.
    batches: dict[int, int] = field(default_factory=dict)
    token_budgets: dict[int, int] = field(default_factory=dict)
    inflight: set[tuple[int, int]] = field(default_factory=set)  # chunks a lane is computing now
    probing: bool = False  # a lane is probing it (or will): no decision is recorded for it until then

    @property
    def batch(self) -> int:
        """The current lane's batch size."""
        return self.batches.get(_lane_index(), self.start_batch)

    @batch.setter
    def batch(self, n: int) -> None:
        self.batches[_lane_index()] = n

    @property
    def tokens(self) -> int:
        """The current lane's token budget per batch (text members; 0: none)."""
        return self.token_budgets.get(_lane_index(), self.start_tokens)

    @tokens.setter
    def tokens(self, n: int) -> None:
        self.token_budgets[_lane_index()] = n

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

    @property
    def rows_covered(self) -> int:
        """Rows with a prediction: those of finished chunks, less the skipped ones."""
        return self.rows_done - sum(self.skipped.get(c, 0) for c in self.covered)

    def missing(self) -> list[tuple[int, int]]:
        return [c for c in self.grid if c not in self.covered]

    def claim(self) -> tuple[int, int] | None:
        """The first chunk neither done nor being computed by a lane, now marked as being computed."""
        for c in self.grid:
            if c not in self.covered and c not in self.inflight:
                self.inflight.add(c)
                return c
        return None


@dataclass
class _Lane:
    """One lane of the executor: its loader (sessions on its device or thread share) and what it holds."""

    index: int
    name: str
    load: Callable[[Member, Variant], Runner]
    runner: Runner | None = None
    loaded: tuple[str, str] | None = None  # (member, variant) of its runner
    stepping: str | None = None  # member whose plan step runs (or last ran) on it
    retired: dict[str, str] = field(default_factory=dict)  # member -> why it failed on this lane
    log: LaneLog = field(default_factory=LaneLog)


class Executor(Probing):
    """Runs the members of one bundle to a deadline.

    Args:
        members: Manifest members, in manifest order.
        grids: Chunk grid of each member.
        test: The test data.
        store: Where chunks are saved (finished ones are resumed from it).
        load: ``(member, variant) -> Runner`` (not yet active).
        clock: Seconds since the notebook started; also times loads and batches
            (:class:`runtime.schedule.budget.Clock` reads ``perf_counter``; tests pass a fake one).
        budget: Deadline, margin and reserve on that clock.
        report: The run report to fill in (one MemberReport per member).
        monitor: Memory watcher.
        write_submission: Rewrites the submission; returns the seconds it took.
        profile: ``{member: {variant: {"s_per_row", "setup_s"}}}`` priors.
        batch_size: Override of every member's batch size.
        limited: False: no time limit (nothing is probed or degraded).
        fixed_reserve: False: grow the reserve to twice the slowest write.
        fixed_margin: False: derive the margin from the measured jitter
            (:func:`runtime.schedule.budget.measured_margin`).
        failed: Members known to fail before anything runs, with the reason.
        progress: Show progress lines.
        width: Values per row the submission needs from each member.
        lanes: ``(name, load)`` per lane (:mod:`runtime.execute.lanes`); default one lane with ``load``.
            With several, each runs its plan steps in a thread of its own (see :meth:`run`).
        feeds: Where chunks' inputs come from, prepared ahead (default: a
            :class:`runtime.data.pipeline.FeedPipeline` of its own, closed by :meth:`run`).
    """

    def __init__(self, members: tuple[Member, ...], grids: Mapping[str, list[tuple[int, int]]], test: TestData,
                 store: ChunkStore, load: Callable[[Member, Variant], Runner], clock: Callable[[], float],
                 budget: planner.Budget, report: RunReport, monitor: MemoryMonitor,
                 write_submission: Callable[[], float], *, profile: Mapping | None = None,
                 batch_size: int | None = None, limited: bool = True, fixed_reserve: bool = False,
                 fixed_margin: bool = False, failed: Mapping[str, str] | None = None, progress: bool = True,
                 width: int, device_check: Callable[[Runner], str | None] | None = None,
                 feeds: FeedPipeline | None = None,
                 lanes: Sequence[tuple[str, Callable[[Member, Variant], Runner]]] | None = None):
        self.width = width
        self._own_feeds = feeds is None
        self.feeds = feeds if feeds is not None else FeedPipeline(test, members)
        self.device_check = device_check  # a loaded runner -> the warning that it runs on the wrong device
        self.test, self.store, self.load, self.clock = test, store, load, clock
        self.budget, self.report, self.monitor = budget, report, monitor
        self.write_submission = write_submission
        self.limited, self.fixed_reserve, self.progress = limited, fixed_reserve, progress
        self.fixed_margin = fixed_margin or not limited
        self.write_s = 0.0
        self.overrun_s = 0.0  # largest time a chunk took beyond its prediction from a measured rate
        self._founding: set[str] = set()  # members probed on their best rung to found the machine factor
        self._written_at = -math.inf  # when the last submission write ended
        self.chunks_run = 0  # chunks computed in this run, by every member
        self.lanes = [_Lane(i, name, fn) for i, (name, fn) in enumerate(lanes or [("lane0", load)])]
        self._lock = threading.RLock()  # held by a lane thread except while it loads or infers
        self._halt = False  # a lane hit an unexpected error: the others stop after their chunk
        self._ended: queue.Queue | None = None  # lane events for the coordinator (several lanes only)
        self._want_tick = False  # a lane is idle: busy lanes tell the coordinator after each chunk
        self._dali = threading.Lock()  # DALI pipelines are not known to be thread-safe: lanes decode in turn
        self._writing = threading.Lock()  # one submission write at a time, outside the executor's lock
        self.costs = CostModel(members, profile, store.load_costs())
        self.states: dict[str, _State] = {}
        for m in members:
            mr = report.member(m.name)
            covered: dict[tuple[int, int], int] = {}
            skipped: dict[tuple[int, int], int] = {}
            for vi, v in enumerate(m.variants):  # best variant wins
                for a, b in sorted(store.chunks(m.name, v.name) & set(grids[m.name]) - set(covered)):
                    # Loaded, not trusted by name: a chunk the submission would reject is removed and recomputed.
                    values = store.load(m.name, v.name, a, b, width)
                    if values is not None:
                        covered[a, b] = vi
                        skipped[a, b] = nan_rows(values)
            st = _State(m, list(grids[m.name]), covered, mr, batch_size or m.batch_size, skipped=skipped,
                        start_tokens=m.text.max_tokens if m.text is not None else 0)
            mr.chunks_resumed = len(covered)
            report.chunks_resumed += len(covered)
            if not st.missing():
                st.status = "done"
            if failed and m.name in failed:
                st.status, mr.reason = "failed", failed[m.name]
            self.states[m.name] = st

    # -- lanes ------------------------------------------------------------------------
    def _lane(self) -> _Lane:
        """The lane the calling thread works for."""
        return self.lanes[_lane_index()]

    @property
    def runner(self) -> Runner | None:
        return self._lane().runner

    @runner.setter
    def runner(self, runner: Runner | None) -> None:
        self._lane().runner = runner

    @property
    def loaded(self) -> tuple[str, str] | None:
        """(member, variant) of the current lane's runner."""
        return self._lane().loaded

    @loaded.setter
    def loaded(self, what: tuple[str, str] | None) -> None:
        self._lane().loaded = what

    @property
    def stepping(self) -> str | None:
        """Member whose plan step runs (or last ran) on the current lane."""
        return self._lane().stepping

    @stepping.setter
    def stepping(self, name: str | None) -> None:
        self._lane().stepping = name

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Let the other lanes book and plan while this one loads or infers (a no-op with one lane)."""
        if not getattr(_LANE, "locked", False):
            yield
            return
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()

    @contextmanager
    def _as_lane(self, lane: _Lane) -> Iterator[None]:
        """Act for ``lane`` in this thread (the coordinator unloading an idle lane)."""
        before = _lane_index()
        _LANE.index = lane.index
        try:
            yield
        finally:
            _LANE.index = before

    # -- planning ---------------------------------------------------------------------
    def _planner_state(self, st: _State) -> planner.MemberState:
        variants = []
        name = st.member.name
        for i, v in enumerate(st.member.variants):
            if i and self.costs.pruned_by(name, v.name):
                continue  # measured not cheaper than a better rung: never worth taking
            spr = self.costs.s_per_row(name, v.name)
            spr = (0.0 if not self.limited else _UNKNOWN_S_PER_ROW) if spr is None else spr
            # A finished member rewrites the submission: its write is charged once, as the setup of a
            # member not started. A running member's setup is its load on another lane (the lanes
            # running it pay none: planner.layout._lane_setup), so a short tail is still split; a runner
            # still loaded by a probe costs nothing to start.
            loaded = any(lane.loaded == (name, v.name) for lane in self.lanes)
            if loaded and st.status == "running":
                setup = self.costs.setup_s(name, v.name)
            else:
                setup = (0.0 if loaded else self.costs.setup_s(name, v.name)) + self.write_s
            variants.append(planner.Variant(v.name, spr, setup, v.value_factor))
        # Only a member a step started is "running" (pinned by the planner); one
        # just probed is pending, its runner kept in case the plan starts with it.
        loaded = next((lane.loaded[1] for lane in self.lanes
                       if lane.loaded and lane.loaded[0] == st.member.name == lane.stepping), None)
        if loaded not in {v.name for v in variants}:
            loaded = None  # its rung was pruned: the plan may reload a better one
        if st.status in ("done", "failed"):
            status = st.status
        elif st.status == "stopped":
            status = "dropped"
        else:
            status = "running" if loaded else "pending"
        return planner.MemberState(st.member.name, st.member.value, tuple(variants), st.rows_total, st.rows_done,
                                   status, loaded if status == "running" else None)

    def _blocked(self, st: _State, ms: planner.MemberState, now: float) -> str:
        """Why not even the member's next chunk fits before the limit on any rung ("" if one does)."""
        if not self.limited or ms.status in ("done", "failed") or not ms.rows_left:
            return ""
        if st.status == "stopped" and st.stuck_at == self.chunks_run:
            # Stopped since the last chunk of anyone: nothing changed that could make it fit.
            return st.drop_reason[len("stopped at "):] if st.drop_reason.startswith("stopped at ") else st.drop_reason
        a, b = st.missing()[0]
        need = min(planner.expected_seconds(ms, v, rows=0) + (b - a) * self.costs.cautious_s_per_row(ms.name, v.name)
                   for v in ms.variants)
        left = self.budget.limit - now
        if ms.status == "running" or now + need <= self.budget.limit + _EPS:  # the running step checks its own chunks
            return ""
        return f"its next chunk ({b - a} rows) would need {format_seconds(need)}, {format_seconds(left)} left"

    def plan(self) -> planner.Plan:
        """Re-plan from the costs known now; records each member whose decision changed."""
        now = self.clock()
        states, blocked = {}, {}
        for st in self.states.values():
            for v in st.member.variants[1:]:  # a rung shown not cheaper by another's measurement: said once
                self._pruned(st, v)
            if st.probing and all(self.costs.s_per_row(st.member.name, v.name) is None for v in st.member.variants):
                continue  # no cost known yet, being measured on a lane: planned once it is
            ms = self._planner_state(st)
            why = self._blocked(st, ms, now)
            if why:
                blocked[ms.name] = f"stopped: {why}" if st.rows_done and ms.status != "pending" else why
            else:
                states[ms.name] = ms
        p = planner.plan_lanes(list(states.values()), now, self.budget, self._planner_lanes(states), fill=self.limited,
                               quantum={n: max(b - a for a, b in st.grid) for n, st in self.states.items() if st.grid})
        self.report.replans += 1
        left = self.budget.limit - now
        for step in p.steps:
            st, ms = self.states[step.member], states[step.member]
            if st.probing:  # planned on its prior while a lane measures it: its decisions come after the probe
                continue
            st.drop_reason = ""
            spr = next(v.s_per_row for v in ms.variants if v.name == step.variant)
            kind = "run partial" if step.partial else "run"
            if st.decision[0] in ("drop", "stop"):
                self.event(f"{step.member}: back in the plan at {now:.1f}s on {step.variant}: "
                           f"{step.expected_s:.1f}s needed, {left:.1f}s left")
            self._decide(st, kind, step.variant, spr, left, expected_s=step.expected_s,
                         reason=f"{step.rows} rows, {step.expected_s:.1f}s, until {step.finish:.1f}s")
        for name, reason in [*p.dropped, *blocked.items()]:
            st = self.states[name]
            if st.probing:
                continue
            ms = states.get(name) or self._planner_state(st)
            if reason.startswith("stopped: "):
                verb, why = "stopped", reason[len("stopped: "):]
            else:  # left out by the plan: a member it had started is stopped part-way, as a blocked one is
                verb, why = ("stopped" if st.rows_done and ms.status != "pending" else "dropped"), reason
            if name in blocked and st.status == "stopped" and st.drop_reason:
                continue  # stopped by the executor itself, for the same reason; said already
            if not st.drop_reason:
                self.event(f"{name}: {verb} at {now:.1f}s: {why}")
            st.drop_reason = reason
            best = ms.variants[0]
            self._decide(st, "stop" if verb == "stopped" else "drop", "", best.s_per_row, left, reason=why,
                         expected_s=planner.expected_seconds(ms, best))
        return p

    def _planner_lanes(self, states: Mapping[str, planner.MemberState]) -> list[planner.Lane]:
        lanes = []
        for lane in self.lanes:
            ms = states.get(lane.loaded[0]) if lane.loaded and lane.stepping == lane.loaded[0] else None
            running = ms is not None and ms.status == "running" and ms.variant == lane.loaded[1]
            lanes.append(planner.Lane(lane.name, lane.loaded if running else None, frozenset(lane.retired)))
        return lanes

    def _decide(self, st: _State, kind: str, variant: str, s_per_row: float, left: float, *,
                reason: str = "", expected_s: float | None = None) -> None:
        """Record a decision in the member's report when it differs from the last one."""
        if (kind, variant) == st.decision and kind not in ("probe", "prune"):
            return
        st.decision = (kind, variant)
        st.report.decisions.append({
            "at_s": round(self.clock(), 3), "decision": kind, "variant": variant or None,
            "s_per_row": s_per_row if s_per_row < _UNKNOWN_S_PER_ROW else None,
            "expected_s": None if expected_s is None or expected_s >= _UNKNOWN_S_PER_ROW else round(expected_s, 3),
            "seconds_left": round(left, 3), "margin_s": round(self.budget.margin_s, 3), "reason": reason,
        })

    # -- the loop -------------------------------------------------------------------
    def run(self) -> None:
        """Probe (each lane the next member), then plan and run steps until the plan is empty.

        With several lanes the calling thread coordinates: it plans, hands each
        idle lane the first step the plan gives it, and plans again whenever a
        lane's step ends, and after each chunk while a lane is idle; each lane
        runs its step in a thread of its own. Lane threads hold the executor's
        lock except while they load a runner, read their rows, infer or save a
        chunk's file, so every booking, plan and submission write happens one
        at a time, while inference runs on every lane at once (onnxruntime and
        torch release the GIL while they compute). Rows are claimed chunk by
        chunk, so two lanes sharing a member (row-split) never compute the
        same chunk. A lane whose step found nothing to do waits until a chunk
        is done or a member's state changed. An unexpected error on a lane
        stops the others after their chunk and is raised here.
        """
        try:
            if len(self.lanes) == 1:
                if self.limited:
                    self._probe()
                while True:
                    p = self.plan()
                    if not p.steps:
                        break
                    self._execute(p, p.steps[0])
            else:
                self._run_lanes(probe=self.limited)
        finally:
            for lane in self.lanes:
                with self._as_lane(lane):
                    self._unload()
            if self._own_feeds:
                self.feeds.close()
            self._fill_reports()

    def _progress_marker(self) -> tuple:
        return (self.chunks_run, tuple(st.status for st in self.states.values()),
                tuple(len(lane.retired) for lane in self.lanes))

    def _run_lanes(self, probe: bool = False) -> None:
        ended = self._ended = queue.Queue()
        busy: dict[int, threading.Thread] = {}
        parked: dict[int, tuple] = {}  # lane -> progress marker when its step found nothing to do
        error: BaseException | None = None
        try:
            if probe:  # each lane probes the next member; a lane with none left is planned for at once
                probes = self._probe_round()
                for st in probes.todo:  # its decisions are recorded from its probe on (or its skipped probe)
                    st.probing = True
                for lane in self.lanes[:len(probes.todo)]:
                    t = threading.Thread(target=self._lane_probe, args=(lane, probes, ended),
                                         name=f"ninefit-probe-{lane.name}", daemon=True)
                    busy[lane.index] = t
                    t.start()
            while True:
                with self._lock:
                    self._release_idle(busy)
                    p = self.plan()
                    marker = self._progress_marker()
                    for lane in self.lanes:
                        steps = p.lane_steps(lane.index)
                        if error is not None or lane.index in busy or not steps or parked.get(lane.index) == marker:
                            continue
                        parked.pop(lane.index, None)
                        t = threading.Thread(target=self._lane_main, args=(lane, p, steps[0], ended),
                                             name=f"ninefit-lane-{lane.name}", daemon=True)
                        busy[lane.index] = t
                        t.start()
                    # A lane left idle gets work as soon as the costs allow (a member's rows split to it):
                    # the busy lanes say when each chunk is done, and the coordinator plans again then.
                    self._want_tick = error is None and len(busy) < len(self.lanes)
                if not busy:
                    break
                index, kind, worked, exc = ended.get()
                if kind == "tick":
                    continue
                busy.pop(index).join()
                if exc is not None:
                    error = error or exc
                    self._halt = True
                if error is not None and not busy:
                    break
                if not worked:
                    with self._lock:
                        parked[index] = self._progress_marker()
        finally:
            self._want_tick = False
            self._ended = None
            self._halt = True
            for t in busy.values():
                t.join()
            self._halt = False
        if error is not None:
            raise error

    def _lane_main(self, lane: _Lane, p: planner.Plan, step: planner.Step, ended: queue.Queue) -> None:
        """A lane thread: run one plan step, then tell the coordinator whether it did anything."""
        _LANE.index, _LANE.locked = lane.index, True
        worked, exc = False, None
        try:
            with self._lock:
                before = self._progress_marker()[1:]
                # Its own rows, or a state it changed (stopped, failed, retired): not another lane's chunks.
                worked = self._execute(p, step) > 0 or self._progress_marker()[1:] != before
        except BaseException as e:  # a bug, not a member's failure (those are caught per member)
            exc = e
        finally:
            _LANE.locked = False
            ended.put((lane.index, "end", worked, exc))

    def _lane_probe(self, lane: _Lane, probes: ProbeRound, ended: queue.Queue) -> None:
        """A lane thread at the start of a run: probe the next member of ``probes`` until none is left."""
        _LANE.index, _LANE.locked = lane.index, True
        exc = None
        try:
            with self._lock:
                while probes.todo and not self._halt:
                    self._probe_one(probes.todo.pop(0), probes)
        except BaseException as e:  # a bug, not a member's failure (those are caught per member)
            exc = e
            with self._lock:
                for st in probes.todo:  # never left out of plans for a probe that will not come
                    st.probing = False
        finally:
            _LANE.locked = False
            ended.put((lane.index, "end", True, exc))

    def _release_idle(self, busy: Mapping[int, threading.Thread]) -> None:
        """Unload the runner of each idle lane whose member has nothing left for it."""
        for lane in self.lanes:
            if lane.index in busy or lane.loaded is None:
                continue
            st = self.states[lane.loaded[0]]
            if st.status in ("done", "failed", "stopped") or lane.loaded[0] in lane.retired or not st.missing():
                with self._as_lane(lane):
                    self._unload()

    def _timed_chunk(self, st: _State, v: Variant, runner: Runner, a: int, b: int, end: float) -> bool | None:
        """One chunk, if it is predicted to end by ``end``: None when it is not started,
        False when the member failed. Its overrun over the prediction sizes the margin."""
        name = st.member.name
        spr = self.costs.cautious_s_per_row(name, v.name)
        now = self.clock()
        if self.limited and now + (b - a) * spr > end + _EPS:
            return None
        measured = self.costs.rate(name, v.name).rows > 0
        if not self._chunk(st, v, runner, a, b):
            return False
        if measured:  # an overrun of a first, unmeasured chunk is a misestimate, not jitter
            self.overrun_s = max(self.overrun_s, self.clock() - now - (b - a) * spr)
            if not self.fixed_margin:
                margin = measured_margin(self.budget.deadline, self.overrun_s)
                if margin != self.budget.margin_s:
                    self.budget = replace(self.budget, margin_s=margin)
        return True

    def _execute(self, p: planner.Plan, step: planner.Step) -> int:
        """Run one plan step on the current lane; its time and rows go into the lane's log. Returns its rows."""
        t0, rows = self.clock(), 0
        try:
            rows = self._run_step(p, step)
        finally:
            self._lane().log.add("partial" if step.partial else "run", step.member, step.variant, rows, t0, self.clock())
        return rows

    def _run_step(self, p: planner.Plan, step: planner.Step) -> int:
        """The chunks of one step, claimed one at a time; returns the rows computed."""
        st = self.states[step.member]
        v = st.member.variant(step.variant)
        names = [x.name for x in st.member.variants]
        before = st.last_variant or names[0]
        if names.index(v.name) > names.index(before):
            ms = self._planner_state(st)
            now = self.clock()
            need = planner.expected_seconds(ms, ms.variants[names.index(before)])
            why = f"{before} would need {format_seconds(need)} for the {ms.rows_left} rows left, {format_seconds(self.budget.limit - now)} left"
            self.event(f"{st.member.name}: degraded to {v.name} at {now:.1f}s: {why}")
            st.notes.append(f"{before} -> {v.name} at {now:.1f}s: {why}")
        st.last_variant = v.name
        self.stepping = st.member.name
        runner = self._ensure(st, v)
        if runner is None:
            return 0
        label = st.member.name if v is st.member.variants[0] else f"{st.member.name}/{v.name}"
        if st.progress is None or st.progress.label != label:
            st.close_progress("paused")
            st.progress = Progress(label, st.rows_total, enabled=self.progress, done=st.rows_done)
        rows = 0
        while rows < step.rows and not self._halt:
            claimed = st.claim()  # another lane may run this member too (row-split): never the same chunk
            if claimed is None:
                break
            a, b = claimed
            end = min(step.finish, self.budget.limit) if step.partial else self.budget.limit
            try:
                done = self._timed_chunk(st, v, runner, a, b, end)
            finally:
                st.inflight.discard(claimed)
            if done is None:
                if rows == 0:  # not one chunk fits: retire it, so the loop always progresses
                    now, spr = self.clock(), self.costs.cautious_s_per_row(st.member.name, v.name)
                    st.status, st.stuck_at = "stopped", self.chunks_run
                    st.drop_reason = (f"stopped at {now:.1f}s: the next chunk ({b - a} rows, "
                                      f"~{format_seconds((b - a) * spr)}) would end past the limit")
                    self.event(f"{st.member.name}: {st.drop_reason}")
                    self._decide(st, "stop", v.name, spr, self.budget.limit - now, reason=st.drop_reason)
                break
            if not done:
                return rows
            rows += b - a
            st.progress.update(st.rows_done)
            if self._want_tick and self._ended is not None:
                self._want_tick = False  # one tick per idle spell; the coordinator sets it again if still idle
                self._ended.put((_lane_index(), "tick", True, None))
            if self._pruned(st, v):
                break  # re-plan without this rung
            if self.limited and not step.partial and self._drifted(p, step, v, min(rows, step.rows)):
                break
        if st.status == "running" and not st.missing():
            self._finish(st)
        elif st.status == "stopped":
            self._unload()
        return rows

    def _pruned(self, st: _State, v: Variant) -> bool:
        """Whether ``v`` was just measured not cheaper than a better rung (and is left out from now on)."""
        name = st.member.name
        above = self.costs.pruned_by(name, v.name)
        if above is None or v.name in st.pruned:
            return above is not None
        st.pruned.add(v.name)
        mine, theirs = self.costs.s_per_row(name, v.name) or 0.0, self.costs.s_per_row(name, above) or 0.0
        why = f"measured {mine * 1e3:.3g} ms/row, not cheaper than {above} at {theirs * 1e3:.3g} ms/row"
        self.event(f"{name}: rung {v.name} pruned at {self.clock():.1f}s: {why}")
        st.notes.append(f"{v.name} pruned: {why}")
        self._decide(st, "prune", v.name, mine, self.budget.limit - self.clock(), reason=why)
        return True

    def _drifted(self, p: planner.Plan, step: planner.Step, v: Variant, rows: int) -> bool:
        """Re-plan: the step runs late past its tolerance, or well ahead while members wait dropped."""
        now, spr = self.clock(), self.costs.s_per_row(step.member, v.name)
        if planner.should_replan(p, step, now, rows, s_per_row=spr):
            return True
        ahead = step.finish - planner.projected_finish(step, now, rows, s_per_row=spr)
        return bool(p.dropped) and ahead > AHEAD_TOLERANCE * step.expected_s

    # -- one member, one chunk ----------------------------------------------------------
    def _ensure(self, st: _State, v: Variant) -> Runner | None:
        """The active runner for ``v``: reused if loaded, else loaded (timed). None if it failed."""
        if self.loaded == (st.member.name, v.name) and self.runner is not None:
            return self.runner
        self._unload()
        t0 = self.clock()
        try:
            with self._unlocked():
                runner = self._lane().load(st.member, v)
                runner.activate()
        except StorageError:
            raise  # an engine cache with no room: the machine's disk, not the member's failure
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
        where = f" on lane {self._lane().name}" if len(self.lanes) > 1 else ""
        log(f"{st.member.name}/{v.name}: {st.report.backend}, batch {st.batch}, loaded in {dt:.2f}s{where}")
        problem = self.device_check(runner) if self.device_check is not None else None
        if problem and not self.report.device_warnings:  # once a run: the cause is the same for every member
            self.report.device_warnings.append(f"{problem} (first seen loading {st.member.name}/{v.name})")
            self.event(f"WARNING, RUNNING ON THE CPU: {self.report.device_warnings[0]}")
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
        if st.status == "running" and not any(lane.loaded and lane.loaded[0] == name for lane in self.lanes):
            st.status = "pending"

    def _chunk(self, st: _State, v: Variant, runner: Runner, a: int, b: int) -> bool:
        """Predict, check and save one chunk. False when the member failed (and was skipped)."""
        try:
            if self.monitor.low_on_ram(max_age_s=0.1) and st.batch > 1:
                st.batch = max(1, st.batch // 2)
                self.event(f"{st.member.name}: RAM nearly exhausted, batch size halved to {st.batch}")
            values = self._predict(st, v, runner, a, b)
            t0 = self.clock()
            with self._unlocked():  # file I/O: the other lanes book and plan meanwhile (each chunk its own file)
                self.store.save(st.member.name, v.name, a, values)
            self.feeds.book(write_s=self.clock() - t0)
        except StorageError:
            raise  # the machine's disk, not the member's failure: the run stops, the member is not retired
        except Exception as exc:
            self._fail(st, exc, f"rows {a}-{b} on {v.name}")
            return False
        st.covered[(a, b)] = st.member.variants.index(v)
        self.chunks_run += 1
        st.skipped[(a, b)] = nan_rows(values)
        st.report.chunks_computed += 1
        st.report.rows_computed += b - a
        return True

    def _predict(self, st: _State, v: Variant, runner: Runner, a: int, b: int) -> np.ndarray:
        if st.member.text is not None:
            return self._predict_text(st, v, runner, a, b)
        parts, pos = [], a
        t0 = self.clock()
        feeds = self._feeds(st, v, a, b)
        wait = self.clock() - t0  # the data stages not hidden by overlap: part of the member's cost per row
        while pos < b:
            n = min(st.batch, b - pos)
            t0 = self.clock()
            part = [{k: x[pos - a:pos - a + n] for k, x in f.items()} for f in feeds]
            try:
                with self._unlocked():
                    values = predict_rows(runner, st.member, v, self.test, pos, pos + n, n, feeds=part)
            except OutOfMemoryError as exc:
                if st.batch <= 1:
                    raise OutOfMemoryError(f"{exc} (even at batch size 1)") from exc
                st.batch = max(1, st.batch // 2)
                st.report.oom_retries += 1
                self.event(f"{st.member.name}: out of memory, batch size halved to {st.batch} and retried")
                continue
            dt = self.clock() - t0
            self.feeds.book(infer_s=dt)
            dt, wait = dt + wait, 0.0
            self._check_width(st, values, n)
            self._nonfinite(st, v, values, pos)
            self._book(st, v, n, dt)
            parts.append(values)
            pos += n
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _nonfinite(self, st: _State, v: Variant, values: np.ndarray, pos: int) -> None:
        """Rows of ``values`` (rows ``pos``...) with a non-finite output hold no prediction: set them
        to NaN, so they are left to the other members, and count and name the new ones."""
        bad = ~np.isfinite(values).all(axis=1)
        if not bad.any():
            return
        skipped = self.test.skipped(st.member, pos, pos + len(values))
        new = bad if skipped is None else bad & ~skipped
        if new.any():
            if not st.report.rows_nonfinite_output:
                self.event(f"{st.member.name}/{v.name}: non-finite outputs in row(s) "
                           f"{', '.join(str(pos + i) for i in np.flatnonzero(new)[:5])}"
                           f"{' ...' if new.sum() > 5 else ''}; those rows are left to the other members")
            st.report.rows_nonfinite_output += int(new.sum())
        values[bad] = np.nan

    def _feeds(self, st: _State, v: Variant, a: int, b: int) -> list[dict[str, np.ndarray]]:
        """The member's prepared inputs for chunk ``[a, b)``: the one place the executor reads them.

        One reader for every lane (:class:`runtime.data.pipeline.FeedPipeline`: images
        decoded once per run, a chunk's table rows shared by the members reading
        them); the chunks this lane will take next are prepared meanwhile (those
        another lane computes now are not). The other lanes book and plan while
        this one waits; DALI decodes for one lane at a time.
        """
        ahead = [c for c in st.missing() if c[0] >= b and c not in st.inflight][:max(self.feeds.depth, 1)]
        with self._unlocked(), (self._dali if self.feeds.loader == "dali" else nullcontext()):
            return self.feeds.get(st.member, v, a, b, ahead=ahead, lane=_lane_index())

    def _check_width(self, st: _State, values: np.ndarray, n: int) -> None:
        if values.shape != (n, self.width):
            raise BundleError(f"{st.member.name}: output {st.member.output!r} has shape {values.shape[1:]}, "
                              f"but the submission needs {self.width} values per row")

    def _book(self, st: _State, v: Variant, rows: float, dt: float) -> None:
        """Time one batch of ``rows`` rows took; the first after a load is kept out of the throughput, booked apart."""
        rate = self.costs.rate(st.member.name, v.name)
        if rate.warm:
            st.report.seconds += dt
            st.report.rows_timed += rows
        else:
            st.report.warmup_seconds += dt
            st.report.warmup_rows += rows
        rate.add(rows, dt)

    def _predict_text(self, st: _State, v: Variant, runner: Runner, a: int, b: int) -> np.ndarray:
        """A text chunk: its windows sorted by length, each batch padded to its own longest."""
        rows = self.test.text_rows(st.member)
        chunk = Chunk.of(rows, a, b)
        values = np.empty((len(chunk.windows), self.width))
        # The planner counts rows: each batch is booked as its share of the chunk's padded tokens.
        total = max(1, chunk.padded_tokens(st.batch, st.tokens))
        stats = st.report.text if st.report.text is not None else {}
        pos = 0
        while pos < len(chunk.order):
            end = chunk.batch_end(pos, st.batch, st.tokens)
            idx = chunk.order[pos:end]
            t0 = self.clock()  # building the batch counts, as reading rows does for other members
            try:
                with self._unlocked():
                    out = predict_windows(runner, st.member, rows.feed(st.member.text, chunk.windows[idx]))
            except OutOfMemoryError as exc:
                if st.tokens:
                    if end - pos <= 1:  # one window over the budget: a smaller budget cannot help
                        raise OutOfMemoryError(f"{exc} (even one window of {int(chunk.lengths[pos])} tokens)") from exc
                    st.tokens = max(1, st.tokens // 2)
                elif st.batch <= 1:
                    raise OutOfMemoryError(f"{exc} (even at batch size 1)") from exc
                else:
                    st.batch = max(1, st.batch // 2)
                st.report.oom_retries += 1
                what = f"token budget halved to {st.tokens}" if st.tokens else f"batch size halved to {st.batch}"
                self.event(f"{st.member.name}: out of memory, {what} and retried")
                continue
            dt = self.clock() - t0
            self.feeds.book(infer_s=dt)
            self._check_width(st, out, end - pos)
            padded = (end - pos) * int(chunk.lengths[end - 1])
            self._book(st, v, (b - a) * padded / total, dt)
            stats["batches"] = stats.get("batches", 0) + 1
            stats["padded_tokens"] = stats.get("padded_tokens", 0) + padded
            stats["real_tokens"] = stats.get("real_tokens", 0) + int(chunk.lengths[pos:end].sum())
            values[idx] = out
            pos = end
        st.report.text = stats
        # A non-finite window makes its row's mean or max non-finite: that row alone is lost.
        with np.errstate(invalid="ignore"):
            out = chunk.reduce(rows, values, st.member.text.reduce)
        self._nonfinite(st, v, out, a)
        return out

    def _fail(self, st: _State, exc: BaseException, where: str) -> None:
        """A member failed on the current lane: retired there while another lane may still run it, else skipped."""
        kind = "" if isinstance(exc, NinefitError) else f"{type(exc).__name__}: "
        reason = f"failed ({where}): {kind}{exc}"[:600]
        lane = self._lane()
        if len(self.lanes) > 1:
            lane.retired[st.member.name] = reason
            if any(st.member.name not in other.retired for other in self.lanes):
                self._unload()
                self.event(f"{st.member.name}: {reason}; retired on lane {lane.name}, the other lane(s) go on")
                if not isinstance(exc, NinefitError):
                    log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)).rstrip())
                return
            reason = "; ".join(f"lane {x.name}: {x.retired[st.member.name]}" for x in self.lanes)[:600]
        st.close_progress("failed")
        self._unload()
        st.status = "failed"
        st.report.reason = reason
        self.event(f"{st.member.name}: {st.report.reason}; skipped, the run goes on")
        if not isinstance(exc, NinefitError):  # a bug somewhere: keep the trace for the log
            log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)).rstrip())

    def _finish(self, st: _State) -> None:
        st.close_progress("done")
        self._unload()
        st.status = "done"
        self._save_costs()
        if self.clock() - self._written_at < WRITE_SPACING * self.write_s or not any(
                s.status in ("pending", "running") and s.missing() for s in self.states.values()):
            return  # written moments ago, or nothing is left to run: a later write (the final one) takes these rows in
        try:
            # Combining reads every chunk file: the other lanes infer and book meanwhile.
            with self._unlocked(), self._writing:
                seconds = self.write_submission()
            self.after_write(seconds)
        except OSError as exc:  # the previous file is still whole on disk; the final write retries
            self.event(f"could not rewrite the submission after {st.member.name}: {exc}")

    def after_write(self, seconds: float) -> None:
        """Account for one submission write: later writes and the reserve are sized from it."""
        self.write_s = max(self.write_s, seconds)
        self._written_at = self.clock()
        if not self.fixed_reserve:
            self.budget = replace(self.budget, reserve_s=max(self.budget.reserve_s, 2 * seconds))

    def _save_costs(self) -> None:
        self.report.machine_factor = self.costs.factor_summary()  # with its later batches: still as founded?
        costs = self.store.load_costs()
        for member, variants in self.costs.measured().items():
            costs.setdefault(member, {}).update(variants)
        try:
            self.store.save_costs(costs)
        except (OSError, StorageError) as exc:  # a later run measures them again: never worth stopping this one
            log(f"could not save measured costs: {exc}")

    def event(self, text: str) -> None:
        self.report.events.append(text)
        log(text)

    def _unfed(self, a: int, b: int) -> int:
        """Rows of ``[a, b)`` the features hook failed on: computed on zeros, never written."""
        features = self.test.features
        failed = features.failed if features is not None else None
        return int(failed[a:b].sum()) if failed is not None else 0

    def _written(self, st: _State, a: int, b: int) -> int:
        """Rows of the finished chunk ``[a, b)`` whose predictions reach the submission."""
        return max(b - a - st.skipped.get((a, b), 0) - self._unfed(a, b), 0)

    def delivered(self) -> tuple[float, float]:
        """Shares of the ensemble's weight and value delivered, row-weighted (failed members count 0)."""
        weight = value = 0.0
        for st in self.states.values():
            if st.status == "failed" or not st.rows_total:
                continue
            weight += st.member.weight * sum(self._written(st, a, b) for a, b in st.covered) / st.rows_total
            factors = sum(self._written(st, a, b) * st.member.variants[i].value_factor
                          for (a, b), i in st.covered.items())
            value += st.member.value * factors / st.rows_total
        total_w = sum(st.member.weight for st in self.states.values())
        total_v = sum(st.member.value for st in self.states.values())
        return (weight / total_w if total_w else 0.0), (value / total_v if total_v else 0.0)

    def _report_skipped(self, st: _State) -> None:
        """Rows of the finished chunks without a prediction, told apart by cause."""
        mr = st.report
        total = sum(st.skipped.get(c, 0) for c in st.covered)
        bad = self.test.nonfinite(st.member)
        mr.missing_policy = st.member.missing_policy(self.test.spec)[0]
        mr.missing_columns = self.test.missing_columns(st.member) if bad is not None else {}
        inputs = 0
        if bad is not None and mr.missing_policy == "skip":
            inputs = sum(int(bad[a:b].sum()) for a, b in st.covered)
        mr.rows_skipped_input = min(inputs, total)
        # outputs of resumed chunks were checked by the run that computed them: count them from the files
        mr.rows_nonfinite_output = max(mr.rows_nonfinite_output, total - mr.rows_skipped_input)

    @staticmethod
    def _skip_notes(st: _State) -> list[str]:
        mr, notes = st.report, []
        if mr.rows_skipped_input:
            cols = ", ".join(mr.missing_columns)
            notes.append(f"{mr.rows_skipped_input} row(s) skipped: non-finite inputs in {cols}")
        if mr.rows_nonfinite_output:
            notes.append(f"{mr.rows_nonfinite_output} row(s) dropped: non-finite outputs")
        if mr.rows_unfed:
            notes.append(f"{mr.rows_unfed} row(s) not written: the features hook failed on them")
        return notes

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
            mr.rows_unfed = sum(self._unfed(a, b) for a, b in st.covered)
            mr.rows = sum(self._written(st, a, b) for a, b in st.covered)
            mr.batch_size = min(st.batches.values(), default=st.start_batch)
            if st.covered or st.status != "failed":  # a member failed before any row (its data may not exist) has none
                self._report_skipped(st)
            mr.s_per_row = self.costs.s_per_row(st.member.name, mr.variant)
            if st.status != "failed" and st.rows_done and not st.rows_covered and mr.rows_nonfinite_output:
                st.status = "failed"  # not one finite output: a broken model (or an fp16 overflow), said loudly
                mr.reason = f"failed: non-finite outputs in every one of the {st.rows_done} rows it ran"
                self.event(f"{st.member.name}: {mr.reason}")
            if st.status == "failed":
                mr.status, mr.rows = "failed", 0  # its rows are left out of the submission
            elif st.rows_total and not st.missing():
                mr.status = "done" if used == [0] else "degraded"
                mr.reason = "; ".join([*(st.notes if used != [0] else []), *self._skip_notes(st)])
            elif st.rows_done:
                mr.status = "partial"
                mr.reason = "; ".join([*st.notes, st.drop_reason or "stopped at the limit", *self._skip_notes(st)])
            else:
                mr.status = "dropped"
                mr.reason = st.drop_reason or "not started: no time left"


__all__ = ["AHEAD_TOLERANCE", "PROBE_S", "PROBE_SHARE", "WRITE_SPACING", "Executor"]
