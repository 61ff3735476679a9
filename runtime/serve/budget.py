"""The time each call may take: the notebook's deadline, the response deadline, and the batches still to come.

A call ends by the earliest of:

* its response deadline (none for the first call, which loads the models),
  less a margin: :data:`MARGIN_FLOOR_S` (a quarter of a deadline shorter than
  a second) + :data:`MARGIN_SHARE` of the deadline, raised to
  :data:`OVERHEAD_FACTOR` times the slowest part of a call the members do not
  account for (reading the batch, combining, building the answer), as
  measured, and never more than half the deadline;
* its share of what is left of the notebook's time (its limit less the same
  margin as a file run keeps, :func:`runtime.schedule.budget.default_margin`),
  as the predictor gives it (:mod:`~runtime.serve.pacing` spends the time
  left over the rows to come; a call gets room around its paced share); else
  the end of the notebook's time. The first call's share is the notebook's
  time: it loads and measures every member, once.

Time is banked without bookkeeping: each share is computed from the time
left, so a batch that ends early leaves its time to the later ones, and a
slow stretch draws on what is banked, never on a response deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.schedule.budget import default_margin
from runtime.serve.options import ServeOptions

#: The least time kept before a response deadline (the answer's trip back to the gateway).
MARGIN_FLOOR_S = 0.25
#: And this share of the deadline (the gateway measures the whole round trip).
MARGIN_SHARE = 0.05
#: The margin is at least this many times the slowest overhead a call measured outside the members.
OVERHEAD_FACTOR = 2.0


class CallBudget:
    """Each call's end on the notebook's clock (see the module docstring)."""

    def __init__(self, clock: Callable[[], float], options: ServeOptions):
        self.clock, self.options = clock, options
        self.overhead_s = 0.0  # the slowest part of a call outside the members, measured
        self._overheads = (0, 0.0)  # (calls, seconds) outside the members, the first call's load excepted

    @property
    def margin_s(self) -> float:
        """Kept before each response deadline."""
        o = self.options
        if o.margin_s is not None:
            return o.margin_s
        deadline = o.response_timeout_s or 0.0
        floor = min(MARGIN_FLOOR_S, 0.25 * deadline) + MARGIN_SHARE * deadline
        return min(max(floor, OVERHEAD_FACTOR * self.overhead_s), 0.5 * deadline)

    def notebook_end(self) -> float | None:
        """When the notebook's time ends, less its margin (None: no limit)."""
        limit = self.options.time_limit_s
        return None if limit is None else limit - default_margin(limit)

    def time_left(self, now: float) -> float | None:
        """The notebook's time left at ``now``, less its margin (None: no limit)."""
        end = self.notebook_end()
        return None if end is None else end - now

    @property
    def mean_overhead_s(self) -> float:
        """A call's mean time outside the members so far (reading, combining, answering)."""
        calls, seconds = self._overheads
        return seconds / calls if calls else 0.0

    def call_end(self, start: float, *, first: bool, share_s: float | None = None) -> float | None:
        """When the call that started at ``start`` must have its answer ready (None: no end).

        ``share_s``: the call's share of the notebook's time (None: the rest of it).
        """
        ends = []
        o = self.options
        if o.response_timeout_s is not None and not first:
            ends.append(start + o.response_timeout_s - self.margin_s)
        total = self.notebook_end()
        if total is not None:
            ends.append(total if first or share_s is None else min(total, start + share_s))
        return min(ends) if ends else None

    def measured(self, overhead_s: float, *, first: bool = False) -> None:
        """A call's overhead outside the members: the margin follows the slowest, the pacing the mean."""
        self.overhead_s = max(self.overhead_s, overhead_s)
        if not first:
            calls, seconds = self._overheads
            self._overheads = (calls + 1, seconds + overhead_s)


__all__ = ["MARGIN_FLOOR_S", "MARGIN_SHARE", "OVERHEAD_FACTOR", "CallBudget"]
