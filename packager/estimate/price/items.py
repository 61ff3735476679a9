"""The estimate's shared types: the stages of a run, what to estimate for, its lines and its findings.

:data:`STAGES` names every stage of a notebook run in order; :class:`EstimateOptions` says what
to estimate for (target, rows, limit, margin...); an :class:`Item` is one line of the estimate (a
stage of one member or of the whole bundle, priced as a :class:`~packager.estimate.price.roofline.Estimate`
with its band), a :class:`Check` a pre-flight finding. :func:`fixed` and :func:`added` build and add
estimates of host work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any

from packager.estimate.price.hardware import TARGETS
from packager.estimate.price.roofline import Estimate, lowest_confidence
from runtime.errors import SpecError
from runtime.schedule.budget import default_margin

#: The stages of a notebook run, in order.
STAGES = ("install", "python", "imports", "verify", "startup", "load", "read", "features", "inference", "ensembling",
          "writing", "postprocess", "exit")
#: Bands (low, high factors) of: a figure from spec sheets alone; host work moved to another machine; the same machine.
SPEC_BAND = (0.25, 4.0)
HOST_BAND = (1 / 1.5, 1.5)
SAME_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class EstimateOptions:
    """What to estimate for; ``None`` means the default.

    Attributes:
        target: Catalog key (``t4x2``, ``p100``, ``l4``, ``l4x4``, ``a100``, ``h100``,
            ``cpu``, ``local``).
        rows: Rows of the hidden test set.
        time_limit_s: The notebook's run-time limit.
        margin_s: Safety margin; None: the margin ``ninefit run`` keeps
            before it has measured anything (:func:`runtime.schedule.budget.default_margin`:
            0.25 s + 1 % of the limit, never more than 25 % of it), so the verdict
            is judged as the run starts.
        batch_size: Override every member's batch size (as ``ninefit run --batch-size``).
        lanes: Lanes the run uses at once (``ninefit run --lanes``); None: what
            the run's rule gives (see :meth:`Costing.lanes`): one per GPU of a
            GPU target; on this machine (``local``, profiled here) the CPU lanes
            of :func:`runtime.execute.lanes.choose_lanes`; one on another CPU target.
            Each member is priced on one lane; :func:`runtime.schedule.planner.plan_lanes`
            lays the members out over the lanes (side by side, rows split), as
            the run does.
        tensorrt: Engines are built by TensorRT on the target (adds build time).
    """

    target: str = "t4x2"
    rows: int = 0
    time_limit_s: float = 9 * 3600.0
    margin_s: float | None = None
    batch_size: int | None = None
    lanes: int | None = None
    tensorrt: bool = False

    def __post_init__(self) -> None:
        if self.target.strip().lower() not in TARGETS:
            raise SpecError(f"unknown hardware target {self.target!r}; expected one of {', '.join(TARGETS)}")
        if not isinstance(self.rows, int) or self.rows < 1:
            raise SpecError(f"rows = {self.rows!r}: expected the hidden test set's row count, at least 1")
        if not self.time_limit_s > 0 or math.isinf(self.time_limit_s):
            raise SpecError(f"time limit {self.time_limit_s!r} s: expected a positive duration, e.g. 9h")
        if self.margin_s is not None and not 0 <= self.margin_s < self.time_limit_s:
            raise SpecError(f"margin {self.margin_s!r} s: expected at least 0 and less than the "
                            f"time limit ({self.time_limit_s:g} s)")
        if self.batch_size is not None and self.batch_size < 1:
            raise SpecError(f"batch size {self.batch_size}: expected a positive number of rows")
        if self.lanes is not None and (not isinstance(self.lanes, int) or self.lanes < 1):
            raise SpecError(f"lanes = {self.lanes!r}: expected a positive number of lanes")

    @property
    def margin(self) -> float:
        """The margin in seconds."""
        return default_margin(self.time_limit_s) if self.margin_s is None else self.margin_s


@dataclass(frozen=True)
class Item:
    """One line of the estimate: a stage (of one member, or of the whole bundle)."""

    stage: str
    estimate: Estimate
    basis: str  # "measured", "roofline", "spec sheet", "rate constant", "none"
    member: str = ""
    variant: str = ""
    batch_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {"stage": self.stage, "member": self.member, "variant": self.variant,
                "batch_size": self.batch_size, "seconds": e.seconds, "low": e.low, "high": e.high,
                "confidence": e.confidence, "basis": self.basis, "bound": e.bound,
                "notes": list(e.notes)}


@dataclass(frozen=True)
class Check:
    """A pre-flight finding.

    Attributes:
        code: What was checked (``ram``, ``gpu-memory``, ``bf16``, ...).
        level: ``"blocking"`` (the run fails however long the limit: the
            verdict is "does not fit"), ``"warning"`` (act on it) or ``"note"``.
        message: What was found and what to do.
        member: The one member a blocking check rules out (the best plan
            drops it); empty when it blocks the whole run.
    """

    code: str
    level: str
    message: str
    member: str = ""

    @property
    def blocking(self) -> bool:
        return self.level == "blocking"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def fixed(seconds: float, band: tuple[float, float], confidence: str, target: str, bound: str = "host",
          notes: tuple[str, ...] = ()) -> Estimate:
    """An estimate of ``seconds`` with the band ``band`` (factors of it)."""
    return Estimate(seconds=seconds, low=seconds * band[0], high=seconds * band[1], confidence=confidence,
                    target=target, precision="fp32", bound=bound, efficiency=1.0, notes=notes)


def added(a: Estimate, b: Estimate) -> Estimate:
    """``a`` and ``b`` together: their seconds and edges summed, the lower confidence (unless ``b`` is negligible)."""
    weighty = b.seconds > 0.01 * a.seconds  # a negligible addition does not lower the confidence
    return replace(a, seconds=a.seconds + b.seconds, low=a.low + b.low, high=a.high + b.high,
                   confidence=lowest_confidence(a.confidence, b.confidence) if weighty else a.confidence,
                   notes=tuple(dict.fromkeys((*a.notes, *b.notes))))


__all__ = ["HOST_BAND", "SAME_BAND", "SPEC_BAND", "STAGES", "Check", "EstimateOptions", "Item", "added", "fixed"]
