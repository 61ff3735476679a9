"""Pacing a serving run: which member runs which rung on what share of each batch, to spend the notebook's time best.

A file run sees its whole test set; a serving run sees one batch at a time, so
it plans against the rows still to come (:class:`Pace`: the rows the
competition says its hidden test has, or the batches it sends times the rows
per batch seen so far). Over those rows it solves the fractional knapsack that
a run knowing every batch in advance would: each member's rungs form a ladder
of upgrades (nothing -> its cheapest useful rung -> a better one), each
upgrade worth its value gained per second spent; the upgrades are funded best
first until the time left (less each call's measured overhead) is spent, the
last one in part. Every member then gets one rung and the share of each
batch's rows it covers (1 for all but the marginal member).

The plan is remade on every call from the time and rows then left, so a call
that ran slow (or fast) is made up for by the next ones; a member's share of a
batch is rounded with a carry, so over many small batches it covers its share
of rows, not a rounded-down one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: A share this close to 1 is the whole batch.
_WHOLE = 1 - 1e-9


@dataclass(frozen=True)
class Rung:
    """One rung a member may run, with what it costs and gives per row."""

    name: str
    s_per_row: float
    value_per_row: float


@dataclass(frozen=True)
class Share:
    """A member's part of every batch: ``rung`` on ``fraction`` of its rows."""

    rung: str
    fraction: float


def allocate(members: dict[str, Sequence[Rung]], s_per_row_budget: float) -> dict[str, Share]:
    """Each member's rung and share of rows, spending at most ``s_per_row_budget`` seconds per row in all.

    A member missing from the answer sits out. Rungs with no cost or value are ignored.
    """
    upgrades = []  # (value per second, member, from rung, to rung)
    for name, rungs in members.items():
        prev = Rung("", 0.0, 0.0)
        for rung in _hull(rungs):
            gain = (rung.value_per_row - prev.value_per_row) / (rung.s_per_row - prev.s_per_row)
            upgrades.append((gain, name, prev, rung))
            prev = rung
    upgrades.sort(key=lambda u: -u[0])
    funded: dict[str, Rung] = {}
    left = s_per_row_budget
    for _, name, prev, rung in upgrades:
        if funded.get(name, Rung("", 0.0, 0.0)).name != prev.name:
            continue  # a member's upgrades come in order on its hull: this one's base was never funded
        cost = rung.s_per_row - prev.s_per_row
        if cost <= left:
            funded[name], left = rung, left - cost
            continue
        # The marginal upgrade, in part: the new rung on fewer rows, if that beats keeping the base on all;
        # else the upgrade is passed over and a cheaper, if less efficient, one may still fit.
        part = Share(rung.name, (prev.s_per_row + left) / rung.s_per_row)
        if left > 0 and part.fraction * rung.value_per_row > prev.value_per_row:
            return _shares(funded) | {name: part}
    return _shares(funded)


def _shares(funded: dict[str, Rung]) -> dict[str, Share]:
    return {name: Share(r.name, 1.0) for name, r in funded.items()}


def _hull(rungs: Sequence[Rung]) -> list[Rung]:
    """The rungs on the upper concave hull of (cost, value) from the origin, cheapest first: the upgrades
    worth making, each giving less per second than the one before (a rung under the hull never pays)."""
    points = sorted((r for r in rungs if r.s_per_row > 0 and r.value_per_row > 0),
                    key=lambda r: (r.s_per_row, -r.value_per_row))
    hull: list[Rung] = []
    for r in points:
        if hull and r.value_per_row <= hull[-1].value_per_row:
            continue  # dearer and no better
        while hull:
            a = hull[-2] if len(hull) > 1 else Rung("", 0.0, 0.0)
            b = hull[-1]
            # b is under the line from a to r: the step a -> r gives at least as much per second
            if (b.value_per_row - a.value_per_row) * (r.s_per_row - a.s_per_row) <= \
                    (r.value_per_row - a.value_per_row) * (b.s_per_row - a.s_per_row):
                hull.pop()
            else:
                break
        hull.append(r)
    return hull


class Pace:
    """The rows still to come, as the calls so far tell; and each member's rows of a batch, rounded with a carry.

    Args:
        expected_rows: Rows the hidden test has (None: unknown).
        expected_batches: Batches the gateway sends (None: unknown).
    """

    def __init__(self, expected_rows: int | None, expected_batches: int | None):
        self.expected_rows, self.expected_batches = expected_rows, expected_batches
        self.rows_seen = 0
        self.calls_seen = 0
        self._carry: dict[str, float] = {}

    @property
    def known(self) -> bool:
        """Whether the rows to come can be told at all (else a call is planned on its own)."""
        return self.expected_rows is not None or (self.expected_batches is not None and self.calls_seen > 0)

    def rows_left(self, rows: int) -> float:
        """Rows still to come, this call's ``rows`` included."""
        if self.expected_rows is not None:
            return float(max(self.expected_rows - self.rows_seen, rows))
        batches_after = max(0, (self.expected_batches or 0) - self.calls_seen - 1)
        return rows + batches_after * self.rows_seen / max(self.calls_seen, 1)

    def seen(self, rows: int) -> None:
        """A call of ``rows`` rows was answered."""
        self.rows_seen += rows
        self.calls_seen += 1

    def rows_of(self, member: str, share: Share, rows: int) -> int:
        """How many of a batch's ``rows`` the member runs: its share, the fraction carried to the next batch."""
        if share.fraction >= _WHOLE:
            return rows
        want = share.fraction * rows + self._carry.get(member, 0.0)
        n = min(rows, int(want))
        self._carry[member] = want - n
        return n


__all__ = ["Pace", "Rung", "Share", "allocate"]
