"""Translate a time measured here into the time a Kaggle target will take.

The roofline time of one call on a machine is
``max(flops / peak_flops, bytes / bandwidth)``. The measurement made here
gives the efficiency actually reached, ``t_roof_local / t_work_local``, and the
target time is ``t_roof_target / efficiency_target + overhead_target``.

Assumptions (each one a source of the band around the estimate):

* Same device (the target *is* this machine, or the same GPU model): the
  efficiency carries over exactly; band +-10 %.
* Same kind (GPU to GPU, CPU to CPU): the efficiency carries over, capped at 1;
  band x0.67..x1.5.
* Other kind (CPU to GPU or back): how well kernels use the other kind of
  device is unknown, so the efficiency is clamped into ``_CROSS_EFFICIENCY``
  (0.05..0.6: small models rarely reach more than 5 % of a GPU's peak, large
  convolutions and matmuls rarely more than 60 %); band x0.5..x2, low confidence.
* A GPU call also pays ``_LAUNCH_S`` per kernel (CUDA launch plus ONNX Runtime
  dispatch, typically 3-10 us) and the copy of inputs and outputs over its
  host link. A local GPU measurement has that overhead taken out first.
* Multi-GPU targets (t4x2, l4x4) run data-parallel, one session per device fed
  by the same few host cores: each extra device adds ``_DP_EFFICIENCY`` (85 %)
  of one device's throughput.
* fp16/bf16 on a graph stored in fp32 halves its traffic (the runtime converts).

:class:`Calibration` then corrects a target's estimates with the ratio of
actual to estimated times of real runs (e.g. Kaggle's logs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from packager.estimate.price.flops import GraphCost
from packager.estimate.price.hardware import Hardware, check_precision

_LAUNCH_S = 5e-6
_CROSS_EFFICIENCY = (0.05, 0.6)
_DP_EFFICIENCY = 0.85
_MIN_WORK_SHARE = 0.1  # never attribute more than 90 % of a measurement to overhead
_BANDS = {"same": (0.9, 1.1), "kind": (1 / 1.5, 1.5), "cross": (0.5, 2.0)}
_MIN_LOG_BAND = math.log(1.05)
#: Confidence levels, lowest first.
CONFIDENCES = ("low", "medium", "high")


@dataclass(frozen=True)
class Estimate:
    """Expected time of one call on a target, with a band.

    Attributes:
        seconds: Best estimate.
        low: Lower edge of the band.
        high: Upper edge of the band.
        confidence: ``"high"``, ``"medium"`` or ``"low"``.
        target: Key of the target hardware.
        precision: Precision the target runs at.
        bound: What limits the target: ``"compute"``, ``"memory"`` or ``"overhead"``.
        efficiency: Fraction of the target's roofline assumed reached.
        notes: Why the band or confidence is what it is.
    """

    seconds: float
    low: float
    high: float
    confidence: str
    target: str
    precision: str
    bound: str
    efficiency: float
    notes: tuple[str, ...] = ()

    def scaled(self, factor: float) -> Estimate:
        """The same estimate for ``factor`` times the work (e.g. the number of calls)."""
        return replace(self, seconds=self.seconds * factor, low=self.low * factor,
                       high=self.high * factor)


def _traffic(cost: GraphCost, precision: str) -> float:
    if precision in ("fp16", "bf16") and cost.dtype in ("float32", "float64"):
        return cost.bytes * (0.5 if cost.dtype == "float32" else 0.25)
    return cost.bytes


def _roof(cost: GraphCost, hw: Hardware, precision: str) -> tuple[float, str]:
    compute = cost.flops / hw.peak_flops(precision)
    memory = _traffic(cost, precision) / hw.bandwidth
    return (compute, "compute") if compute >= memory else (memory, "memory")


def _overhead(cost: GraphCost, hw: Hardware) -> float:
    if hw.kind != "gpu":
        return 0.0
    return cost.kernels * _LAUNCH_S + (cost.input_bytes + cost.output_bytes) / hw.host_link


def lowest_confidence(confidence: str, *others: str) -> str:
    """The lowest of the given :data:`CONFIDENCES`."""
    return CONFIDENCES[min(CONFIDENCES.index(c) for c in (confidence, *others))]


def translate(
    measured_s: float,
    cost: GraphCost,
    local: Hardware,
    target: Hardware,
    precision: str = "fp32",
    *,
    local_precision: str = "fp32",
    data_parallel: bool = True,
) -> Estimate:
    """Expected time of one call on ``target`` from one measured on ``local``.

    Args:
        measured_s: Seconds one call took here (steady state, after warm-up).
        cost: The graph's cost at the batch size that was measured.
        local: The machine (and device) the measurement comes from.
        target: The machine to estimate for.
        precision: Precision the target will run at (fp32, fp16, bf16).
        local_precision: Precision the measurement ran at.
        data_parallel: Spread calls over all of a multi-GPU target's devices.

    Returns:
        The :class:`Estimate` for one call at the same batch size.

    Raises:
        SpecError: A precision is not fp32, fp16 or bf16.
    """
    if not measured_s > 0 or math.isinf(measured_s):
        raise ValueError(f"measured_s must be a positive number of seconds, got {measured_s}")
    check_precision(precision)
    check_precision(local_precision)
    notes: list[str] = []
    relation, seconds, efficiency, bound = _one_call(measured_s, cost, local, target, precision, local_precision, notes)
    if target.devices > 1 and data_parallel:
        speedup = 1 + (target.devices - 1) * _DP_EFFICIENCY
        seconds = seconds / speedup
        notes.append(f"data-parallel over {target.devices} devices: x{speedup:.2f} throughput")
    confidence = _confidence(relation, cost, local, target, precision, notes)
    low, high = _BANDS[relation]
    return Estimate(
        seconds=seconds, low=seconds * low, high=seconds * high, confidence=confidence,
        target=target.key, precision=precision, bound=bound, efficiency=efficiency,
        notes=tuple(notes),
    )


def _one_call(measured_s: float, cost: GraphCost, local: Hardware, target: Hardware, precision: str,
              local_precision: str, notes: list[str]) -> tuple[str, float, float, str]:
    """(how the two devices relate, seconds of one call on one target device, efficiency, what bounds it).

    The same device scales the measured work by the two roofs; another device of the same kind
    keeps the measured efficiency (at most 1); another kind clamps it to ``_CROSS_EFFICIENCY``.
    """
    roof_local, _ = _roof(cost, local, local_precision)
    roof_target, bound = _roof(cost, target, precision)
    overhead_local = min(_overhead(cost, local), (1 - _MIN_WORK_SHARE) * measured_s)
    work_local = measured_s - overhead_local
    efficiency = roof_local / work_local
    overhead_target = _overhead(cost, target)
    same_device = target.key == "local" or (
        target.kind == local.kind and target.device_name == local.device_name
    )
    if roof_local <= 0:
        relation, single = "cross", measured_s
        notes.append("graph has no counted flops or bytes: the measurement is used as is")
    elif same_device:
        relation = "same"
        single = work_local * roof_target / roof_local + overhead_local
    else:
        if target.kind == local.kind:
            relation, efficiency = "kind", min(efficiency, 1.0)
        else:
            relation = "cross"
            lo, hi = _CROSS_EFFICIENCY
            clamped = min(max(efficiency, lo), hi)
            notes.append(f"{local.kind} efficiency {efficiency:.3f} assumed as {clamped:.3f} "
                         f"on {target.kind}")
            efficiency = clamped
        single = roof_target / efficiency + overhead_target
    if efficiency > 1 and relation != "same":
        notes.append("measured faster than the local roofline: local peaks underestimated")
    if relation != "same" and overhead_target > roof_target / max(efficiency, 1e-12):
        bound = "overhead"
    return relation, single, efficiency, bound


def _confidence(relation: str, cost: GraphCost, local: Hardware, target: Hardware, precision: str,
                notes: list[str]) -> str:
    """High on the same device, medium within a kind, low across kinds; lowered by the catalog's own
    confidence, bf16 without tensor cores, and ops or shapes the count could not price."""
    confidence = {"same": "high", "kind": "medium", "cross": "low"}[relation]
    if relation != "same":
        confidence = lowest_confidence(confidence, target.confidence, local.confidence)
    if precision == "bf16" and not target.bf16:
        confidence = lowest_confidence(confidence, "low")
        notes.append(f"{target.name} has no bf16 tensor cores: priced as fp32; use fp16")
    if cost.unknown_ops or cost.unresolved:
        confidence = lowest_confidence(confidence, "medium" if relation == "same" else "low")
        notes.append(f"{len(cost.unknown_ops)} unknown op types and {len(cost.unresolved)} "
                     "unresolved shapes priced at 0 flops")
    return confidence


def _number(data: dict[str, object], key: str, default: float) -> float:
    """``data[key]`` as a float (a stored calibration's count or sum); TypeError naming the key if it is not a number."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"calibration field {key!r} = {value!r}; expected a number")
    return float(value)


@dataclass(frozen=True)
class Calibration:
    """Correction of one target's estimates (for one member, or all when None).

    Holds the log ratios of actual to estimated seconds; the factor is their
    geometric mean. Frozen: :meth:`update` returns a new calibration.
    """

    target: str
    member: str | None = None
    count: int = 0
    log_sum: float = 0.0
    log_sq_sum: float = 0.0

    @property
    def factor(self) -> float:
        """Multiplier for estimates: geometric mean of actual / estimated (1 when empty)."""
        return math.exp(self.log_sum / self.count) if self.count else 1.0

    @property
    def spread(self) -> float:
        """Standard deviation of the log ratios (0 below two observations)."""
        if self.count < 2:
            return 0.0
        mean = self.log_sum / self.count
        return math.sqrt(max(self.log_sq_sum / self.count - mean * mean, 0.0))

    def update(self, estimated_s: float, actual_s: float) -> Calibration:
        """Add one run whose estimate was ``estimated_s`` and which took ``actual_s``."""
        for name, value in (("estimated_s", estimated_s), ("actual_s", actual_s)):
            if not value > 0 or math.isinf(value):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        ratio = math.log(actual_s / estimated_s)
        return replace(self, count=self.count + 1, log_sum=self.log_sum + ratio,
                       log_sq_sum=self.log_sq_sum + ratio * ratio)

    def apply(self, estimate: Estimate) -> Estimate:
        """Correct ``estimate`` and narrow its band as observations accumulate.

        Each edge's log distance shrinks as ``1/sqrt(1 + count)``, but never below
        twice the observed spread nor below 5 %.
        """
        if estimate.target != self.target:
            raise ValueError(f"calibration for {self.target!r} applied to {estimate.target!r}")
        if not self.count:
            return estimate
        seconds = estimate.seconds * self.factor
        shrink = 1 / math.sqrt(1 + self.count)
        floor = max(2 * self.spread, _MIN_LOG_BAND)
        down = max(math.log(estimate.seconds / estimate.low) * shrink, floor)
        up = max(math.log(estimate.high / estimate.seconds) * shrink, floor)
        confidence = "medium" if estimate.confidence == "low" else estimate.confidence
        if self.count >= 3 and self.spread < math.log(1.25):
            confidence = "high"
        note = f"calibrated on {self.count} runs: x{self.factor:.3f}"
        return replace(estimate, seconds=seconds, low=seconds * math.exp(-down),
                       high=seconds * math.exp(up), confidence=confidence,
                       notes=(*estimate.notes, note))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, to store with a profile."""
        return {"target": self.target, "member": self.member, "count": self.count,
                "log_sum": self.log_sum, "log_sq_sum": self.log_sq_sum}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        return cls(target=str(data["target"]),
                   member=None if data.get("member") is None else str(data["member"]),
                   count=int(_number(data, "count", 0)),
                   log_sum=_number(data, "log_sum", 0.0),
                   log_sq_sum=_number(data, "log_sq_sum", 0.0))


__all__ = ["CONFIDENCES", "Calibration", "Estimate", "lowest_confidence", "translate"]
