"""Which members run, on which rung, for how many rows: :func:`plan` (steps 1-5 of :mod:`runtime.schedule.planner`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.schedule.planner.model import (
    _EPS,
    _PLANNABLE,
    Budget,
    MemberState,
    Plan,
    Step,
    Variant,
    _check_number,
    _ratio,
    _secs,
    _value,
    expected_seconds,
)
from runtime.status import Status

#: Largest number of combinations per half the exact search will list.
_EXACT_MAX_COMBOS = 1 << 17


@dataclass(frozen=True)
class _Option:
    variant: Variant | None  # None: drop
    cost: float
    value: float
    setup: float = 0.0
    rows: int = 0


_DROP = _Option(None, 0.0, 0.0)


def _ladder(member: MemberState) -> tuple[Variant, ...]:
    """Variants a member may (still) use: a running member never upgrades."""
    loaded = member.loaded
    if loaded is None:
        return member.variants
    return member.variants[member.variants.index(loaded) :]


def _full(member: MemberState, variant: Variant) -> _Option:
    rows = member.rows_left
    setup = expected_seconds(member, variant, rows=0)
    return _Option(variant, setup + rows * variant.s_per_row, _value(member, variant, rows), setup, rows)


def _pinned(member: MemberState, left: float) -> bool:
    """A running member that can finish on its loaded variant keeps it (its setup is sunk)."""
    loaded = member.loaded
    return loaded is not None and expected_seconds(member, loaded) <= left + _EPS


def _options(member: MemberState, left: float, pin: bool = True) -> list[_Option]:
    """Full-run options that fit on their own, best first, plus drop where allowed (``pin``: a
    running member that can finish keeps its variant, its only option)."""
    if pin and member.loaded is not None and _pinned(member, left):
        return [_full(member, member.loaded)]  # no thrashing across replans either
    opts = [o for o in map(lambda v: _full(member, v), _ladder(member)) if o.cost <= left + _EPS]
    kept: list[_Option] = []  # Pareto front: each kept option costs more and is worth more
    for o in sorted(opts, key=lambda o: (o.cost, -o.value)):
        if not kept or o.value > kept[-1].value:
            kept.append(o)
    return kept[::-1] + [_DROP]


def _better(a: tuple, b: tuple) -> bool:
    """Entries are (cost, value, drops, choice); more value, then fewer drops, then less time."""
    tol = _EPS * max(1.0, abs(a[1]), abs(b[1]))
    if abs(a[1] - b[1]) > tol:
        return a[1] > b[1]
    return (a[2], a[0]) < (b[2], b[0])


def _enumerate(opt_lists: Sequence[list[_Option]], left: float) -> list[tuple]:
    out: list[tuple] = [(0.0, 0.0, 0, ())]
    for opts in opt_lists:
        out = [
            (c + o.cost, v + o.value, d + (o.variant is None), ch + (j,))
            for c, v, d, ch in out
            for j, o in enumerate(opts)
            if c + o.cost <= left + _EPS
        ]
    return out


def _split(opt_lists: Sequence[list[_Option]]) -> tuple[int, int]:
    """Split index balancing the halves' combination counts, and the larger count."""
    sizes = [len(o) for o in opt_lists]
    best = (0, math.prod(sizes))
    for k in range(1, len(sizes) + 1):
        worst = max(math.prod(sizes[:k]), math.prod(sizes[k:]))
        if worst < best[1]:
            best = (k, worst)
    return best


def _search_exact(opt_lists: Sequence[list[_Option]], left: float) -> tuple[int, ...]:
    k, _ = _split(opt_lists)
    right = sorted(_enumerate(opt_lists[k:], left), key=lambda e: e[0])
    costs = [e[0] for e in right]
    best_upto: list[tuple] = []  # best_upto[i]: best right entry costing <= costs[i]
    for e in right:
        best_upto.append(e if not best_upto or _better(e, best_upto[-1]) else best_upto[-1])
    best = None
    for c, v, d, ch in _enumerate(opt_lists[:k], left):
        i = bisect.bisect_right(costs, left - c + _EPS) - 1
        if i >= 0:
            r = best_upto[i]
            cand = (c + r[0], v + r[1], d + r[2], ch + r[3])
            if best is None or _better(cand, best):
                best = cand
    assert best is not None  # all-drop (or the pinned option alone) always fits
    return best[3]


def _search_greedy(opt_lists: Sequence[list[_Option]], left: float) -> list[int]:
    choice = [0] * len(opt_lists)

    def chosen(i: int) -> _Option:
        return opt_lists[i][choice[i]]

    def total() -> float:
        return sum(chosen(i).cost for i in range(len(opt_lists)))

    while total() > left + _EPS:
        # Degrade first: the step down losing least value per second saved.
        steps = [
            ((chosen(i).value - opts[choice[i] + 1].value) / (chosen(i).cost - opts[choice[i] + 1].cost), i)
            for i, opts in enumerate(opt_lists)
            if choice[i] + 1 < len(opts) and opts[choice[i] + 1].variant is not None
        ]
        if steps:
            choice[min(steps)[1]] += 1
            continue
        droppable = [i for i, o in enumerate(opt_lists) if o[-1] is _DROP and chosen(i) is not _DROP]
        if not droppable:
            break
        victim = min(droppable, key=lambda i: _ratio(chosen(i).value, chosen(i).cost))
        choice[victim] = len(opt_lists[victim]) - 1
    # Spend what is left, most valuable per second first (also revives dropped members).
    for i in sorted(range(len(opt_lists)), key=lambda i: -_ratio(opt_lists[i][0].value, opt_lists[i][0].cost)):
        for j in range(choice[i]):
            if total() - chosen(i).cost + opt_lists[i][j].cost <= left + _EPS:
                choice[i] = j
                break
    return choice


def _best_partial(member: MemberState, left: float) -> _Option | None:
    """Best time-boxed run of a member up to the limit (``left`` seconds from its start), if any rows fit."""
    best = None
    for v in _ladder(member):
        setup = expected_seconds(member, v, rows=0)
        if v.s_per_row <= 0 or left <= setup:
            continue
        rows = min(member.rows_left - 1, math.floor((left - setup) / v.s_per_row))
        if rows >= 1 and (best is None or _value(member, v, rows) > best.value):
            best = _Option(v, left, _value(member, v, rows), setup, rows)
    return best


def _drop_reason(member: MemberState, left: float, free: float, partial_of: str | None) -> str:
    need = min(expected_seconds(member, v) for v in _ladder(member))
    if need > left + _EPS:
        reason = f"would need {_secs(need)}, {_secs(left)} left"
    elif partial_of is not None:
        reason = f"no time left after the partial run of {partial_of!r} up to the limit"
    else:
        fits = [o for o in _options(member, left) if o.variant is not None]
        best = max(fits, key=lambda o: _ratio(o.value, o.cost))
        assert best.variant is not None, "fits holds only options that run a variant"
        reason = (
            f"value per second lowest; dropped to fit: {_ratio(best.value, best.cost):.3g} value/s "
            f"on {best.variant.name!r} would need {_secs(best.cost)}, {_secs(free)} free"
        )
    return reason


def _check_args(now: float, method: str, members: Sequence[MemberState]) -> None:
    """ValueError on what :func:`plan` and :func:`plan_lanes` refuse alike (programming errors)."""
    _check_number("now", now, low=-math.inf)
    if method not in ("auto", "exact", "greedy"):
        raise ValueError(f"method must be 'auto', 'exact' or 'greedy', got {method!r}")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate member names: {sorted(n for n in set(names) if names.count(n) > 1)}")


def plan(
    members: Sequence[MemberState], now: float, budget: Budget, *, method: str = "auto", fill: bool = False
) -> Plan:
    """Plan the remaining work so that it ends by ``budget.limit``.

    Args:
        members: Every member, in any state; "pending", "running" and
            "dropped" ones with rows left are planned. At most one may be running.
        now: Current time, same clock as ``budget.deadline``.
        budget: Deadline, margin and reserve.
        method: "exact", "greedy", or "auto" (exact while small enough).
        fill: Give the time left after the full steps to a last partial step
            (step 5 above); off, a member that cannot finish is never started.

    Returns:
        The plan; empty (with every plannable member dropped) when no time is left.

    Raises:
        ValueError: Duplicate member names, more than one running member, a
            non-finite ``now`` or an unknown ``method`` (programming errors).
    """
    _check_args(now, method, members)
    active = [m for m in members if m.status in _PLANNABLE and m.rows_left > 0]
    running = [m for m in active if m.status == Status.RUNNING]
    if len(running) > 1:
        raise ValueError(f"members run one at a time, but several are running: {[m.name for m in running]}")
    limit, left = budget.limit, budget.limit - now
    if now > budget.deadline or left <= 0:
        reason = "deadline passed" if now > budget.deadline else (
            f"no time left: the limit (deadline - margin - reserve) was reached {_secs(-left)} ago"
        )
        return Plan((), tuple((m.name, reason) for m in active), now, left, 0.0)

    opt_lists = [_options(m, left) for m in active]
    exact = method == "exact" or (method == "auto" and _split(opt_lists)[1] <= _EXACT_MAX_COMBOS)
    choice = _search_exact(opt_lists, left) if exact else _search_greedy(opt_lists, left)
    chosen = [opts[j] for opts, j in zip(opt_lists, choice)]
    value = sum(o.value for o in chosen)

    partial_of = None
    if running and not _pinned(running[0], left):
        part = _best_partial(running[0], left)
        if part is not None and part.value > value + _EPS * max(1.0, value):
            partial_of, value = running[0].name, part.value
            chosen = [part if m is running[0] else _DROP for m in active]

    order = sorted(
        (i for i, o in enumerate(chosen) if o.variant is not None),
        key=lambda i: (active[i].status != Status.RUNNING, -_ratio(chosen[i].value, chosen[i].cost)),
    )
    steps, t = [], now
    for i in order:
        o = chosen[i]
        assert o.variant is not None, "order holds only chosen options that run a variant"
        finish = limit if partial_of is not None else min(t + o.cost, limit)
        steps.append(Step(active[i].name, o.variant.name, o.rows, o.cost, t, finish, o.setup, partial_of is not None))
        t = finish
    if fill and partial_of is None and limit - t > _EPS:
        fills = [(p, i) for i, o in enumerate(chosen) if o.variant is None
                 for p in [_best_partial(active[i], limit - t)] if p is not None]
        if fills:
            part, i = max(fills, key=lambda f: (f[0].value, -f[1]))
            assert part.variant is not None, "a partial run always names its variant"
            chosen[i], value = part, value + part.value
            steps.append(Step(active[i].name, part.variant.name, part.rows, limit - t, t, limit, part.setup, True))
            t = limit
    free = limit - t
    left_out = [m for m, o in zip(active, chosen) if o.variant is None]
    dropped = tuple((m.name, _drop_reason(m, left, free, partial_of)) for m in left_out)
    stopped = frozenset(m.name for m in left_out if m.status == Status.RUNNING)
    return Plan(tuple(steps), dropped, t, free, value, stopped)


