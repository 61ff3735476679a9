"""Executing a plan against the clock: measure, re-plan, degrade, checkpoint.

:mod:`runtime.schedule.planner` decides; the :class:`Executor` does the work on
its lanes and keeps the planner's inputs true. The loop (:meth:`Executor.run`):

1. At the start every member is *probed* on this machine
   (:class:`runtime.schedule.probing.Prober`): loaded, warmed up and timed on a
   short stretch of its first chunks, whose rows are kept as results; most
   valuable per second first, within a share of the time left.
2. Plan; run the first step chunk by chunk. A chunk that would end past the
   limit (or past a partial step's finish) is not started. After each chunk
   the live throughput replaces the prior and feeds
   :func:`planner.should_replan`; on drift the run re-plans: a cheaper rung, a
   member stopped, members dropped. It also re-plans when a step runs well
   ahead while members wait dropped, when a member finishes, stops or fails,
   and when a rung is pruned (measured not cheaper than the rung above it).
   Each change of a member's decision is kept in its report
   (:class:`runtime.execute.planning.DecisionLog`).
3. Every finished chunk is saved (:class:`runtime.execute.checkpoint.ChunkStore`);
   a finished member rewrites the submission while work is left, once
   :data:`WRITE_SPACING` times the slowest write has passed since the last.
   On resume, a saved chunk counts as done only once it loads with the right
   shape and values.
4. Unless fixed, the margin follows the measured jitter
   (:func:`runtime.schedule.budget.measured_margin`) and the reserve twice the
   slowest submission write.

Lanes: each is a :class:`runtime.execute.worker.LaneWorker` (its runner, its
batch sizes, its log). With several, the calling thread coordinates: it plans
and hands each idle lane the first step the plan gives it; each lane runs its
step on a thread of its own, holding the :class:`~runtime.execute.worker.Booking`
lock except for the named slow work (load, read, infer, save, write). Out of
memory halves the batch of the lane it happened on only; a member failing on
one lane is retired there and fails only once every lane retired it. Two
lanes never compute the same chunk, so the submission does not depend on lanes.

Rows, not chunks, are what a member covers: a row whose inputs or outputs
are not finite is saved as a row of NaN, and the ensemble leaves that member
out of that row only. Each pass of the loop finishes a chunk or retires a
member, so the loop ends.
"""

from __future__ import annotations

import math
import queue
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from runtime.backends.base import Runner
from runtime.data.pipeline import FeedPipeline
from runtime.errors import NinefitError, StorageError
from runtime.execute import planning, results
from runtime.execute.memory import MemoryMonitor
from runtime.execute.predict import nan_rows
from runtime.execute.state import ExecutorSettings, MemberRun, Work
from runtime.execute.worker import Booking, LaneWorker, Shared
from runtime.manifest import Member, Variant
from runtime.output.report import RunReport
from runtime.progress import Progress, format_seconds, log
from runtime.schedule import planner
from runtime.schedule.budget import WRITE_SPACING, measured_margin
from runtime.schedule.costs import CostModel
from runtime.schedule.probing import PROBE_S, PROBE_SHARE, Prober
from runtime.status import Decision, Status

#: A step running this share of its expected time ahead of plan re-plans, when members are dropped.
AHEAD_TOLERANCE = 0.1
_EPS = planning.EPS

Loader = Callable[[Member, Variant], Runner]


class Executor:
    """Runs the members of one bundle to a deadline, on its lanes.

    Args:
        work: The members, their chunks, the data and the checkpoint store.
        lanes: ``(name, load)`` per lane (:mod:`runtime.execute.lanes`); ``load``
            builds a (not yet active) runner for the lane's device or thread share.
        clock: Seconds since the notebook started; also times loads and batches.
        budget: Deadline, margin and reserve on that clock.
        report: The run report to fill in (one MemberReport per member).
        monitor: Memory watcher.
        write_submission: Rewrites the submission; returns the seconds it took.
        feeds: Where chunks' inputs come from (default: a
            :class:`runtime.data.pipeline.FeedPipeline` of its own, closed by :meth:`run`).
        device_check: A loaded runner -> the warning that it runs on the wrong device.
        settings: How to run (:class:`ExecutorSettings`).
    """

    def __init__(self, work: Work, lanes: Sequence[tuple[str, Loader]], *, clock: Callable[[], float],
                 budget: planner.Budget, report: RunReport, monitor: MemoryMonitor,
                 write_submission: Callable[[], float], feeds: FeedPipeline | None = None,
                 device_check: Callable[[Runner], str | None] | None = None,
                 settings: ExecutorSettings = ExecutorSettings()):
        self.work, self.settings = work, settings
        self.test, self.store, self.clock = work.test, work.store, clock
        self.budget, self.report, self.monitor = budget, report, monitor
        self.write_submission = write_submission
        self.fixed_margin = settings.fixed_margin or not settings.limited
        self.write_s = 0.0  # the slowest submission write
        self.overrun_s = 0.0  # largest time a chunk took beyond its prediction from a measured rate
        self._written_at = -math.inf  # when the last submission write ended
        self.chunks_run = 0  # chunks computed in this run, by every member
        self._own_feeds = feeds is None
        self.feeds = feeds if feeds is not None else FeedPipeline(work.test, work.members)
        self.costs = CostModel(work.members, work.profile, work.store.load_costs())
        self.states = {m.name: MemberRun.resume(m, work.grids[m.name], work.store, work.width, report,
                                                 settings.batch_size or m.batch_size, work.failed.get(m.name))
                       for m in work.members}
        self.booking = Booking()
        self._writing = threading.Lock()  # one submission write at a time, outside the booking lock
        self._halt = False  # a lane hit an unexpected error: the others stop after their chunk
        self._ended: queue.Queue | None = None  # lane events for the coordinator (several lanes only)
        self._want_tick = False  # a lane is idle: busy lanes tell the coordinator after each chunk
        self.shared = Shared(work.test, self.feeds, self.costs, clock, report, work.width, self.booking,
                             self.states, self.event, device_check)
        self.workers = [LaneWorker(i, name, load, self.shared) for i, (name, load) in enumerate(lanes)]
        self.shared.workers = self.workers
        self.decisions = planning.DecisionLog(clock, lambda: self.budget.margin_s)
        self.prober = Prober(self)

    @property
    def limited(self) -> bool:
        return self.settings.limited

    # -- planning ---------------------------------------------------------------------
    def member_state(self, st: MemberRun) -> planner.MemberState:
        return planning.member_state(st, self.costs, self.workers, limited=self.limited, write_s=self.write_s)

    def plan(self) -> planner.Plan:
        """Re-plan from the costs known now; records each member whose decision changed."""
        now = self.clock()
        states: dict[str, planner.MemberState] = {}
        blocked: dict[str, str] = {}
        stopped: set[str] = set()
        for st in self.states.values():
            for v in st.member.variants[1:]:  # a rung shown not cheaper by another's measurement: said once
                self.pruned(st, v)
            if st.probing and all(self.costs.s_per_row(st.name, v.name) is None for v in st.member.variants):
                continue  # no cost known yet, being measured on a lane: planned once it is
            ms = self.member_state(st)
            why = planning.blocked(st, ms, now, self.costs, self.budget.limit, self.chunks_run) if self.limited else ""
            if why:
                blocked[ms.name] = why
                if st.rows_done and ms.status != Status.PENDING:
                    stopped.add(ms.name)
            else:
                states[ms.name] = ms
        p = planner.plan_lanes(list(states.values()), now, self.budget, planning.planner_lanes(self.workers, states),
                               fill=self.limited,
                               quantum={n: max(b - a for a, b in st.grid) for n, st in self.states.items() if st.grid})
        self.report.replans += 1
        left = self.budget.limit - now
        for step in p.steps:
            self._planned(step, states[step.member], now, left)
        for name, why in p.dropped:
            self._left_out(name, why, name in p.stopped, False, states, now, left)
        for name, why in blocked.items():
            self._left_out(name, why, name in stopped, True, states, now, left)
        return p

    def _planned(self, step: planner.Step, ms: planner.MemberState, now: float, left: float) -> None:
        st = self.states[step.member]
        if st.probing:  # planned on its prior while a lane measures it: its decisions come after the probe
            return
        st.drop_reason = ""
        spr = next(v.s_per_row for v in ms.variants if v.name == step.variant)
        if st.decision[0] in (Decision.DROP, Decision.STOP):
            self.event(f"{step.member}: back in the plan at {now:.1f}s on {step.variant}: "
                       f"{step.expected_s:.1f}s needed, {left:.1f}s left")
        self.decisions.decide(st, Decision.RUN_PARTIAL if step.partial else Decision.RUN, step.variant, spr, left,
                              expected_s=step.expected_s,
                              reason=f"{step.rows} rows, {step.expected_s:.1f}s, until {step.finish:.1f}s")

    def _left_out(self, name: str, why: str, running: bool, blocked: bool, states: Mapping[str, planner.MemberState],
                  now: float, left: float) -> None:
        """A member the plan leaves out: stopped part-way (it had started), or dropped; said once per reason.

        ``running``: it was running when the plan (or :func:`planning.blocked`) left it out; its reason
        then says "stopped: ...". ``blocked``: not even its next chunk fits.
        """
        st = self.states[name]
        if st.probing:
            return
        ms = states.get(name) or self.member_state(st)
        # Left out by the plan: a member it had started is stopped part-way, as a blocked one is.
        stopped = running or bool(st.rows_done and ms.status != Status.PENDING)
        if blocked and st.status == Status.STOPPED and st.drop_reason:
            return  # stopped by the executor itself, for the same reason; said already
        reason = f"stopped: {why}" if running else why
        if not st.drop_reason:
            self.event(f"{name}: {'stopped' if stopped else 'dropped'} at {now:.1f}s: {why}")
        st.drop_reason = reason
        best = ms.variants[0]
        self.decisions.decide(st, Decision.STOP if stopped else Decision.DROP, "", best.s_per_row, left, reason=why,
                              expected_s=planner.expected_seconds(ms, best))

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        """Probe, then plan and run steps until the plan is empty; with several lanes each runs on a thread."""
        try:
            if len(self.workers) == 1:
                lane = self.workers[0]
                if self.limited:
                    self.prober.probe_all(lane)
                while True:
                    p = self.plan()
                    if not p.steps:
                        break
                    self._execute(lane, p, p.steps[0])
            else:
                self._run_lanes(probe=self.limited)
        finally:
            for lane in self.workers:
                lane.unload()
            if self._own_feeds:
                self.feeds.close()
            results.fill_reports(self.states, self.workers, self.test, self.costs, self.event)

    def _progress_marker(self) -> tuple:
        return (self.chunks_run, tuple(st.status for st in self.states.values()),
                tuple(len(lane.retired) for lane in self.workers))

    def _run_lanes(self, probe: bool = False) -> None:
        """Coordinate the lanes: plan, hand each idle lane its next step, plan again as steps end.

        A lane left idle gets work as soon as the costs allow (a member's rows
        split to it): the busy lanes say when each chunk is done, and the
        coordinator plans again then. An unexpected error on a lane stops the
        others after their chunk and is raised here.
        """
        ended = self._ended = queue.Queue()
        busy: dict[int, threading.Thread] = {}
        parked: dict[int, tuple] = {}  # lane -> progress marker when its step found nothing to do
        # lane -> progress marker when its step was handed out: a step that found nothing parks its lane only
        # until anything moves after that (another lane's progress during the step may have left work for it)
        handed: dict[int, tuple] = {}
        error: BaseException | None = None
        try:
            if probe:
                self._start_probes(busy, ended)
            while True:
                with self.booking:
                    self._release_idle(busy)
                    p = self.plan()
                    marker = self._progress_marker()
                    for lane in self.workers:
                        steps = p.lane_steps(lane.index)
                        if error is not None or lane.index in busy or not steps or parked.get(lane.index) == marker:
                            continue
                        parked.pop(lane.index, None)
                        handed[lane.index] = marker
                        busy[lane.index] = self._start("lane", lane, self._lane_step, lane, p, steps[0], ended)
                    self._want_tick = error is None and len(busy) < len(self.workers)
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
                    parked[index] = handed.pop(index)
        finally:
            self._want_tick = False
            self._ended = None
            self._halt = True
            for t in busy.values():
                t.join()
            self._halt = False
        if error is not None:
            raise error

    @staticmethod
    def _start(kind: str, lane: LaneWorker, target: Callable, *args) -> threading.Thread:
        t = threading.Thread(target=target, args=args, name=f"ninefit-{kind}-{lane.name}", daemon=True)
        t.start()
        return t

    def _start_probes(self, busy: dict[int, threading.Thread], ended: queue.Queue) -> None:
        """Each lane probes the next member; a lane with none left is planned for at once."""
        probes = self.prober.round()
        for st in probes.todo:  # its decisions are recorded from its probe on (or its skipped probe)
            st.probing = True
        for lane in self.workers[:len(probes.todo)]:
            busy[lane.index] = self._start("probe", lane, self._lane_probe, lane, probes, ended)

    def _lane_step(self, lane: LaneWorker, p: planner.Plan, step: planner.Step, ended: queue.Queue) -> None:
        """A lane thread: run one plan step, then tell the coordinator whether it did anything."""
        worked, exc = False, None
        try:
            with self.booking.held():
                before = self._progress_marker()[1:]
                # Its own rows, or a state it changed (stopped, failed, retired): not another lane's chunks.
                worked = self._execute(lane, p, step) > 0 or self._progress_marker()[1:] != before
        except BaseException as e:  # a bug, not a member's failure (those are caught per member)
            exc = e
        finally:
            ended.put((lane.index, "end", worked, exc))

    def _lane_probe(self, lane: LaneWorker, probes, ended: queue.Queue) -> None:
        """A lane thread at the start of a run: probe the next member of ``probes`` until none is left."""
        exc = None
        try:
            with self.booking.held():
                while probes.todo and not self._halt:
                    self.prober.probe_one(lane, probes.todo.pop(0), probes)
        except BaseException as e:  # a bug, not a member's failure (those are caught per member)
            exc = e
            with self.booking:
                for st in probes.todo:  # never left out of plans for a probe that will not come
                    st.probing = False
        finally:
            ended.put((lane.index, "end", True, exc))

    def _release_idle(self, busy: Mapping[int, threading.Thread]) -> None:
        """Unload the runner of each idle lane whose member has nothing left for it."""
        for lane in self.workers:
            if lane.index in busy or lane.loaded is None:
                continue
            st = self.states[lane.loaded[0]]
            if st.status in (Status.DONE, Status.FAILED, Status.STOPPED) or st.name in lane.retired or not st.missing():
                lane.unload()

    def tick(self, lane: LaneWorker) -> None:
        """A chunk is done on ``lane``: tell the coordinator, once per idle spell of another lane."""
        if self._want_tick and self._ended is not None:
            self._want_tick = False  # the coordinator sets it again if a lane is still idle
            self._ended.put((lane.index, "tick", True, None))

    # -- one step ---------------------------------------------------------------------
    def _execute(self, lane: LaneWorker, p: planner.Plan, step: planner.Step) -> int:
        """Run one plan step on ``lane``; its time and rows go into the lane's log. Returns its rows."""
        t0, rows = self.clock(), 0
        try:
            rows = self._run_step(lane, p, step)
        finally:
            lane.log.add("partial" if step.partial else "run", step.member, step.variant, rows, t0, self.clock())
        return rows

    def _run_step(self, lane: LaneWorker, p: planner.Plan, step: planner.Step) -> int:
        """The chunks of one step, claimed one at a time; returns the rows computed."""
        st = self.states[step.member]
        v = st.member.variant(step.variant)
        self._note_degrade(st, v)
        lane.stepping = st.name
        runner = self.ensure(lane, st, v)
        if runner is None:
            return 0
        label = st.name if v is st.member.variants[0] else f"{st.name}/{v.name}"
        if st.progress is None or st.progress.label != label:
            st.close_progress("paused")
            st.progress = Progress(label, st.rows_total, enabled=self.settings.progress, done=st.rows_done)
        rows = 0
        while rows < step.rows and not self._halt:
            claimed = st.claim()  # another lane may run this member too (row-split): never the same chunk
            if claimed is None:
                break
            a, b = claimed
            end = min(step.finish, self.budget.limit) if step.partial else self.budget.limit
            try:
                done = self.timed_chunk(lane, st, v, runner, a, b, end)
            finally:
                st.inflight.discard(claimed)
            if done is None:
                if rows == 0:  # not one chunk fits: retire it, so the loop always progresses
                    self._stop(st, v, b - a)
                break
            if not done:
                return rows
            rows += b - a
            st.progress.update(st.rows_done)
            self.tick(lane)
            if self.pruned(st, v):
                break  # re-plan without this rung
            if self.limited and not step.partial and self._drifted(p, step, v, min(rows, step.rows)):
                break
        if st.status == Status.RUNNING and not st.missing():
            self.finish(lane, st)
        elif st.status == Status.STOPPED:
            lane.unload()
        return rows

    def _note_degrade(self, st: MemberRun, v: Variant) -> None:
        """Say so when a step takes a cheaper rung than the member last ran on."""
        names = [x.name for x in st.member.variants]
        before = st.last_variant or names[0]
        if names.index(v.name) > names.index(before):
            ms = self.member_state(st)
            now = self.clock()
            need = planner.expected_seconds(ms, ms.variants[names.index(before)])
            why = (f"{before} would need {format_seconds(need)} for the {ms.rows_left} rows left, "
                   f"{format_seconds(self.budget.limit - now)} left")
            self.event(f"{st.name}: degraded to {v.name} at {now:.1f}s: {why}")
            st.notes.append(f"{before} -> {v.name} at {now:.1f}s: {why}")
        st.last_variant = v.name

    def _stop(self, st: MemberRun, v: Variant, rows: int) -> None:
        """Its next chunk would end past the limit: stopped, planned again only once something changed."""
        now, spr = self.clock(), self.costs.cautious_s_per_row(st.name, v.name)
        st.status, st.stuck_at = Status.STOPPED, self.chunks_run
        st.drop_reason = (f"stopped at {now:.1f}s: the next chunk ({rows} rows, ~{format_seconds(rows * spr)}) would end "
                          "past the limit")
        self.event(f"{st.name}: {st.drop_reason}")
        self.decisions.decide(st, Decision.STOP, v.name, spr, self.budget.limit - now, reason=st.drop_reason)

    def pruned(self, st: MemberRun, v: Variant) -> bool:
        """Whether ``v`` was just measured not cheaper than a better rung (and is left out from now on)."""
        above = self.costs.pruned_by(st.name, v.name)
        if above is None or v.name in st.pruned:
            return above is not None
        st.pruned.add(v.name)
        mine, theirs = self.costs.s_per_row(st.name, v.name) or 0.0, self.costs.s_per_row(st.name, above) or 0.0
        why = f"measured {mine * 1e3:.3g} ms/row, not cheaper than {above} at {theirs * 1e3:.3g} ms/row"
        self.event(f"{st.name}: rung {v.name} pruned at {self.clock():.1f}s: {why}")
        st.notes.append(f"{v.name} pruned: {why}")
        self.decisions.decide(st, Decision.PRUNE, v.name, mine, self.budget.limit - self.clock(), reason=why)
        return True

    def _drifted(self, p: planner.Plan, step: planner.Step, v: Variant, rows: int) -> bool:
        """Re-plan: the step runs late past its tolerance, or well ahead while members wait dropped."""
        now, spr = self.clock(), self.costs.s_per_row(step.member, v.name)
        if planner.should_replan(p, step, now, rows, s_per_row=spr):
            return True
        ahead = step.finish - planner.projected_finish(step, now, rows, s_per_row=spr)
        return bool(p.dropped) and ahead > AHEAD_TOLERANCE * step.expected_s

    # -- one chunk --------------------------------------------------------------------
    def ensure(self, lane: LaneWorker, st: MemberRun, v: Variant) -> Runner | None:
        """``lane``'s active runner for ``v``, loaded if needed; None when loading failed (the member then failed there)."""
        try:
            return lane.ensure(st, v)
        except StorageError:
            raise  # an engine cache with no room: the machine's disk, not the member's failure
        except Exception as exc:
            self.fail(lane, st, exc, f"could not load {v.name}")
            return None

    def timed_chunk(self, lane: LaneWorker, st: MemberRun, v: Variant, runner: Runner, a: int, b: int,
                    end: float) -> bool | None:
        """One chunk, if it is predicted to end by ``end``: None when it is not started,
        False when the member failed. Its overrun over the prediction sizes the margin."""
        spr = self.costs.cautious_s_per_row(st.name, v.name)
        now = self.clock()
        if self.limited and now + (b - a) * spr > end + _EPS:
            return None
        measured = self.costs.rate(st.name, v.name).rows > 0
        if not self._chunk(lane, st, v, runner, a, b):
            return False
        if measured:  # an overrun of a first, unmeasured chunk is a misestimate, not jitter
            self.overrun_s = max(self.overrun_s, self.clock() - now - (b - a) * spr)
            if not self.fixed_margin:
                margin = measured_margin(self.budget.deadline, self.overrun_s)
                if margin != self.budget.margin_s:
                    self.budget = replace(self.budget, margin_s=margin)
        return True

    def _chunk(self, lane: LaneWorker, st: MemberRun, v: Variant, runner: Runner, a: int, b: int) -> bool:
        """Predict, check and save one chunk. False when the member failed (and was skipped)."""
        try:
            if self.monitor.low_on_ram(max_age_s=0.1) and lane.batch(st) > 1:
                lane.batches[st.name] = max(1, lane.batch(st) // 2)
                self.event(f"{st.name}: RAM nearly exhausted, batch size halved to {lane.batch(st)}")
            values = lane.predict(st, v, runner, a, b)
            t0 = self.clock()
            with self.booking.outside("save"):  # each chunk its own file: the other lanes book and plan meanwhile
                self.store.save(st.name, v.name, a, values)
            self.feeds.book(write_s=self.clock() - t0)
        except StorageError:
            raise  # the machine's disk, not the member's failure: the run stops, the member is not retired
        except Exception as exc:
            self.fail(lane, st, exc, f"rows {a}-{b} on {v.name}")
            return False
        st.covered[(a, b)] = st.member.variants.index(v)
        self.chunks_run += 1
        st.skipped[(a, b)] = nan_rows(values)
        st.report.chunks_computed += 1
        st.report.rows_computed += b - a
        return True

    def fail(self, lane: LaneWorker, st: MemberRun, exc: BaseException, where: str) -> None:
        """A member failed on ``lane``: retired there while another lane may still run it, else skipped."""
        kind = "" if isinstance(exc, NinefitError) else f"{type(exc).__name__}: "
        reason = f"failed ({where}): {kind}{exc}"[:600]
        if len(self.workers) > 1:
            lane.retired[st.name] = reason
            if any(st.name not in other.retired for other in self.workers):
                lane.unload()
                self.event(f"{st.name}: {reason}; retired on lane {lane.name}, the other lane(s) go on")
                _log_trace(exc)
                return
            reason = "; ".join(f"lane {x.name}: {x.retired[st.name]}" for x in self.workers)[:600]
        st.close_progress("failed")
        lane.unload()
        st.status = Status.FAILED
        st.report.reason = reason
        self.event(f"{st.name}: {st.report.reason}; skipped, the run goes on")
        _log_trace(exc)

    def finish(self, lane: LaneWorker, st: MemberRun) -> None:
        """Every row done: save the measured costs, and rewrite the submission if it is time to."""
        st.close_progress("done")
        lane.unload()
        st.status = Status.DONE
        self._save_costs()
        if self.clock() - self._written_at < WRITE_SPACING * self.write_s or not any(
                s.status in (Status.PENDING, Status.RUNNING) and s.missing() for s in self.states.values()):
            return  # written moments ago, or nothing is left to run: a later write (the final one) takes these rows in
        try:
            # Combining reads every chunk file: the other lanes infer and book meanwhile.
            with self.booking.outside("write"), self._writing:
                seconds = self.write_submission()
            self.after_write(seconds)
        except OSError as exc:  # the previous file is still whole on disk; the final write retries
            self.event(f"could not rewrite the submission after {st.name}: {exc}")

    def after_write(self, seconds: float) -> None:
        """Account for one submission write: later writes and the reserve are sized from it."""
        self.write_s = max(self.write_s, seconds)
        self._written_at = self.clock()
        if not self.settings.fixed_reserve:
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
        """Something the user should know: in the report's events and the log."""
        self.report.events.append(text)
        log(text)

    def failed_members(self) -> frozenset[str]:
        """The members that failed (on every lane): their rows are left out of the submission."""
        return frozenset(name for name, st in self.states.items() if st.status == Status.FAILED)

    def delivered(self) -> tuple[float, float]:
        """Shares of the ensemble's weight and value delivered, row-weighted (failed members count 0)."""
        return results.delivered(self.states, self.test)


def _log_trace(exc: BaseException) -> None:
    """A member failing on something not ninefit's own error: a bug somewhere, its trace kept for the log."""
    if not isinstance(exc, NinefitError):
        log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)).rstrip())


__all__ = ["AHEAD_TOLERANCE", "PROBE_S", "PROBE_SHARE", "WRITE_SPACING", "Executor", "ExecutorSettings", "Work"]
