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

The parts: :mod:`.model` (members, rungs, budget, lanes, plans), :mod:`.search`
(:func:`plan`), :mod:`.layout` (:func:`plan_lanes`), :mod:`.drift` (when to plan again).
"""

from runtime.schedule.planner.drift import estimate_s_per_row, projected_finish, should_replan
from runtime.schedule.planner.layout import plan_lanes
from runtime.schedule.planner.model import (
    STATUSES,
    Budget,
    Lane,
    MemberState,
    Plan,
    Step,
    Variant,
    expected_seconds,
    value_per_second,
)
from runtime.schedule.planner.search import plan

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
