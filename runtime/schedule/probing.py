"""Probing: every member measured on this machine at the start of a run (step 1 of :mod:`runtime.execute.executor`).

Each member is loaded, warmed up and timed on a short stretch (:data:`PROBE_S`)
of its first chunks, most valuable per second first; those rows are kept as
results. All probes together may take :data:`PROBE_SHARE` of the time left,
as predicted from the priors; a member whose probe would not fit that share
is costed from its prior times the machine factor, except the first (its
rows are the work the plan values most anyway) and, until a best rung has
founded the machine factor, one probe at a time on a member's best rung.
No chunk is started that is predicted to end past the limit, so a probe
cannot break the deadline.

:class:`Probing` is a part of :class:`runtime.execute.executor.Executor` (it works on
the executor's states, costs and lanes); with several lanes,
:meth:`Executor._run_lanes <runtime.execute.executor.Executor._run_lanes>` gives each
lane the next member of the :class:`ProbeRound` to probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.schedule import planner
from runtime.manifest import Variant
from runtime.progress import log

#: A member's progress in the run: ``runtime.execute.executor._State`` (not imported: the executor imports this module).
_State = Any

#: Probing a member stops once this many seconds were timed after its warm-up batch (or 1/20 of its rows ran).
PROBE_S = 0.25
#: Share of the time left at the start that all probes together may take (predicted from the priors).
PROBE_SHARE = 0.1


@dataclass
class ProbeRound:
    """The probes at the start of a run: the members left to probe (most valuable first), when the probe
    share ends, and whether the next probe is the first (the most valuable member is probed whatever the
    share: its rows are the first work anyway). Lane threads share it under the executor's lock."""

    share_end: float
    todo: list[_State] = field(default_factory=list)
    first: bool = True


class Probing:
    """The probing half of :class:`runtime.execute.executor.Executor`: it uses the executor's ``states``,
    ``costs``, ``budget``, ``clock``, ``_founding`` and its chunk, decision and planning methods."""

    def _prior_rate(self, st: _State) -> float:
        """Value per second of the member's most valuable rung, on what is known now."""
        ms = self._planner_state(st)
        return max(planner.value_per_second(ms, v) for v in ms.variants)

    def _probe_rung(self, st: _State, plan_rung: bool) -> Variant:
        """The rung to probe: the member's best one (not ``plan_rung``: it is to found the machine
        factor), else the one a plan on what is known now gives the member (its probe rows are then
        the start of that work), else its cheapest (what may still fit)."""
        if not plan_rung:
            return st.member.variants[0]
        now = self.clock()
        states = [self._planner_state(x) for x in self.states.values()]
        steps = {s.member: s.variant for s in planner.plan(states, now, self.budget).steps}
        name = st.member.name
        if name in steps:
            return st.member.variant(steps[name])
        ms = next(m for m in states if m.name == name)
        cheapest = min(ms.variants, key=lambda v: planner.expected_seconds(ms, v))
        return st.member.variant(cheapest.name)

    def _probe_round(self) -> ProbeRound:
        """The members to probe now, most valuable first, within the probe share of the time left."""
        start = self.clock()
        todo = [st for st in self.states.values() if st.status == "pending" and st.missing()
                and not any(self.costs.measured_here(st.member.name, v.name) for v in st.member.variants)]
        todo.sort(key=lambda st: -self._prior_rate(st))
        return ProbeRound(share_end=start + PROBE_SHARE * max(0.0, self.budget.limit - start), todo=todo)

    def _probe(self) -> None:
        """Measure every member here, most valuable first, within the probe share (one lane; with several,
        :meth:`_run_lanes` gives each lane the next member to probe while the others work)."""
        probes = self._probe_round()
        while probes.todo:
            self._probe_one(probes.todo.pop(0), probes)

    def _probe_one(self, st: _State, probes: ProbeRound) -> None:
        """Probe one member on the calling thread's lane (see :meth:`_probe`); it is planned again after."""
        st.probing = True
        try:
            self._probe_or_skip(st, probes)
        finally:
            st.probing = False

    def _probe_or_skip(self, st: _State, probes: ProbeRound) -> None:
        if st.status != "pending" or not st.missing():  # another lane has started it meanwhile: measured there
            return
        # Until a best rung founds the machine factor (what every prior not measured yet is scaled by),
        # one probe at a time measures a best rung, bounded by the limit alone, as is the most valuable
        # member's; the other probes run the plan's rung, within the probe share.
        need = not self.costs.calibrated() and not self._founding
        share_end = probes.share_end
        name, v = st.member.name, self._probe_rung(st, plan_rung=probes.first or not need)
        now = self.clock()
        if now >= self.budget.limit:
            return
        known = self.costs.s_per_row(name, v.name) is not None
        founding = need and v.name == st.member.variants[0].name
        a, b = st.missing()[0]
        predicted = self.costs.setup_s(name, v.name) + 2 * (b - a) * self.costs.cautious_s_per_row(name, v.name)
        if known and (now + predicted > (self.budget.limit if probes.first or founding else share_end)):
            why = (f"probe skipped: ~{predicted:.1f}s predicted, "
                   f"{max(share_end - now, 0.0):.1f}s of the {PROBE_SHARE:.0%} probe share left; "
                   f"costed from its prior x machine factor {self.costs.calibration():.2f}"
                   + (f" ({self.costs.calibration_caveat()})" if self.costs.calibration_caveat() else ""))
            self._decide(st, "no probe", v.name, self.costs.s_per_row(name, v.name), self.budget.limit - now,
                         reason=why)
            log(f"{name}: {why}")
            return
        probes.first = False
        if founding:
            self._founding.add(name)
        try:
            self._probe_member(st, v, share_end)
        finally:
            self._founding.discard(name)

    def _probe_member(self, st: _State, v: Variant, share_end: float) -> None:
        name = st.member.name
        t0, rows = self.clock(), 0  # this lane's rows: another lane may run this member meanwhile
        runner = self._ensure(st, v)
        if runner is None:
            return
        r = self.costs.rate(name, v.name)
        while not (r.rows and (r.seconds >= PROBE_S or st.rows_done * 20 >= st.rows_total or self.clock() >= share_end)):
            claimed = st.claim()  # another lane may run this member meanwhile (row-split): never the same chunk
            if claimed is None:
                break
            try:
                done = self._timed_chunk(st, v, runner, *claimed, self.budget.limit)
            finally:
                st.inflight.discard(claimed)
            if not done:
                break
            rows += claimed[1] - claimed[0]
        self._lane().log.add("probe", name, v.name, rows, t0, self.clock())
        if st.status == "running":
            spr = self.costs.s_per_row(name, v.name) or 0.0
            factor = self.costs.calibration()
            self.report.machine_factor = self.costs.factor_summary()
            caveat = self.report.machine_factor.get("caveat")  # a factor founded on noise says so
            factor_text = f"machine factor {factor:.2f}" + (f" ({caveat})" if caveat else "")
            self.event(f"{name}: measured {v.name}: setup {self.costs.setup_s(name, v.name):.2f}s, "
                       f"{spr * 1e3:.3g} ms/row; {factor_text}")
            self._decide(st, "probe", v.name, spr, self.budget.limit - self.clock(),
                         reason=f"{st.rows_done} rows kept; {factor_text}")
            self._pruned(st, v)
            if not st.missing():
                self._finish(st)


__all__ = ["PROBE_S", "PROBE_SHARE", "ProbeRound", "Probing"]
