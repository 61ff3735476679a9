"""What a serving estimate found: :class:`ServeEstimate` (startup, first call, each batch size, the whole), its
verdict by the file-run estimate's rule, its reason and its JSON (see :mod:`packager.estimate.serve`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packager.estimate.estimator import verdict
from packager.estimate.price.items import Check, Item
from packager.estimate.price.roofline import Estimate, lowest_confidence
from packager.estimate.serve.batches import Batches
from runtime.progress import format_seconds

#: The largest batch looked for when telling the rows a member's rung fits in a call.
MAX_ROWS = 10_000_000
_ORDER = ("fits", "tight", "does not fit")


@dataclass(frozen=True)
class BatchFit:
    """One batch size: a call's own cost and what its response deadline admits, on the high edges.

    Attributes:
        rows: Rows of the batch; ``count`` batches of them.
        overhead: The call's own cost outside the members.
        room_s: Time left to the members: the deadline less the margin less the overhead's high edge.
        runs: ``(member, rung, cost)`` the call's plan runs (a cheaper rung's cost includes its load).
        left_out: ``(member, why)`` for each member the deadline leaves out.
    """

    rows: int
    count: int
    overhead: Estimate
    room_s: float
    runs: tuple[tuple[str, str, Estimate], ...]
    left_out: tuple[tuple[str, str], ...]

    @property
    def high_s(self) -> float:
        return self.overhead.high + sum(e.high for _, _, e in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "batches": self.count, "overhead_s": self.overhead.seconds,
                "members_room_s": self.room_s, "high_s": self.high_s,
                "runs": [{"member": m, "variant": v, "seconds": e.seconds, "high": e.high} for m, v, e in self.runs],
                "left_out": [{"member": m, "reason": r} for m, r in self.left_out]}


@dataclass(frozen=True)
class ServeEstimate:
    """The estimate of a serving run: startup, first call, every batch size, the whole (see the module docstring).

    ``items`` are the startup's, the first call's and the later calls' (each member's work at the rung
    its batches run, the calls' own cost); ``shares`` is ``(member, rung, share of each batch's rows)`` of
    the paced plan, when one was made (None: none); ``answered`` the batches that get their members where
    the run cannot pace and the time runs out (None: every batch).
    """

    bundle: str
    target: str
    target_name: str
    batches: Batches
    time_limit_s: float
    margin_s: float
    startup_limit_s: float
    response_timeout_s: float
    call_margin_s: float
    startup: tuple[Item, ...]
    first_call: tuple[Item, ...]
    later: tuple[Item, ...]
    fits: tuple[BatchFit, ...]
    largest: tuple[tuple[str, str, int], ...]  # (member, rung, the most rows a call of it alone fits)
    checks: tuple[Check, ...] = ()
    paced: bool = False
    shares: tuple[tuple[str, str, float], ...] | None = None
    value: float = 0.0
    full_value: float = 0.0
    answered: int | None = None
    profile: str = ""
    calibrated: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return self.batches.rows

    @property
    def items(self) -> tuple[Item, ...]:
        return (*self.startup, *self.first_call, *self.later)

    def _sum(self, items: tuple[Item, ...], edge: str) -> float:
        return sum(getattr(i.estimate, edge) for i in items)

    @property
    def expected_s(self) -> float:
        return self._sum(self.items, "seconds")

    @property
    def low_s(self) -> float:
        return self._sum(self.items, "low")

    @property
    def high_s(self) -> float:
        return self._sum(self.items, "high")

    @property
    def available_s(self) -> float:
        return self.time_limit_s - self.margin_s

    def startup_s(self, edge: str = "seconds") -> float:
        """From the notebook's start to the server taking calls, at ``edge``."""
        return self._sum(self.startup, edge)

    def first_call_s(self, edge: str = "seconds") -> float:
        return self._sum(self.first_call, edge)

    @property
    def blocking(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.blocking)

    @property
    def verdict(self) -> str:
        """``does not fit`` on a blocking check; else the worse of the startup's and the whole's verdicts."""
        if self.blocking:
            return "does not fit"
        start = verdict(self.startup_s(), self.startup_s("high"), self.startup_limit_s)
        whole = verdict(self.expected_s, self.high_s, self.available_s)
        return max(start, whole, key=_ORDER.index)

    @property
    def left_out(self) -> dict[str, list[BatchFit]]:
        """Member -> the batch sizes its deadline leaves it out of."""
        out: dict[str, list[BatchFit]] = {}
        for fit in self.fits:
            for member, _ in fit.left_out:
                out.setdefault(member, []).append(fit)
        return out

    @property
    def reason(self) -> str:
        """Why the verdict is what it is, and what the run delivers, in one line."""
        if self.blocking:
            return "; ".join(f"[{c.code}] {c.message}" for c in self.blocking)
        parts = []
        if verdict(self.startup_s(), self.startup_s("high"), self.startup_limit_s) == "tight":
            parts.append(f"the server takes calls {_s(self.startup_s())} after the notebook starts (expected), within "
                         f"the startup limit of {_s(self.startup_limit_s)}, but not at the high edge "
                         f"({_s(self.startup_s('high'))})")
        whole = verdict(self.expected_s, self.high_s, self.available_s)
        if whole == "fits":
            parts.append("every batch is answered within its response deadline and the whole fits at the high edge")
        elif whole == "tight":
            parts.append(f"the whole fits at the expected time ({_s(self.expected_s)} of {_s(self.available_s)}), not "
                         f"at the high edge ({_s(self.high_s)})")
        else:
            parts.append(f"the whole at full needs {_s(self.expected_s)} (expected), {_s(self.available_s)} available")
        if self.answered is not None:
            parts.append(f"[serve] declares neither expected_rows nor expected_batches, so the run cannot pace: about "
                         f"{self.answered:,} of {self.batches.count:,} batches get their members before the notebook's "
                         "time runs out, the rest the fallback values")
        elif self.shares is not None and whole != "fits":
            parts.append(f"the run paces its members over the rows to come and delivers {self.delivered:.0%} of the "
                         f"ensemble's value ({self.shares_line()})")
        parts.extend(self.left_out_lines())
        return "; ".join(parts)

    @property
    def delivered(self) -> float:
        """The paced plan's value as a share of the ensemble's."""
        return self.value / self.full_value if self.full_value else 0.0

    def shares_line(self) -> str:
        """``cnn fp16 on 36% of the rows, mlp fp32 on every row; sitting out: big`` (the paced plan)."""
        if self.shares is None:
            return ""
        runs = [f"{m} {v} on {'every row' if f >= 1 - 1e-9 else f'{f:.0%} of the rows'}" for m, v, f in self.shares]
        idle = [m for m in self._members if m not in {s[0] for s in self.shares}]
        return (", ".join(runs) or "no member") + (f"; sitting out: {', '.join(idle)}" if idle else "")

    @property
    def _members(self) -> list[str]:
        return list(dict.fromkeys(i.member for i in self.first_call if i.member))

    def left_out_lines(self) -> list[str]:
        """Each member a response deadline leaves out of some batches, with why."""
        out = []
        for member, fits in self.left_out.items():
            count = sum(f.count for f in fits)
            which = ("every batch" if count == self.batches.count else
                     f"{count:,} of {self.batches.count:,} batches (those of {_rows(fits)})")
            why = dict(fits[-1].left_out)[member]
            most = ", ".join(f"{n:,} rows on {v}" if n < MAX_ROWS else f"{n:,}+ rows on {v}"
                             for m, v, n in self.largest if m == member and n)
            out.append(f"{member} is left out of {which}: {why}"
                       + (f"; alone in a call it fits at most {most}" if most else "; it fits no batch, even of one row"))
        return out

    @property
    def confidence(self) -> str:
        big = [i for i in self.items if i.estimate.seconds >= 0.05 * self.expected_s] or list(self.items)
        return lowest_confidence(*(i.estimate.confidence for i in big))

    def to_dict(self) -> dict[str, Any]:
        """The file-run estimate's JSON (:meth:`BudgetEstimate.to_dict`'s keys), with ``serve``: the serving parts."""
        stages: dict[str, dict[str, float]] = {}
        for i in self.items:
            s = stages.setdefault(i.stage, {"seconds": 0.0, "low": 0.0, "high": 0.0})
            for k, edge in (("seconds", "seconds"), ("low", "low"), ("high", "high")):
                s[k] += getattr(i.estimate, edge)
        return {
            "shape": "serve", "bundle": self.bundle, "target": self.target, "target_name": self.target_name,
            "rows": self.rows, "time_limit_s": self.time_limit_s, "margin_s": self.margin_s,
            "available_s": self.available_s, "expected_s": self.expected_s, "low_s": self.low_s,
            "high_s": self.high_s, "margin_left_s": self.available_s - self.expected_s, "verdict": self.verdict,
            "reason": self.reason, "confidence": self.confidence, "stages": stages,
            "items": [i.to_dict() for i in self.items], "checks": [c.to_dict() for c in self.checks],
            "plan": None, "profile": self.profile, "calibrated": list(self.calibrated),
            "caveats": list(self.caveats), "lanes": 1,
            "serve": {
                "batches": self.batches.to_dict(),
                "startup": {"seconds": self.startup_s(), "low": self.startup_s("low"),
                            "high": self.startup_s("high"), "limit_s": self.startup_limit_s,
                            "items": [i.to_dict() for i in self.startup]},
                "first_call": {"seconds": self.first_call_s(), "low": self.first_call_s("low"),
                               "high": self.first_call_s("high"), "rows": self.batches.typical,
                               "items": [i.to_dict() for i in self.first_call]},
                "response_timeout_s": self.response_timeout_s, "call_margin_s": self.call_margin_s,
                "per_batch": [f.to_dict() for f in self.fits],
                "largest_batch": [{"member": m, "variant": v, "rows": n} for m, v, n in self.largest],
                "left_out": {m: sum(f.count for f in fits) for m, fits in self.left_out.items()},
                "paced": self.paced,
                "shares": None if self.shares is None else [{"member": m, "variant": v, "fraction": f}
                                                            for m, v, f in self.shares],
                "value": self.value, "full_value": self.full_value, "delivered": self.delivered,
                "answered_batches": self.answered,
            },
        }


def _s(seconds: float) -> str:
    """Seconds as the run log writes them (``4m05s``)."""
    return format_seconds(seconds)


def _rows(fits: list[BatchFit]) -> str:
    sizes = sorted(f.rows for f in fits)
    return f"{sizes[0]:,} rows" if len(sizes) == 1 else f"{sizes[0]:,}-{sizes[-1]:,} rows"


__all__ = ["MAX_ROWS", "BatchFit", "ServeEstimate"]
