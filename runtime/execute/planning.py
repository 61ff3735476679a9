"""What the executor tells the planner, and the decisions it records from the plan.

The planner (:mod:`runtime.schedule.planner`) is pure and knows nothing of
runs; these functions turn the run's state into its terms: each member's
rungs at their costs known now (:func:`member_state`), the lanes and what
they run (:func:`planner_lanes`), and why a member's next chunk cannot fit
(:func:`blocked`). :class:`DecisionLog` keeps each change of a member's
decision in its report, with the costs it was made on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from runtime.execute.state import MemberRun
from runtime.execute.worker import LaneWorker
from runtime.progress import format_seconds
from runtime.schedule import planner
from runtime.schedule.costs import CostModel
from runtime.status import Decision, Status

#: Cost assumed for a member nothing is known about (it is then never planned).
UNKNOWN_S_PER_ROW = 1e9
EPS = 1e-9


def member_state(st: MemberRun, costs: CostModel, workers: Sequence[LaneWorker], *, limited: bool,
                 write_s: float) -> planner.MemberState:
    """The member as the planner sees it: its rungs not pruned, at the costs known now, and its status."""
    variants = []
    name = st.name
    for i, v in enumerate(st.member.variants):
        if i and costs.pruned_by(name, v.name):
            continue  # measured not cheaper than a better rung: never worth taking
        spr = costs.s_per_row(name, v.name)
        spr = (0.0 if not limited else UNKNOWN_S_PER_ROW) if spr is None else spr
        # A finished member rewrites the submission: its write is charged once, as the setup of a
        # member not started. A running member's setup is its load on another lane (the lanes
        # running it pay none: planner.layout._lane_setup), so a short tail is still split; a runner
        # still loaded by a probe costs nothing to start.
        loaded = any(w.loaded == (name, v.name) for w in workers)
        if loaded and st.status == Status.RUNNING:
            setup = costs.setup_s(name, v.name)
        else:
            setup = (0.0 if loaded else costs.setup_s(name, v.name)) + write_s
        variants.append(planner.Variant(v.name, spr, setup, v.value_factor))
    # Only a member a step started is "running" (pinned by the planner); one
    # just probed is pending, its runner kept in case the plan starts with it.
    running = next((w.loaded[1] for w in workers if w.loaded and w.loaded[0] == name == w.stepping), None)
    if running not in {v.name for v in variants}:
        running = None  # its rung was pruned: the plan may reload a better one
    if st.status in (Status.DONE, Status.FAILED):
        status: Status = st.status
    elif st.status == Status.STOPPED:
        status = Status.DROPPED
    else:
        status = Status.RUNNING if running else Status.PENDING
    return planner.MemberState(name, st.member.value, tuple(variants), st.rows_total, st.rows_done,
                               status, running if status == Status.RUNNING else None)


def blocked(st: MemberRun, ms: planner.MemberState, now: float, costs: CostModel, limit: float,
            chunks_run: int) -> str:
    """Why not even the member's next chunk fits before ``limit`` on any rung ("" if one does)."""
    if ms.status in (Status.DONE, Status.FAILED) or not ms.rows_left:
        return ""
    if st.status == Status.STOPPED and st.stuck_at == chunks_run:
        # Stopped since the last chunk of anyone: nothing changed that could make it fit.
        return st.drop_reason[len("stopped at "):] if st.drop_reason.startswith("stopped at ") else st.drop_reason
    a, b = st.missing()[0]
    need = min(planner.expected_seconds(ms, v, rows=0) + (b - a) * costs.cautious_s_per_row(ms.name, v.name)
               for v in ms.variants)
    if ms.status == Status.RUNNING or now + need <= limit + EPS:  # the running step checks its own chunks
        return ""
    return f"its next chunk ({b - a} rows) would need {format_seconds(need)}, {format_seconds(limit - now)} left"


def planner_lanes(workers: Sequence[LaneWorker], states: Mapping[str, planner.MemberState]) -> list[planner.Lane]:
    """The lanes as the planner sees them: the member and rung each runs now, and who is retired there."""
    lanes = []
    for w in workers:
        ms = states.get(w.loaded[0]) if w.loaded and w.stepping == w.loaded[0] else None
        running = (ms is not None and w.loaded is not None and ms.status == Status.RUNNING
                   and ms.variant == w.loaded[1])
        lanes.append(planner.Lane(w.name, w.loaded if running else None, frozenset(w.retired)))
    return lanes


class DecisionLog:
    """Records a member's decisions in its report, each with the costs it was made on.

    Args:
        clock: The run's clock.
        margin: The margin in force now (it follows the measured jitter).
    """

    def __init__(self, clock: Callable[[], float], margin: Callable[[], float]):
        self.clock, self.margin = clock, margin

    def decide(self, st: MemberRun, kind: Decision, variant: str, s_per_row: float | None, left: float, *,
               reason: str = "", expected_s: float | None = None) -> None:
        """Record a decision when it differs from the member's last one (probes and prunes always)."""
        if (kind, variant) == st.decision and kind not in (Decision.PROBE, Decision.PRUNE):
            return
        st.decision = (kind, variant)
        st.report.decisions.append({
            "at_s": round(self.clock(), 3), "decision": kind, "variant": variant or None,
            "s_per_row": s_per_row if s_per_row is not None and s_per_row < UNKNOWN_S_PER_ROW else None,
            "expected_s": None if expected_s is None or expected_s >= UNKNOWN_S_PER_ROW else round(expected_s, 3),
            "seconds_left": round(left, 3), "margin_s": round(self.margin(), 3), "reason": reason,
        })


__all__ = ["EPS", "UNKNOWN_S_PER_ROW", "DecisionLog", "blocked", "member_state", "planner_lanes"]
