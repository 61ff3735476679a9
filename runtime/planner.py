"""Pure deadline planner: which member runs next, on which variant, for how many rows.

:func:`plan` turns measured costs, a clock reading and a :class:`Budget` into a
:class:`Plan`. No I/O, no sleeping, no clock: ``now`` is passed in (seconds,
the deadline's clock), so the executor can re-plan every few batches
(:func:`should_replan`, :func:`estimate_s_per_row`) and tests use a fake clock.

Algorithm (everything must end by ``limit = deadline - margin_s - reserve_s``):

1. "pending", "running" and "dropped" members with rows left are planned
   ("dropped" is a decision for now, not forever: a member dropped by an
   earlier plan comes back whenever the time left allows it). Each gets
   *options*: a rung of its ladder run over all its remaining rows (setup
   included unless already loaded) that fits the time left on its own and is
   not dominated, plus "drop". A running member that can finish on its loaded
   variant is pinned to it (its setup is sunk; replans must not thrash it).
   One that cannot may degrade to a later rung, take a partial step or stop;
   it is never upgraded.
2. Exact search, meet in the middle: list every in-budget combination of each
   half of the members, sort one half by cost with a running best, and bisect
   for each combination of the other. This maximises delivered value; ties go
   to fewer drops, then less time. 12 members x 4 rungs is 5**6 = 15625
   combinations a half; past ``2**17`` a greedy fallback runs instead: degrade
   the rung losing least value per second saved, drop the lowest
   value-per-second member only when nothing can degrade, then upgrade with
   what is left, best value per second first. Both degrade before dropping;
   only the exact search is optimal.
3. A running member that cannot finish may instead get one partial step ending
   exactly at the limit (partial rows count), when worth more than step 2.
4. Order: the running member, then value per second, highest first, so what
   is at risk when reality runs slow is the least valuable work.
5. With ``fill=True`` (the runtime; the estimator leaves it off), time still
   free after the full steps goes to one last time-boxed partial step of a
   member that cannot finish, the one whose rows are worth most: its rows
   count, and the limit is not left unused.

Several lanes (GPUs, or shares of the CPU cores) running at once:
:func:`plan_lanes` chooses as above over the time of all lanes together, then
places members on lanes (side by side, or one member's rows split across
lanes); with one lane it is :func:`plan`. Its docstring has the rules.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "STATUSES",
    "Budget",
    "Lane",
    "MemberState",
    "Plan",
    "Step",
    "Variant",
    "estimate_s_per_row",
    "expected_seconds",
    "plan",
    "plan_lanes",
    "projected_finish",
    "should_replan",
    "value_per_second",
]

#: Member states the executor reports; "pending", "running" and "dropped" are planned.
STATUSES = ("pending", "running", "done", "failed", "dropped")
_PLANNABLE = ("pending", "running", "dropped")
_EPS = 1e-9
#: Largest number of combinations per half the exact search will list.
_EXACT_MAX_COMBOS = 1 << 17


def _check_number(what: str, x: float, *, low: float = 0.0) -> None:
    if not isinstance(x, numbers.Real) or not math.isfinite(x) or x < low:
        raise ValueError(f"{what} must be a finite number >= {low:g}, got {x!r}")


@dataclass(frozen=True)
class Variant:
    """One rung of a member's degradation ladder, with its measured cost.

    Attributes:
        name: Variant name, unique within its member ("fp32", "fp16", "tta1").
        s_per_row: Seconds of inference per test row.
        setup_s: Seconds to load / build the engine, paid when the member
            (re)starts on this variant.
        value_factor: Share of the member's value this variant delivers, in (0, 1].
    """

    name: str
    s_per_row: float
    setup_s: float = 0.0
    value_factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"variant name must be a non-empty string, got {self.name!r}")
        _check_number(f"variant {self.name!r} s_per_row", self.s_per_row)
        _check_number(f"variant {self.name!r} setup_s", self.setup_s)
        if not 0.0 < self.value_factor <= 1.0:
            raise ValueError(f"variant {self.name!r} value_factor must be in (0, 1], got {self.value_factor!r}")


@dataclass(frozen=True)
class MemberState:
    """Where one ensemble member stands, as the executor sees it now.

    Attributes:
        name: Member name, unique within the ensemble.
        value: Ensemble weight or validation score; higher is better, >= 0.
        variants: Degradation ladder, best first.
        rows_total: Test rows the member must predict.
        rows_done: Rows already predicted (they count whatever happens next).
        status: One of :data:`STATUSES`.
        variant: The variant loaded (setup paid) when ``status == "running"``.
    """

    name: str
    value: float
    variants: tuple[Variant, ...]
    rows_total: int
    rows_done: int = 0
    status: str = "pending"
    variant: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"member name must be a non-empty string, got {self.name!r}")
        _check_number(f"member {self.name!r} value", self.value)
        object.__setattr__(self, "variants", tuple(self.variants))
        names = [v.name for v in self.variants]
        if not names:
            raise ValueError(f"member {self.name!r} has no variants; its ladder needs at least one")
        if len(set(names)) != len(names):
            raise ValueError(f"member {self.name!r} has duplicate variant names: {names}")
        if self.rows_total < 0 or not 0 <= self.rows_done <= self.rows_total:
            raise ValueError(
                f"member {self.name!r}: need 0 <= rows_done <= rows_total, "
                f"got rows_done={self.rows_done}, rows_total={self.rows_total}"
            )
        if self.status not in STATUSES:
            raise ValueError(f"member {self.name!r}: status {self.status!r} is not one of {STATUSES}")
        if self.variant is not None and self.variant not in names:
            raise ValueError(f"member {self.name!r}: loaded variant {self.variant!r} is not in its ladder {names}")

    @property
    def rows_left(self) -> int:
        """Rows still to predict."""
        return self.rows_total - self.rows_done

    @property
    def loaded(self) -> Variant | None:
        """The variant whose setup is already paid (only while running)."""
        if self.status != "running" or self.variant is None:
            return None
        return self.variants[[v.name for v in self.variants].index(self.variant)]


@dataclass(frozen=True)
class Budget:
    """The time budget: everything must end by ``deadline - margin_s - reserve_s``.

    Attributes:
        deadline: Absolute time (same clock as ``now``) the notebook is killed.
        margin_s: Safety margin against slow reruns.
        reserve_s: Time kept for the work after inference (blending, writing CSV).
    """

    deadline: float
    margin_s: float = 0.0
    reserve_s: float = 0.0

    def __post_init__(self) -> None:
        _check_number("deadline", self.deadline, low=-math.inf)
        _check_number("margin_s", self.margin_s)
        _check_number("reserve_s", self.reserve_s)

    @property
    def limit(self) -> float:
        """Time by which every step must have ended."""
        return self.deadline - self.margin_s - self.reserve_s


@dataclass(frozen=True)
class Step:
    """Run ``rows`` rows of ``member`` on ``variant`` from ``start`` to ``finish``.

    ``expected_s`` includes ``setup_s`` (zero when the variant is already
    loaded). A ``partial`` step covers fewer rows than the member has left and
    ends exactly at the limit: the executor stops it at ``finish``.
    """

    member: str
    variant: str
    rows: int
    expected_s: float
    start: float
    finish: float
    setup_s: float = 0.0
    partial: bool = False
    lane: int = 0  # index of the lane it runs on (:func:`plan_lanes`); 0 with one lane


@dataclass(frozen=True)
class Lane:
    """One lane (a GPU, or a share of the CPU cores) as :func:`plan_lanes` sees it.

    Attributes:
        name: How the lane is called in events and reports ("gpu0", "cpu0").
        loaded: ``(member, variant)`` whose step runs on the lane now (its setup
            is paid there), or None when the lane is idle.
        retired: Members that failed on this lane (a crash, or out of memory
            at one row): never planned on it again.
    """

    name: str
    loaded: tuple[str, str] | None = None
    retired: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Plan:
    """The planner's answer.

    Attributes:
        steps: Steps to run, in order, one after another.
        dropped: ``(member, reason)`` for each plannable member left out.
        projected_finish: When the last step ends (``now`` if there is none).
        slack_s: ``limit - projected_finish``; negative only for an empty plan
            made after the limit.
        value: Value the steps deliver: sum of ``value * value_factor * rows /
            rows_total`` (rows done before ``now`` are not counted).
    """

    steps: tuple[Step, ...]
    dropped: tuple[tuple[str, str], ...]
    projected_finish: float
    slack_s: float
    value: float

    @property
    def limit(self) -> float:
        """The limit the plan was made for."""
        return self.projected_finish + self.slack_s

    def lane_steps(self, lane: int) -> tuple[Step, ...]:
        """The steps of one lane, in order."""
        return tuple(s for s in self.steps if s.lane == lane)


def expected_seconds(member: MemberState, variant: Variant, rows: int | None = None) -> float:
    """Seconds to run ``rows`` (default: all remaining) on ``variant``, setup included
    unless ``variant`` is the running member's loaded one."""
    rows = member.rows_left if rows is None else rows
    loaded = member.loaded
    setup = 0.0 if loaded is not None and loaded.name == variant.name else variant.setup_s
    return setup + rows * variant.s_per_row


def _value(member: MemberState, variant: Variant, rows: int) -> float:
    if member.rows_total == 0:
        return 0.0
    return member.value * variant.value_factor * rows / member.rows_total


def _ratio(value: float, seconds: float) -> float:
    if seconds > 0:
        return value / seconds
    return math.inf if value > 0 else 0.0


def value_per_second(member: MemberState, variant: Variant | None = None) -> float:
    """Value of the member's remaining rows per second of :func:`expected_seconds`.

    ``variant`` defaults to the running member's loaded one, else the best rung.
    Free work worth something is ``inf``.
    """
    variant = variant or member.loaded or member.variants[0]
    return _ratio(_value(member, variant, member.rows_left), expected_seconds(member, variant))


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
    if pin and _pinned(member, left):
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
        reason = f"would need {need:.0f} s, {left:.0f} s left"
    elif partial_of is not None:
        reason = f"no time left after the partial run of {partial_of!r} up to the limit"
    else:
        fits = [o for o in _options(member, left) if o.variant is not None]
        best = max(fits, key=lambda o: _ratio(o.value, o.cost))
        reason = (
            f"value per second lowest; dropped to fit: {_ratio(best.value, best.cost):.3g} value/s "
            f"on {best.variant.name!r} would need {best.cost:.0f} s, {free:.0f} s free"
        )
    return f"stopped: {reason}" if member.status == "running" else reason


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
    running = [m for m in active if m.status == "running"]
    if len(running) > 1:
        raise ValueError(f"members run one at a time, but several are running: {[m.name for m in running]}")
    limit, left = budget.limit, budget.limit - now
    if now > budget.deadline or left <= 0:
        reason = "deadline passed" if now > budget.deadline else (
            f"no time left: the limit (deadline - margin - reserve) was reached {-left:.0f} s ago"
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
        key=lambda i: (active[i].status != "running", -_ratio(chosen[i].value, chosen[i].cost)),
    )
    steps, t = [], now
    for i in order:
        o = chosen[i]
        finish = limit if partial_of is not None else min(t + o.cost, limit)
        steps.append(Step(active[i].name, o.variant.name, o.rows, o.cost, t, finish, o.setup, partial_of is not None))
        t = finish
    if fill and partial_of is None and limit - t > _EPS:
        fills = [(p, i) for i, o in enumerate(chosen) if o.variant is None
                 for p in [_best_partial(active[i], limit - t)] if p is not None]
        if fills:
            part, i = max(fills, key=lambda f: (f[0].value, -f[1]))
            chosen[i], value = part, value + part.value
            steps.append(Step(active[i].name, part.variant.name, part.rows, limit - t, t, limit, part.setup, True))
            t = limit
    free = limit - t
    dropped = tuple(
        (m.name, _drop_reason(m, left, free, partial_of)) for m, o in zip(active, chosen) if o.variant is None
    )
    return Plan(tuple(steps), dropped, t, free, value)


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
    ending first, paying its setup there, so that both end together.
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
        rows = int(max(0.0, t[hi] - t[lo] - setup) / (2 * v.s_per_row)) // q * q
        rows = min(rows, (last.rows - 1) // q * q)  # the lane ending last keeps at least one row
        if rows < 1:
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
       until both end together or the part moved would be under one chunk
       (``quantum[member]`` rows; row-split).
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
    if not lanes:
        raise ValueError("plan_lanes needs at least one lane")
    _check_args(now, method, members)
    by_name = {m.name: m for m in members}
    for lane in lanes:
        if lane.loaded is not None:
            m = by_name.get(lane.loaded[0])
            if m is None or m.status != "running" or m.variant != lane.loaded[1]:
                raise ValueError(f"lane {lane.name!r} runs {lane.loaded[0]}/{lane.loaded[1]}, "
                                 "which is not a running member on that variant")
    active = [m for m in members if m.status in _PLANNABLE and m.rows_left > 0]
    eligible = [[k for k, lane in enumerate(lanes) if m.name not in lane.retired] for m in active]
    nowhere = tuple((m.name, "failed on every lane") for m, e in zip(active, eligible) if not e)
    active = [m for m, e in zip(active, eligible) if e]
    eligible = [e for e in eligible if e]
    if len(lanes) == 1:
        p = plan(active, now, budget, method=method, fill=fill)
        return replace(p, dropped=(*nowhere, *p.dropped))
    limit, left = budget.limit, budget.limit - now
    if now > budget.deadline or left <= 0:
        reason = "deadline passed" if now > budget.deadline else (
            f"no time left: the limit (deadline - margin - reserve) was reached {-left:.0f} s ago"
        )
        return Plan((), (*nowhere, *((m.name, reason) for m in active)), now, left, 0.0)
    quantum = dict(quantum or {})
    opt_lists = [_options(m, len(e) * left) for m, e in zip(active, eligible)]
    if sum(min(o.cost for o in opts) for opts in opt_lists) > len(lanes) * left + _EPS:
        # Running members that each could finish cannot all: none is pinned, any may be stopped.
        opt_lists = [_options(m, len(e) * left, pin=False) for m, e in zip(active, eligible)]
    exact = method == "exact" or (method == "auto" and _split(opt_lists)[1] <= _EXACT_MAX_COMBOS)
    capacity, partial = len(lanes) * left, set()  # partial: members whose last part is time-boxed
    # Each overrunning layout cuts the capacity searched, never below what the cheapest choice
    # costs (a pinned running member's rest, else nothing): then the last layout is clipped.
    floor = sum(min(o.cost for o in opts) for opts in opt_lists)
    for _ in range(8):
        choice = _search_exact(opt_lists, capacity) if exact else _search_greedy(opt_lists, capacity)
        chosen = [opts[j] for opts, j in zip(opt_lists, choice)]
        parts = _layout(active, chosen, lanes, eligible, now, quantum)
        over = max(now + sum(p.cost for p in lane) for lane in parts) - limit
        if over <= _EPS:
            break
        if capacity <= floor + _EPS:
            partial = _clip(parts, now, limit)
            break
        capacity = max(floor, capacity - max(over, _EPS * max(1.0, capacity)))
    else:
        partial = _clip(parts, now, limit)
    ends = [now + sum(p.cost for p in lane) for lane in parts]
    if fill:
        full = {p.member for lane in parts for p in lane}
        given: dict[int, int] = {}  # rows of each left-out member given to partial steps so far
        for k in sorted(range(len(lanes)), key=lambda k: (ends[k], k)):
            fills = [(p, i) for i, m in enumerate(active) if i not in full and k in eligible[i]
                     and m.rows_left - given.get(i, 0) > 1
                     for p in [_best_partial(replace(m, rows_done=m.rows_done + given.get(i, 0)), limit - ends[k])]
                     if p is not None]
            if fills:
                best, i = max(fills, key=lambda f: (f[0].value, -f[1]))
                parts[k].append(_Part(i, best.variant, best.rows, best.setup))
                given[i] = given.get(i, 0) + best.rows
                partial.add(i)
                ends[k] = limit
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
    free = sum(limit - max([now, *(s.finish for s in steps if s.lane == k)]) for k in range(len(lanes)))
    dropped = list(nowhere)
    for m, e in zip(active, eligible):
        if m.name in placed:
            continue
        need = min(expected_seconds(m, v) for v in _ladder(m))
        cap = len(e) * left
        why = (f"would need {need:.0f} s, {cap:.0f} s left on {len(e)} lane(s)" if need > cap + _EPS else
               f"value per second lowest; dropped to fit: {need:.0f} s needed, {free:.0f} s free on the lanes")
        dropped.append((m.name, f"stopped: {why}" if m.status == "running" else why))
    return Plan(tuple(steps), tuple(dropped), end, limit - end, value)


def should_replan(
    plan: Plan,
    step: Step,
    now: float,
    rows_done: int,
    tolerance: float = 0.1,
    *,
    s_per_row: float | None = None,
) -> bool:
    """Whether the running step drifted past what the plan allowed.

    The step's finish is projected from its throughput since its planned setup
    end (or from ``s_per_row``). It may overrun by ``tolerance *
    step.expected_s`` but never by more than the plan's slack, past which the
    last step would end after the limit. A partial step is time-boxed (stop
    it at ``finish``), so it never asks for a replan.

    Args:
        plan: The plan being executed.
        step: Its step now running.
        now: Current time.
        rows_done: Rows of *this step* finished so far (not the member's total).
        tolerance: Allowed overrun as a fraction of the step's expected seconds.
        s_per_row: Measured seconds per row to project with instead.

    Raises:
        ValueError: ``step`` not in ``plan``, or an argument out of range.
    """
    if step not in plan.steps:
        raise ValueError(f"step {step.member!r}/{step.variant!r} is not part of the plan")
    if not 0 <= rows_done <= step.rows:
        raise ValueError(f"rows_done must be in 0..{step.rows} for step {step.member!r}, got {rows_done}")
    _check_number("tolerance", tolerance)
    if s_per_row is not None:
        _check_number("s_per_row", s_per_row)
    if step.partial:
        return False
    allowed = step.finish + min(tolerance * step.expected_s, max(plan.slack_s, 0.0))
    return projected_finish(step, now, rows_done, s_per_row=s_per_row) > allowed + _EPS


def projected_finish(step: Step, now: float, rows_done: int, *, s_per_row: float | None = None) -> float:
    """When the running ``step`` will end, projected from its throughput since its
    planned setup end (or from ``s_per_row``); ``rows_done`` counts rows of this step."""
    rows_left = step.rows - rows_done
    if s_per_row is not None:
        rate = s_per_row
    elif rows_done:
        rate = max(now - step.start - step.setup_s, 0.0) / rows_done
    else:
        rate = (step.expected_s - step.setup_s) / step.rows if step.rows else 0.0
    # With no row back yet the setup may still be running: rows start after it.
    return (now if rows_done else max(now, step.start + step.setup_s)) + rows_left * rate


def estimate_s_per_row(
    observed_rows: int,
    observed_s: float,
    prior: float | None,
    *,
    prior_rows: float = 64.0,
) -> float:
    """Blend a profiled cost with the live throughput of the first batches.

    The prior counts as ``prior_rows`` pseudo-rows, so the live measurement's
    weight ``observed_rows / (observed_rows + prior_rows)`` grows towards 1::

        (prior * prior_rows + observed_s) / (prior_rows + observed_rows)

    Args:
        observed_rows: Rows measured live (leave warm-up batches out).
        observed_s: Seconds those rows took, inference only.
        prior: Seconds per row from the stored profile, or None.
        prior_rows: How many live rows the prior is worth.

    Raises:
        ValueError: Negative inputs, or neither a prior nor an observation.
    """
    _check_number("observed_rows", observed_rows)
    _check_number("observed_s", observed_s)
    _check_number("prior_rows", prior_rows)
    if prior is None:
        if observed_rows == 0:
            raise ValueError("cannot estimate s_per_row: no prior and no observed rows")
        return observed_s / observed_rows
    _check_number("prior", prior)
    if prior_rows == 0 and observed_rows == 0:
        return prior
    return (prior * prior_rows + observed_s) / (prior_rows + observed_rows)
