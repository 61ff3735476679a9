"""The best plan that fits: :func:`runtime.schedule.planner.plan` over estimated costs on a target.

Each member's variants, each at the batch sizes worth trying, become planner
variants (``s_per_row`` and ``setup_s`` on the target, at the high edge of
their band, so the plan fits by the verdict's own rule); the fixed stages
(install, process start, imports, verification, read, writing, exit) are the
planner's reserve. The planner then maximises delivered value (``member.value * value_factor``), degrading before
dropping; see :mod:`runtime.schedule.planner`. On several lanes (a T4 x2 is two) it is
:func:`runtime.schedule.planner.plan_lanes`, the run's own lane model: members side by
side, a member's rows split across lanes, each step on a named lane.
:func:`lanes_span` is the same layout with no limit: how long the member
stages take on the lanes, which the estimate's total uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.manifest import Member
from runtime.schedule import planner


@dataclass(frozen=True)
class Candidate:
    """One way to run a member: a variant at a batch size, with its high-edge costs."""

    variant: str
    batch_size: int
    setup_s: float  # load / engine build on the target
    stream_s: float  # every row through the member (inference + ensembling)
    value_factor: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.variant}@{self.batch_size}"


@dataclass(frozen=True)
class FitPlan:
    """The best plan that fits (planned on the high edge of every band).

    Attributes:
        steps: ``(member, variant, batch_size, seconds)`` in run order.
        dropped: ``(member, reason)`` for each member left out.
        degraded: ``(member, from, to)`` (``variant@batch``) for members run
            otherwise than packaged: a cheaper rung or another batch size.
        value: Delivered ensemble value; ``full_value`` is all members at full.
        high_s: Total (high edge) of the plan, fixed stages included.
        notes: How to run the plan with ``ninefit run``, where it takes more
            than the bundle as packaged (batch sizes).
        lanes: The lane each step runs on (parallel to ``steps``); all 0 on one lane.
        lane_count: Lanes planned for.
    """

    steps: tuple[tuple[str, str, int, float], ...]
    dropped: tuple[tuple[str, str], ...]
    degraded: tuple[tuple[str, str, str], ...]
    value: float
    full_value: float
    high_s: float
    notes: tuple[str, ...] = ()
    lanes: tuple[int, ...] = ()
    lane_count: int = 1

    def lane_of(self, index: int) -> int:
        return self.lanes[index] if index < len(self.lanes) else 0

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"member": m, "variant": v, "batch_size": b, "seconds": s, "lane": self.lane_of(k)}
                          for k, (m, v, b, s) in enumerate(self.steps)], "lane_count": self.lane_count,
                "dropped": [{"member": m, "reason": r} for m, r in self.dropped],
                "degraded": [{"member": m, "from": a, "to": b} for m, a, b in self.degraded],
                "value": self.value, "full_value": self.full_value, "high_s": self.high_s,
                "notes": list(self.notes)}


def best_plan(
    members: Sequence[tuple[Member, Sequence[Candidate]]],
    rows: int,
    time_limit_s: float,
    margin_s: float,
    reserve_s: float,
    reserve_what: str = "the fixed stages",
    lanes: int = 1,
    quantum: dict[str, int] | None = None,
) -> FitPlan:
    """Choose members, variants and batch sizes that fit ``time_limit_s - margin_s - reserve_s``.

    Args:
        members: Each member with its candidates, the packaged way first.
        rows: Rows every member must predict.
        time_limit_s: The limit; ``margin_s`` is kept free.
        reserve_s: Time the rest of the run needs (high edge).
        reserve_what: Names that rest in a drop reason.
        lanes: Lanes the run uses at once (steps are laid out over them).
        quantum: Rows per chunk of each member (the run's ``runtime.execute.checkpoint.member_grid``): a member's
            rows are split over lanes in whole chunks, as the run splits them.
    """
    full_value = sum(m.value for m, _ in members)
    available = time_limit_s - margin_s
    if reserve_s >= available:
        reason = (f"{reserve_what} need {reserve_s:.0f} s at the high edge, more than the {available:.0f} s "
                  "available")
        return FitPlan((), tuple((m.name, reason) for m, _ in members), (), 0.0, full_value, reserve_s)
    states, labels = [], {}
    for member, candidates in members:
        variants = []
        for c in candidates:
            labels[(member.name, c.label)] = c
            variants.append(planner.Variant(name=c.label, s_per_row=c.stream_s / rows, setup_s=c.setup_s,
                                            value_factor=c.value_factor))
        states.append(planner.MemberState(name=member.name, value=member.value, variants=tuple(variants),
                                          rows_total=rows))
    result = planner.plan_lanes(states, 0.0, planner.Budget(deadline=time_limit_s, margin_s=margin_s,
                                                            reserve_s=reserve_s), _lanes(lanes),
                                quantum=quantum)
    packaged = {m.name: cands[0].label for m, cands in members}
    steps, degraded = [], []
    for step in sorted(result.steps, key=lambda s: (s.lane, s.start)):
        c = labels[(step.member, step.variant)]
        steps.append((step.member, c.variant, c.batch_size, step.expected_s))
        if step.variant != packaged[step.member] and (step.member, packaged[step.member], step.variant) not in degraded:
            degraded.append((step.member, packaged[step.member], step.variant))
    return FitPlan(tuple(steps), result.dropped, tuple(degraded), result.value, full_value,
                   reserve_s + max([0.0, *(s.finish for s in result.steps)]), _batch_notes(steps, degraded),
                   tuple(s.lane for s in sorted(result.steps, key=lambda s: (s.lane, s.start))), lanes)


def _lanes(n: int) -> list[planner.Lane]:
    return [planner.Lane(f"lane{k}") for k in range(max(1, n))]


def lanes_span(work: Sequence[tuple[str, float, float]], rows: int, lanes: int,
               quantum: dict[str, int] | None = None) -> tuple[float, list[planner.Step]]:
    """Seconds the members' work takes on ``lanes`` lanes, and the layout (no limit).

    ``work`` is ``(member, setup seconds, streaming seconds)`` per member; on
    one lane the span is their sum. ``quantum``: rows per chunk of each member,
    the run's own grid, so that rows are split in whole chunks as the run splits them.
    """
    if lanes <= 1 or not work:
        return sum(a + b for _, a, b in work), []
    states = [planner.MemberState(name, 1.0, (planner.Variant("est", stream / rows, setup_s=setup),), rows)
              for name, setup, stream in work]
    p = planner.plan_lanes(states, 0.0, planner.Budget(deadline=1e18), _lanes(lanes), quantum=quantum)
    return p.projected_finish, list(p.steps)


def _batch_notes(steps: Sequence[tuple[str, str, int, float]],
                 degraded: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """How to get the plan's batch sizes from ``ninefit run``, which has one ``--batch-size`` for all members.

    The runtime degrades variants and drops members by itself; batch sizes it
    takes from the bundle, or from ``--batch-size`` for every member at once.
    """
    changed = [m for m, old, new in degraded if old.partition("@")[2] != new.partition("@")[2]]
    if not changed:
        return ()
    sizes = sorted({b for _, _, b, _ in steps})
    if len(sizes) == 1:
        return (f"batch sizes: run with `ninefit run --batch-size {sizes[0]}` (one batch size for all members, "
                "which this plan has)",)
    per_member = ", ".join(f"{m} {b}" for m, _, b, _ in steps)
    return (f"batch sizes differ per member ({per_member}); `ninefit run` has one --batch-size for all members: "
            "set it with --batch-size only if all members agree; otherwise the runtime runs each member at its "
            f"packaged batch size and {', '.join(changed)} take(s) longer than planned",)


__all__ = ["Candidate", "FitPlan", "best_plan", "lanes_span"]
