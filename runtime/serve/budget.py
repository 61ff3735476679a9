"""The time each call may take: the notebook's deadline, the response deadline, and the batches still to come.

A call ends by the earliest of:

* its response deadline (none for the first call, which loads the models),
  less a margin: :data:`MARGIN_FLOOR_S` + :data:`MARGIN_SHARE` of the deadline,
  raised to :data:`OVERHEAD_FACTOR` times the slowest part of a call the
  members do not account for (reading the batch, combining, building the
  answer), as measured;
* its share of what is left of the notebook's time (its limit less the same
  margin as a file run keeps, :func:`runtime.schedule.budget.default_margin`),
  over the batches still to come when their number is known; else the end of
  the notebook's time.

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

    @property
    def margin_s(self) -> float:
        """Kept before each response deadline."""
        o = self.options
        if o.margin_s is not None:
            return o.margin_s
        deadline = o.response_timeout_s or 0.0
        return max(MARGIN_FLOOR_S + MARGIN_SHARE * deadline, OVERHEAD_FACTOR * self.overhead_s)

    def notebook_end(self) -> float | None:
        """When the notebook's time ends, less its margin (None: no limit)."""
        limit = self.options.time_limit_s
        return None if limit is None else limit - default_margin(limit)

    def call_end(self, start: float, *, first: bool, calls_done: int) -> float | None:
        """When the call that started at ``start`` must have its answer ready (None: no end)."""
        ends = []
        o = self.options
        if o.response_timeout_s is not None and not first:
            ends.append(start + o.response_timeout_s - self.margin_s)
        total = self.notebook_end()
        if total is not None:
            left = o.expected_batches - calls_done if o.expected_batches else 0
            ends.append(start + (total - start) / left if left > 0 else total)
        return min(ends) if ends else None

    def measured(self, overhead_s: float) -> None:
        """A call's overhead outside the members: the margin follows the slowest."""
        self.overhead_s = max(self.overhead_s, overhead_s)


__all__ = ["MARGIN_FLOOR_S", "MARGIN_SHARE", "OVERHEAD_FACTOR", "CallBudget"]
