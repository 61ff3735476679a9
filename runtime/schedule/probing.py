"""Probing: every member measured on this machine at the start of a run.

Each member is loaded, warmed up and timed on a short stretch (:data:`PROBE_S`)
of its first chunks, most valuable per second first; those rows are kept as
results. All probes together may take :data:`PROBE_SHARE` of the time left,
as predicted from the priors; a member whose probe would not fit that share
is costed from its prior times the machine factor, except the first (its
rows are the work the plan values most anyway) and, until a best rung has
founded the machine factor, one probe at a time on a member's best rung.
No chunk is started that is predicted to end past the limit, so a probe
cannot break the deadline.

:class:`Prober` decides which member is probed, on which rung, and for how
long; it does the work through the run it serves (a :class:`ProbeHost`: the
executor), on the lane it is given (a :class:`ProbeLane`). With several lanes
each lane takes the next member of the :class:`ProbeRound`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.manifest import Member, Variant
from runtime.progress import log
from runtime.schedule import planner
from runtime.schedule.costs import CostModel
from runtime.status import Decision, Status

#: Probing a member stops once this many seconds were timed after its warm-up batch (or 1/20 of its rows ran).
PROBE_S = 0.25
#: Share of the time left at the start that all probes together may take (predicted from the priors).
PROBE_SHARE = 0.1


class ProbedMember(Protocol):
    """What probing reads and changes of a member's progress (``runtime.execute.state.MemberRun``)."""

    member: Member
    status: Status
    probing: bool
    inflight: set[tuple[int, int]]

    @property
    def name(self) -> str: ...

    @property
    def rows_done(self) -> int: ...

    @property
    def rows_total(self) -> int: ...

    def missing(self) -> list[tuple[int, int]]: ...

    def claim(self) -> tuple[int, int] | None: ...


class ProbeLane(Protocol):
    """The lane a probe runs on (``runtime.execute.worker.LaneWorker``): it keeps a log of its steps."""

    log: Any  # runtime.execute.lanes.LaneLog


class ProbeHost(Protocol):
    """What probing needs of the run it serves (``runtime.execute.executor.Executor``)."""

    costs: CostModel
    budget: planner.Budget
    clock: Callable[[], float]
    report: Any  # runtime.output.report.RunReport: its machine factor is said as probes found it

    def member_state(self, st: Any) -> planner.MemberState: ...

    def ensure(self, lane: Any, st: Any, v: Variant) -> Any: ...

    def timed_chunk(self, lane: Any, st: Any, v: Variant, runner: Any, a: int, b: int, end: float) -> bool | None: ...

    def pruned(self, st: Any, v: Variant) -> bool: ...

    def finish(self, lane: Any, st: Any) -> None: ...

    def event(self, text: str) -> None: ...

    @property
    def decisions(self) -> Any: ...  # runtime.execute.planning.DecisionLog

    @property
    def states(self) -> Mapping[str, Any]: ...  # name -> ProbedMember (read only: a dict of MemberRun fits)


@dataclass
class ProbeRound:
    """The probes at the start of a run: the members left to probe (most valuable first), when the probe
    share ends, and whether the next probe is the first (the most valuable member is probed whatever the
    share: its rows are the first work anyway). Lane threads share it under the run's booking lock."""

    share_end: float
    todo: list[Any] = field(default_factory=list)
    first: bool = True


class Prober:
    """Decides the probes of a run and runs them through ``host`` (see the module docstring)."""

    def __init__(self, host: ProbeHost):
        self.host = host
        self.founding: set[str] = set()  # members probed on their best rung to found the machine factor

    def _prior_rate(self, st: ProbedMember) -> float:
        """Value per second of the member's most valuable rung, on what is known now."""
        ms = self.host.member_state(st)
        return max(planner.value_per_second(ms, v) for v in ms.variants)

    def _rung(self, st: ProbedMember, plan_rung: bool) -> Variant:
        """The rung to probe: the member's best one (not ``plan_rung``: it is to found the machine
        factor), else the one a plan on what is known now gives the member (its probe rows are then
        the start of that work), else its cheapest (what may still fit)."""
        if not plan_rung:
            return st.member.variants[0]
        host = self.host
        states = [host.member_state(x) for x in host.states.values()]
        steps = {s.member: s.variant for s in planner.plan(states, host.clock(), host.budget).steps}
        if st.name in steps:
            return st.member.variant(steps[st.name])
        ms = next(m for m in states if m.name == st.name)
        cheapest = min(ms.variants, key=lambda v: planner.expected_seconds(ms, v))
        return st.member.variant(cheapest.name)

    def round(self) -> ProbeRound:
        """The members to probe now, most valuable first, within the probe share of the time left."""
        host = self.host
        start = host.clock()
        todo = [st for st in host.states.values() if st.status == Status.PENDING and st.missing()
                and not any(host.costs.measured_here(st.name, v.name) for v in st.member.variants)]
        todo.sort(key=lambda st: -self._prior_rate(st))
        return ProbeRound(share_end=start + PROBE_SHARE * max(0.0, host.budget.limit - start), todo=todo)

    def probe_all(self, lane: ProbeLane) -> None:
        """Measure every member here on one lane, most valuable first, within the probe share."""
        probes = self.round()
        while probes.todo:
            self.probe_one(lane, probes.todo.pop(0), probes)

    def probe_one(self, lane: ProbeLane, st: ProbedMember, probes: ProbeRound) -> None:
        """Probe one member on ``lane``; it is planned again after."""
        st.probing = True
        try:
            self._probe_or_skip(lane, st, probes)
        finally:
            st.probing = False

    def _probe_or_skip(self, lane: ProbeLane, st: ProbedMember, probes: ProbeRound) -> None:
        host = self.host
        if st.status != Status.PENDING or not st.missing():  # another lane has started it meanwhile: measured there
            return
        # Until a best rung founds the machine factor (what every prior not measured yet is scaled by),
        # one probe at a time measures a best rung, bounded by the limit alone, as is the most valuable
        # member's; the other probes run the plan's rung, within the probe share.
        need = not host.costs.calibrated() and not self.founding
        share_end = probes.share_end
        name, v = st.name, self._rung(st, plan_rung=probes.first or not need)
        now = host.clock()
        if now >= host.budget.limit:
            return
        known = host.costs.s_per_row(name, v.name) is not None
        founding = need and v.name == st.member.variants[0].name
        a, b = st.missing()[0]
        predicted = host.costs.setup_s(name, v.name) + 2 * (b - a) * host.costs.cautious_s_per_row(name, v.name)
        if known and (now + predicted > (host.budget.limit if probes.first or founding else share_end)):
            why = (f"probe skipped: ~{predicted:.1f}s predicted, "
                   f"{max(share_end - now, 0.0):.1f}s of the {PROBE_SHARE:.0%} probe share left; "
                   f"costed from its prior x machine factor {host.costs.calibration():.2f}"
                   + (f" ({host.costs.calibration_caveat()})" if host.costs.calibration_caveat() else ""))
            host.decisions.decide(st, Decision.NO_PROBE, v.name, host.costs.s_per_row(name, v.name),
                                  host.budget.limit - now, reason=why)
            log(f"{name}: {why}")
            return
        probes.first = False
        if founding:
            self.founding.add(name)
        try:
            self._probe_member(lane, st, v, share_end)
        finally:
            self.founding.discard(name)

    def _probe_member(self, lane: ProbeLane, st: ProbedMember, v: Variant, share_end: float) -> None:
        host, name = self.host, st.name
        t0, rows = host.clock(), 0  # this lane's rows: another lane may run this member meanwhile
        runner = host.ensure(lane, st, v)
        if runner is None:
            return
        r = host.costs.rate(name, v.name)
        while not (r.rows and (r.seconds >= PROBE_S or st.rows_done * 20 >= st.rows_total or host.clock() >= share_end)):
            claimed = st.claim()  # another lane may run this member meanwhile (row-split): never the same chunk
            if claimed is None:
                break
            try:
                done = host.timed_chunk(lane, st, v, runner, *claimed, host.budget.limit)
            finally:
                st.inflight.discard(claimed)
            if not done:
                break
            rows += claimed[1] - claimed[0]
        lane.log.add("probe", name, v.name, rows, t0, host.clock())
        if st.status == Status.RUNNING:
            spr = host.costs.s_per_row(name, v.name) or 0.0
            factor = host.costs.calibration()
            host.report.machine_factor = host.costs.factor_summary()
            caveat = host.report.machine_factor.get("caveat")  # a factor founded on noise says so
            factor_text = f"machine factor {factor:.2f}" + (f" ({caveat})" if caveat else "")
            host.event(f"{name}: measured {v.name}: setup {host.costs.setup_s(name, v.name):.2f}s, "
                       f"{spr * 1e3:.3g} ms/row; {factor_text}")
            host.decisions.decide(st, Decision.PROBE, v.name, spr, host.budget.limit - host.clock(),
                                  reason=f"{st.rows_done} rows kept; {factor_text}")
            host.pruned(st, v)
            if not st.missing():
                host.finish(lane, st)


__all__ = ["PROBE_S", "PROBE_SHARE", "ProbeHost", "ProbeLane", "ProbeRound", "ProbedMember", "Prober"]
