"""The planner's terms: a member's rungs (:class:`Variant`) and progress (:class:`MemberState`), the
:class:`Budget`, the lanes (:class:`Lane`), a :class:`Plan` and its steps (:class:`Step`); what a
member's rows cost (:func:`expected_seconds`) and are worth per second (:func:`value_per_second`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from runtime.status import (
    PLANNABLE as _PLANNABLE,  # noqa: F401 - the planner modules take it from here
    Status,
)

#: Member states the planner takes (:class:`runtime.status.Status`); "pending", "running" and "dropped" are planned.
STATUSES = (Status.PENDING, Status.RUNNING, Status.DONE, Status.FAILED, Status.DROPPED)
_EPS = 1e-9


def _secs(seconds: float) -> str:
    """Seconds in a planner's reason: ``412 s``, and below 10 s two digits (``0.3 s``), never ``0 s`` for 0.3 s."""
    return f"{seconds:.0f} s" if abs(seconds) >= 10 else f"{seconds:.2g} s"


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
    status: Status = Status.PENDING
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
        if self.status != Status.RUNNING or self.variant is None:
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
        stopped: The running members among them, left out because they no longer fit (stopped part-way).
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
    stopped: frozenset[str] = frozenset()  # members of ``dropped`` that were running: stopped part-way

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


