"""The words a run uses for its members: one vocabulary for the planner, the executor and the report.

A member is *pending* (not started), *running* (a step has its runner
loaded), *done* (every row), *stopped* (it ran part of its rows, and its next
chunk does not fit), *dropped* (left out before it ran a row) or *failed*. The
report says more once the run is over: *degraded* (done, partly on a cheaper
rung) and *partial* (stopped part-way). Each decision the run records about a
member is a :class:`Decision`.

Both are ``str`` enums: they compare equal to, format as and serialise as
their plain values, so reports and logs read as before.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    """A ``str`` enum that formats as its value on every Python (what 3.11's ``StrEnum`` does)."""

    __str__ = str.__str__

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)


class Status(_Word):
    """Where a member stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    DROPPED = "dropped"
    FAILED = "failed"
    DEGRADED = "degraded"  # report only: done, some rows on a cheaper rung
    PARTIAL = "partial"  # report only: stopped after some rows

    @property
    def over(self) -> bool:
        """Nothing more will run for it (done or failed)."""
        return self in (Status.DONE, Status.FAILED)


#: What the planner plans: a member not started, running, or left out earlier and back if time allows.
PLANNABLE = (Status.PENDING, Status.RUNNING, Status.DROPPED)


class Decision(_Word):
    """A decision about a member, recorded in its report with the costs it was made on."""

    PROBE = "probe"
    NO_PROBE = "no probe"
    RUN = "run"
    RUN_PARTIAL = "run partial"
    DROP = "drop"
    STOP = "stop"
    PRUNE = "prune"


__all__ = ["PLANNABLE", "Decision", "Status"]
