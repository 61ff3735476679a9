"""Several lanes at once: :func:`plan_lanes` chooses over the time of all lanes together
(:func:`runtime.schedule.planner.search.plan`'s rules), then places the members on the lanes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from runtime.schedule.planner.model import (
    _EPS,
    _PLANNABLE,
    Budget,
    Lane,
    MemberState,
    Plan,
    Step,
    Variant,
    _ratio,
    _secs,
    _value,
    expected_seconds,
)
from runtime.schedule.planner.search import (
    _EXACT_MAX_COMBOS,
    _best_partial,
    _check_args,
    _ladder,
    _Option,
    _options,
    _search_exact,
    _search_greedy,
    _split,
    plan,
)
from runtime.status import Status


@dataclass
class _Part:
    """One lane's share of a chosen member, while :func:`_layout` builds the lanes."""

    member: int  # index into the active members
    variant: Variant
    rows: int
    setup: float

    @property
    def cost(self) -> float:
        return self.setup + self.rows * self.variant.s_per_row


def _lane_setup(lane: Lane, member: MemberState, variant: Variant) -> float:
    """Setup a member's variant costs on a lane: none where that lane runs it already."""
    return 0.0 if lane.loaded == (member.name, variant.name) else variant.setup_s


def _layout(active: Sequence[MemberState], chosen: Sequence[_Option], lanes: Sequence[Lane],
            eligible: Sequence[Sequence[int]], now: float, quantum: dict[str, int]) -> list[list[_Part]]:
    """Place the chosen options on lanes; split a member's rows over lanes where that ends the work sooner.

    Greedy, documented in :func:`plan_lanes`: running members stay on their
    lanes; the others go, most valuable per second first, to the eligible lane
    that frees first; then, while it helps, the last part of the lane ending
    last gives rows (whole chunks of ``quantum`` rows) to the eligible lane
    ending first, paying its setup there, so that both end as nearly together
    as whole chunks allow.
    """
    n = len(lanes)
    parts: list[list[_Part]] = [[] for _ in range(n)]
    t = [now] * n
    todo = []
    for i, (m, o) in enumerate(zip(active, chosen)):
        if o.variant is None:
            continue
        on = [k for k in eligible[i] if lanes[k].loaded == (m.name, o.variant.name)]
        if not on:
            todo.append(i)
            continue
        q = max(1, quantum.get(m.name, 1))
        base, extra = divmod(-(-o.rows // q), len(on))
        left = o.rows
        for j, k in enumerate(on):  # its running lanes share its rows, in whole chunks
            rows = left if j == len(on) - 1 else min(left, q * (base + (j < extra)))
            left -= rows
            if rows > 0:
                parts[k].append(_Part(i, o.variant, rows, 0.0))
                t[k] += rows * o.variant.s_per_row
    for i in sorted(todo, key=lambda i: -_ratio(chosen[i].value, chosen[i].cost)):
        m, v = active[i], chosen[i].variant
        assert v is not None, "todo holds only chosen options that run a variant"
        k = min(eligible[i], key=lambda k: (t[k], len(parts[k]), k))  # free costs: spread by count
        part = _Part(i, v, chosen[i].rows, _lane_setup(lanes[k], m, v))
        parts[k].append(part)
        t[k] += part.cost
    for _ in range(n * (len(active) + 1)):  # row-split: even out the lanes' ends
        hi = max(range(n), key=lambda k: (t[k], -k))
        if not parts[hi]:
            break
        last = parts[hi][-1]
        m, v = active[last.member], last.variant
        others = [k for k in eligible[last.member] if k != hi]
        if not others or v.s_per_row <= 0:
            break
        lo = min(others, key=lambda k: (t[k], k))
        setup = _lane_setup(lanes[lo], m, v)
        q = max(1, quantum.get(m.name, 1))
        # Whole chunks: the number of them, below or above the even split, that ends both lanes soonest
        # (a member of two chunks is split where one chunk on each lane ends sooner than both on one).
        half = max(0.0, t[hi] - t[lo] - setup) / (2 * v.s_per_row) / q
        most = (last.rows - 1) // q * q  # the lane ending last keeps at least one row
        rows = min((min(int(c) * q, most) for c in (math.floor(half), math.ceil(half))),
                   key=lambda r: (max(t[hi] - r * v.s_per_row, t[lo] + setup + r * v.s_per_row), r))
        if rows < 1 or max(t[hi] - rows * v.s_per_row, t[lo] + setup + rows * v.s_per_row) >= t[hi] - _EPS:
            break
        last.rows -= rows
        t[hi] -= rows * v.s_per_row
        tail = parts[lo][-1] if parts[lo] else None
        if tail is not None and tail.member == last.member and tail.variant is v:
            tail.rows += rows  # it runs that member last already: no second setup
            t[lo] += rows * v.s_per_row
        else:
            parts[lo].append(_Part(last.member, v, rows, setup))
            t[lo] += setup + rows * v.s_per_row
    return parts


def _clip(parts: list[list[_Part]], now: float, limit: float) -> set[int]:
    """Cut each lane at the limit: a part crossing it keeps the rows that fit (time-boxed);
    returns the members whose part was cut."""
    cut = set()
    for lane in parts:
        t, kept = now, []
        for p in lane:
            if t + p.cost > limit + _EPS:
                if p.variant.s_per_row > 0:
                    p.rows = min(p.rows, math.floor((limit - t - p.setup) / p.variant.s_per_row + _EPS))
                if p.rows >= 1:
                    kept.append(p)
                    cut.add(p.member)
                break
            kept.append(p)
            t += p.cost
        lane[:] = kept
    return cut


def plan_lanes(
    members: Sequence[MemberState],
    now: float,
    budget: Budget,
    lanes: Sequence[Lane],
    *,
    method: str = "auto",
    fill: bool = False,
    quantum: dict[str, int] | None = None,
) -> Plan:
    """Plan the remaining work over lanes that run at the same time, to end by ``budget.limit``.

    With one lane (nothing retired on it) this is :func:`plan`, step for step.
    With several, the lanes are taken as alike (a member costs the same on
    each: the executor measures one rate per member and rung) and:

    1. **Choose** rungs and drops as :func:`plan` does (exact while small,
       greedy past that), with the time of every lane together as the budget
       (``lanes x time left``; a member may take more than one lane's time,
       since its rows can be split). A member retired on some lanes has only
       the others' time.
    2. **Place** (:func:`_layout`, greedy): a running member stays on the
       lanes running it (its setup is sunk there); the others, most valuable
       per second first, go to the eligible lane that frees first
       (member-parallel); then the lane ending last gives rows of its last
       member to the lane ending first, paying that member's setup there,
       in whole chunks (``quantum[member]`` rows; row-split), while moving
       them ends the two lanes sooner (a chunk more than half the work still
       moves when that ends sooner: two chunks run one on each lane).
    3. If the lanes then end past the limit (setups paid twice by splits,
       lanes a member may not use), the choice is made again with that much
       less time, up to 8 times, and then each lane is cut at the limit
       (the part crossing it keeps the rows that fit, as a partial step).
    4. With ``fill``, each lane's time left after its full steps goes to a
       time-boxed partial step of a member left out, the most valuable first.

    Steps carry their ``lane``; each lane's steps run back to back from
    ``now``. Re-plan whenever a lane finishes its step.

    Args:
        members: As for :func:`plan`; several may be running (each on its lanes).
        lanes: The lanes, in index order (``Step.lane`` indexes them).
        quantum: Rows per chunk of each member (default 1): rows are split in whole chunks.

    Raises:
        ValueError: No lanes, a lane running a member not running on that
            variant, or what :func:`plan` raises.
    """
    lanes = tuple(lanes)
    active, eligible, nowhere = _plannable(members, now, method, lanes)
    if len(lanes) == 1:
        p = plan(active, now, budget, method=method, fill=fill)
        return replace(p, dropped=(*nowhere, *p.dropped))
    limit, left = budget.limit, budget.limit - now
    if now > budget.deadline or left <= 0:
        reason = "deadline passed" if now > budget.deadline else (
            f"no time left: the limit (deadline - margin - reserve) was reached {_secs(-left)} ago"
        )
        return Plan((), (*nowhere, *((m.name, reason) for m in active)), now, left, 0.0)
    parts, partial = _choose_and_place(active, eligible, lanes, now, limit, method, dict(quantum or {}))
    if fill:
        _fill(parts, partial, active, eligible, now, limit)
    return _plan_of(parts, partial, active, eligible, nowhere, now, limit)


def _plannable(members: Sequence[MemberState], now: float, method: str,
               lanes: tuple[Lane, ...]) -> tuple[list[MemberState], list[list[int]], tuple[tuple[str, str], ...]]:
    """The members with rows left to plan, the lanes each may use, and those left no lane (failed on every one).

    Raises:
        ValueError: No lanes, or a lane running a member not running on that variant.
    """
    if not lanes:
        raise ValueError("plan_lanes needs at least one lane")
    _check_args(now, method, members)
    by_name = {m.name: m for m in members}
    for lane in lanes:
        if lane.loaded is not None:
            m = by_name.get(lane.loaded[0])
            if m is None or m.status != Status.RUNNING or m.variant != lane.loaded[1]:
                raise ValueError(f"lane {lane.name!r} runs {lane.loaded[0]}/{lane.loaded[1]}, "
                                 "which is not a running member on that variant")
    active = [m for m in members if m.status in _PLANNABLE and m.rows_left > 0]
    eligible = [[k for k, lane in enumerate(lanes) if m.name not in lane.retired] for m in active]
    nowhere = tuple((m.name, "failed on every lane") for m, e in zip(active, eligible) if not e)
    return [m for m, e in zip(active, eligible) if e], [e for e in eligible if e], nowhere


def _choose_and_place(active: Sequence[MemberState], eligible: Sequence[Sequence[int]], lanes: tuple[Lane, ...],
                      now: float, limit: float, method: str,
                      quantum: dict[str, int]) -> tuple[list[list[_Part]], set[int]]:
    """Steps 1 to 3: rungs and drops over every lane's time, laid out; chosen again with less time while the
    lanes end past the limit (up to 8 times), then cut at it. Returns each lane's parts and the members whose
    last part is time-boxed."""
    left = limit - now
    opt_lists = [_options(m, len(e) * left) for m, e in zip(active, eligible)]
    if sum(min(o.cost for o in opts) for opts in opt_lists) > len(lanes) * left + _EPS:
        # Running members that each could finish cannot all: none is pinned, any may be stopped.
        opt_lists = [_options(m, len(e) * left, pin=False) for m, e in zip(active, eligible)]
    exact = method == "exact" or (method == "auto" and _split(opt_lists)[1] <= _EXACT_MAX_COMBOS)
    capacity, partial = len(lanes) * left, set[int]()  # partial: members whose last part is time-boxed
    # Each overrunning layout cuts the capacity searched, never below what the cheapest choice
    # costs (a pinned running member's rest, else nothing): then the last layout is clipped.
    floor = sum(min(o.cost for o in opts) for opts in opt_lists)
    for _ in range(8):
        choice = _search_exact(opt_lists, capacity) if exact else _search_greedy(opt_lists, capacity)
        chosen = [opts[j] for opts, j in zip(opt_lists, choice)]
        parts = _layout(active, chosen, lanes, eligible, now, quantum)
        over = max(now + sum(p.cost for p in lane) for lane in parts) - limit
        if over <= _EPS:
            return parts, partial
        if capacity <= floor + _EPS:
            break
        capacity = max(floor, capacity - max(over, _EPS * max(1.0, capacity)))
    return parts, _clip(parts, now, limit)


def _fill(parts: list[list[_Part]], partial: set[int], active: Sequence[MemberState],
          eligible: Sequence[Sequence[int]], now: float, limit: float) -> None:
    """Step 4: each lane's time left after its full steps goes to a partial step of a member left out."""
    ends = [now + sum(p.cost for p in lane) for lane in parts]
    full = {p.member for lane in parts for p in lane}
    given: dict[int, int] = {}  # rows of each left-out member given to partial steps so far
    for k in sorted(range(len(parts)), key=lambda k: (ends[k], k)):
        fills = [(p, i) for i, m in enumerate(active) if i not in full and k in eligible[i]
                 and m.rows_left - given.get(i, 0) > 1
                 for p in [_best_partial(replace(m, rows_done=m.rows_done + given.get(i, 0)), limit - ends[k])]
                 if p is not None]
        if fills:
            best, i = max(fills, key=lambda f: (f[0].value, -f[1]))
            assert best.variant is not None, "a partial run always names its variant"
            parts[k].append(_Part(i, best.variant, best.rows, best.setup))
            given[i] = given.get(i, 0) + best.rows
            partial.add(i)
            ends[k] = limit


def _plan_of(parts: Sequence[Sequence[_Part]], partial: set[int], active: Sequence[MemberState],
             eligible: Sequence[Sequence[int]], nowhere: tuple[tuple[str, str], ...], now: float,
             limit: float) -> Plan:
    """The lanes' parts as steps from ``now`` (a time-boxed last part ends at the limit), and why each
    member left out is."""
    steps, value = [], 0.0
    for k, lane in enumerate(parts):
        t = now
        for p in lane:
            m = active[p.member]
            cut = p.member in partial and p is lane[-1]
            finish = limit if cut else min(t + p.cost, limit)
            steps.append(Step(m.name, p.variant.name, p.rows, p.cost, t, finish, p.setup, cut, k))
            value += _value(m, p.variant, p.rows)
            t = finish
    steps.sort(key=lambda s: (s.start, s.lane))
    placed = {s.member for s in steps}
    end = max([now, *(s.finish for s in steps)])
    free = sum(limit - max([now, *(s.finish for s in steps if s.lane == k)]) for k in range(len(parts)))
    dropped = list(nowhere)
    stopped = frozenset(m.name for m in active if m.name not in placed and m.status == Status.RUNNING)
    for m, e in zip(active, eligible):
        if m.name in placed:
            continue
        need = min(expected_seconds(m, v) for v in _ladder(m))
        cap = len(e) * (limit - now)
        why = (f"would need {_secs(need)}, {_secs(cap)} left on {len(e)} lane(s)" if need > cap + _EPS else
               f"value per second lowest; dropped to fit: {_secs(need)} needed, {_secs(free)} free on the lanes")
        dropped.append((m.name, why))
    return Plan(tuple(steps), tuple(dropped), end, limit - end, value, stopped)


