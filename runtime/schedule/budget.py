"""The time budget of a run, on the notebook's clock.

The clock starts when the notebook starts, not when ``run`` starts: the
notebook's first cell records ``time.time()`` and passes it as
``start_time``, so installing wheels and loading data count against the
limit. Everything must end by ``limit - margin - reserve``:

- ``margin`` absorbs the noise left once every cost is measured: the last
  chunk running slower than its prediction. By default it is derived from
  what the run measures (:func:`measured_margin`): twice the largest overrun
  of a chunk over its prediction from a measured rate, never less than the
  floor :func:`default_margin` (0.25 s + 1 % of the limit), never more than a
  quarter of the limit. Each chunk is only started when it is predicted to
  end before the limit, and members are re-planned on drift, so the margin
  need not cover a misestimate of the whole run.
- ``reserve`` (default measured: twice the slowest submission write seen,
  :data:`RESERVE_FLOOR_S` at least) is kept for the final write. The first
  write (the whole file, from the sample or the fallback) is timed before
  any model runs, so the reserve is measured from the start.

``--margin`` / ``--reserve`` fix either instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from runtime.errors import BudgetError
from runtime.progress import format_seconds, log
from runtime.schedule.planner import Budget

#: Deadline used when there is no time limit (seconds; about 30 years).
NO_LIMIT = 1e9
#: Least time kept for the final submission write.
RESERVE_FLOOR_S = 0.2
#: The margin's floor: this many seconds plus :data:`MARGIN_FLOOR_SHARE` of the limit.
MARGIN_FLOOR_S = 0.25
MARGIN_FLOOR_SHARE = 0.01
#: The measured margin is this many times the largest chunk overrun seen.
JITTER_FACTOR = 2.0
#: A finished member rewrites the submission only once this many times the slowest write has
#: passed since the last one (so the safety writes take ~1/WRITE_SPACING of the run at most), and
#: only while work is left (else the final write follows at once). The estimator counts writes so too.
WRITE_SPACING = 10.0


class Clock:
    """Seconds since the notebook started, read with ``perf_counter``.

    ``start_time`` (epoch seconds, ``time.time()`` in the notebook's first
    cell) is compared with the wall clock once; from then on the monotonic
    ``perf_counter`` advances the reading. None, or a start in the future
    (clock skew): the clock starts now.
    """

    def __init__(self, start_time: float | None = None, *, wall: Callable[[], float] = time.time,
                 perf: Callable[[], float] = time.perf_counter):
        self._perf = perf
        self._perf0 = perf()
        self.offset = 0.0 if start_time is None else max(0.0, wall() - start_time)

    def __call__(self) -> float:
        return self.offset + self._perf() - self._perf0


def default_margin(time_limit_s: float) -> float:
    """The margin's floor, kept before anything is measured: 0.25 s + 1 % of the limit.

    Never more than a quarter of a (short) limit. The 0.25 s covers what no
    chunk measures: the run report written and the process exiting after the
    final write (about 0.1 s measured for the digits bundle on a 2-core VM,
    from the run's last clock reading to the process's exit). The 1 % covers
    what a long run cannot foresee (a machine slowing for its last minutes).
    Jitter that chunks do show raises the margin (:func:`measured_margin`).
    9 h: 5.4 min; 10 min: 6.3 s; 20 s: 0.45 s. The estimator keeps the same
    margin, so both judge alike.
    """
    return min(MARGIN_FLOOR_S + MARGIN_FLOOR_SHARE * time_limit_s, 0.25 * time_limit_s)


def measured_margin(time_limit_s: float, overrun_s: float) -> float:
    """The margin from measured jitter: :data:`JITTER_FACTOR` times ``overrun_s``
    (the largest time a chunk took beyond its prediction), at least
    :func:`default_margin`, at most a quarter of the limit."""
    floor = default_margin(time_limit_s)
    return max(floor, min(JITTER_FACTOR * max(overrun_s, 0.0), 0.25 * time_limit_s))


def make_budget(time_limit_s: float | None, margin_s: float | None, reserve_s: float | None,
                start_time: float | None, clock: Callable[[], float]) -> Budget:
    """The budget on ``clock``; None means the default (no limit, :func:`default_margin`, measured reserve).

    Raises:
        BudgetError: settings that cannot work (a non-positive limit, a margin
            and reserve as long as the limit); nothing has run yet.
    """
    for what, x in (("time limit", time_limit_s), ("margin", margin_s), ("reserve", reserve_s)):
        if x is not None and (not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0
                              or (what == "time limit" and x == 0)):
            shown = x if isinstance(x, (int, float)) and not isinstance(x, bool) else repr(x)  # np.float64(2.0) as 2.0
            raise BudgetError(f"{what} {shown}: expected a positive number of seconds")
    if start_time is not None:
        if not isinstance(start_time, (int, float)) or not math.isfinite(start_time):
            raise BudgetError(f"start time {start_time!r}: expected epoch seconds (time.time())")
        ahead = start_time - time.time()
        if ahead > 1.0:
            log(f"warning: the start time is {format_seconds(ahead)} in the future (clock skew?); counting from now")
    reserve = RESERVE_FLOOR_S if reserve_s is None else float(reserve_s)
    if time_limit_s is None:
        return Budget(deadline=NO_LIMIT, margin_s=0.0, reserve_s=reserve)
    margin = default_margin(time_limit_s) if margin_s is None else float(margin_s)
    if margin + reserve >= time_limit_s:
        raise BudgetError(
            f"the margin ({format_seconds(margin)}) and reserve ({format_seconds(reserve)}) leave nothing of the "
            f"{format_seconds(time_limit_s)} time limit; "
            "lower --margin or raise --time-limit"
        )
    if clock() >= time_limit_s:
        log(f"warning: {format_seconds(clock())} have passed since the start time, past the "
            f"{format_seconds(time_limit_s)} limit; "
            "no model will run, only the fallback submission is written")
    return Budget(deadline=float(time_limit_s), margin_s=margin, reserve_s=reserve)


__all__ = [
    "JITTER_FACTOR",
    "MARGIN_FLOOR_S",
    "MARGIN_FLOOR_SHARE",
    "NO_LIMIT",
    "RESERVE_FLOOR_S",
    "WRITE_SPACING",
    "Clock",
    "default_margin",
    "make_budget",
    "measured_margin",
]
