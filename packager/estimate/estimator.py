"""Will a bundle fit a Kaggle target's time limit for the hidden test set?

:func:`estimate_bundle` reads a bundle's measured profile (see
:mod:`.measure.profile`), translates each figure to the target and adds them up per
stage (:mod:`.price.costing` prices each stage and documents how). A blocking
pre-flight check (:mod:`.preflight`) makes the verdict "does not fit"
whatever the times.

Verdict, with ``available = limit - margin``:

* **fits**: the band's high edge ``<= available``;
* **tight**: the expected total ``<= available`` ``<`` the high edge;
* **does not fit**: the expected total ``> available``, or a blocking check.

Lanes: a multi-GPU target runs one lane per GPU (``ninefit run``'s default;
``EstimateOptions.lanes`` to change it); this machine, the CPU lanes the run's
rule gives it, priced from their speedup measured at packaging
(:meth:`~packager.estimate.price.costing.Costing.lanes`). Each member is priced on one lane;
its load, inference and ensembling are laid out over the lanes by the run's own
lane planner (:func:`runtime.schedule.planner.plan_lanes`: members side by side, a
member's rows split across lanes), and the total counts the lanes' span, not
the sum, of the member stages. The stage rows stay the work of each stage.

When it does not fit (or is tight), :func:`runtime.schedule.planner.plan` picks the
members and variants that fit on the high edge, maximising delivered value
(``member.value * value_factor``; see :mod:`.fitplan`); each variant is
offered at the member's batch size and at the profile's fastest measured
batch size (when it fits the target's GPU memory), so a larger batch is
chosen when it saves time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packager.estimate.calibrate import CalibrationStore, gpu_calibration
from packager.estimate.fitplan import Candidate, FitPlan, best_plan, lanes_span
from packager.estimate.preflight import preflight
from packager.estimate.price.bundle import bundle_items
from packager.estimate.price.costing import Costing
from packager.estimate.price.cpurungs import left_out, rung_notes
from packager.estimate.price.gpuprice import gpu_fitted
from packager.estimate.price.items import STAGES, Check, EstimateOptions, Item
from packager.estimate.price.noise import noise_check, widen
from packager.estimate.price.roofline import lowest_confidence
from packager.estimate.price.scaling import hardware_of, same_machine
from runtime.errors import BundleError
from runtime.execute.checkpoint import member_grid
from runtime.manifest import Manifest
from runtime.profile import Profile

VERDICTS = ("fits", "tight", "does not fit")


@dataclass(frozen=True)
class BudgetEstimate:
    """The estimate for one bundle, target, row count and limit."""

    bundle: str
    target: str
    target_name: str
    rows: int
    time_limit_s: float
    margin_s: float
    items: tuple[Item, ...]
    checks: tuple[Check, ...] = ()
    plan: FitPlan | None = None
    profile: str = ""
    calibrated: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()  # assumptions that the runtime does not meet as it is
    lanes: int = 1  # lanes the run uses at once (member stages laid out over them)
    chunk_rows: tuple[tuple[str, int], ...] = ()  # (member, rows per chunk): the run's grid, split in whole chunks

    def _total(self, edge: str) -> float:
        fixed = sum(getattr(i.estimate, edge) for i in self.items if not i.member)
        return fixed + lanes_span(self._member_work(edge), self.rows, self.lanes, dict(self.chunk_rows))[0]

    def _member_work(self, edge: str) -> list[tuple[str, float, float]]:
        """(member, load, inference + ensembling) seconds on one lane, at ``edge``."""
        work: dict[str, list[float]] = {}
        for i in self.items:
            if i.member:
                part = work.setdefault(i.member, [0.0, 0.0])
                part[0 if i.stage == "load" else 1] += getattr(i.estimate, edge)
        return [(m, a, b) for m, (a, b) in work.items()]

    def lane_layout(self, edge: str = "seconds") -> list[tuple[int, str, float, float]]:
        """``(lane, member, start, end)`` of the member stages on the lanes (from the start of loading), at ``edge``."""
        return [(k, m, a, b) for k, m, a, _, b in self.lane_steps(edge)]

    def lane_steps(self, edge: str = "seconds") -> list[tuple[int, str, float, float, float]]:
        """``(lane, member, start, end of its load, end)`` of each member step on the lanes, at ``edge``:
        the layout :attr:`expected_s` (and ``low_s``, ``high_s``) counts the span of."""
        work = self._member_work(edge)
        if self.lanes <= 1:
            out, t = [], 0.0
            for m, a, b in work:
                out.append((0, m, t, t + a, t + a + b))
                t += a + b
            return out
        return [(s.lane, s.member, s.start, s.start + s.setup_s, s.finish)
                for s in lanes_span(work, self.rows, self.lanes, dict(self.chunk_rows))[1]]

    def members_span(self, edge: str = "seconds") -> float:
        """Seconds from the first member's load to the last lane's end, at ``edge`` (their sum on one lane)."""
        return self._total(edge) - sum(getattr(i.estimate, edge) for i in self.items if not i.member)

    @property
    def expected_s(self) -> float:
        return self._total("seconds")

    @property
    def low_s(self) -> float:
        return self._total("low")

    @property
    def high_s(self) -> float:
        return self._total("high")

    @property
    def available_s(self) -> float:
        """Time the run may take: the limit less the margin."""
        return self.time_limit_s - self.margin_s

    @property
    def verdict(self) -> str:
        """By time (:func:`verdict`), except that a blocking pre-flight check makes it ``does not fit``."""
        return "does not fit" if self.blocking else verdict(self.expected_s, self.high_s, self.available_s)

    @property
    def blocking(self) -> tuple[Check, ...]:
        """The pre-flight checks that make the run fail whatever the limit (RAM, GPU memory)."""
        return tuple(c for c in self.checks if c.blocking)

    @property
    def reason(self) -> str:
        """Why the verdict is what it is, in one line."""
        if self.blocking:
            return "; ".join(f"pre-flight check [{c.code}]{' on ' + c.member if c.member else ''} blocks the run"
                             for c in self.blocking)
        return {"fits": "the high edge fits", "tight": "the expected time fits, the high edge does not",
                "does not fit": "the expected time does not fit"}[self.verdict]

    @property
    def confidence(self) -> str:
        """The lowest confidence of the items that weigh at least 5 % of the total."""
        big = [i for i in self.items if i.estimate.seconds >= 0.05 * self.expected_s] or list(self.items)
        return lowest_confidence(*(i.estimate.confidence for i in big))

    def stage_totals(self) -> dict[str, tuple[float, float, float]]:
        """``stage -> (expected, low, high)`` summed over members, in stage order."""
        out = {}
        for stage in STAGES:
            items = [i for i in self.items if i.stage == stage]
            out[stage] = (sum(i.estimate.seconds for i in items), sum(i.estimate.low for i in items),
                          sum(i.estimate.high for i in items))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": "file",  # a file run (a bundle that serves: packager.estimate.serve, "serve")
            "bundle": self.bundle, "target": self.target, "target_name": self.target_name,
            "rows": self.rows, "time_limit_s": self.time_limit_s, "margin_s": self.margin_s,
            "available_s": self.available_s, "expected_s": self.expected_s, "low_s": self.low_s,
            "high_s": self.high_s, "margin_left_s": self.available_s - self.expected_s,
            "verdict": self.verdict, "reason": self.reason, "confidence": self.confidence,
            "stages": {k: {"seconds": e, "low": lo, "high": hi} for k, (e, lo, hi) in self.stage_totals().items()},
            "items": [i.to_dict() for i in self.items], "checks": [c.to_dict() for c in self.checks],
            "plan": self.plan.to_dict() if self.plan else None, "profile": self.profile,
            "calibrated": list(self.calibrated), "caveats": list(self.caveats), "lanes": self.lanes,
            "lane_layout": [{"lane": k, "member": m, "start_s": a, "end_s": b} for k, m, a, b in self.lane_layout()],
        }


def verdict(expected_s: float, high_s: float, available_s: float) -> str:
    """``fits`` if ``high_s <= available_s``; ``tight`` if only ``expected_s`` is; else ``does not fit``."""
    if high_s <= available_s:
        return "fits"
    if expected_s <= available_s:
        return "tight"
    return "does not fit"


def calibrate_items(items: list[Item], store: CalibrationStore | None, target: str, manifest: Manifest,
                    used: list[str]) -> list[Item]:
    """Apply the stored calibration of ``target`` to the member items (``used``: a line appended per item changed)."""
    if store is None:
        return items
    out = []
    for item in items:
        cal = None
        if item.stage == "inference" and item.member and gpu_fitted(item.basis):
            # The GPU model refits on the target-wide runs itself: only the member's own record applies.
            cal = store.own(target, manifest, item.member)
        elif item.stage == "inference" and item.member:
            cal = store.for_member(target, manifest, item.member)
        elif item.stage == "load":
            cal = store.for_setup(target)
        if cal is not None and cal.count:
            est = replace(cal, target=item.estimate.target).apply(item.estimate)
            item = replace(item, estimate=est, basis=f"{item.basis}, calibrated")
            used.append(f"{item.stage}/{item.member}: x{cal.factor:.3f} from {cal.count} run(s)")
        out.append(item)
    return out


def _fit_plan(costing: Costing, store: CalibrationStore | None, fixed: list[Item], options: EstimateOptions,
              fits_memory, blocking: tuple[Check, ...] = ()) -> FitPlan:
    """The best plan that fits: every variant at the member's batch size and at the
    profile's fastest one (when it fits the GPU), priced at the high edge.

    A blocking check of one member drops that member; one of the whole run
    (RAM) leaves no plan: leaving members out does not fix it.
    """
    full_value = sum(m.value for m in costing.manifest.members)
    run_wide = [c for c in blocking if not c.member]
    if run_wide:
        reason = "; ".join(f"pre-flight check [{c.code}] blocks every plan: {c.message}" for c in run_wide)
        return FitPlan((), tuple((m.name, reason) for m in costing.manifest.members), (), 0.0, full_value,
                       sum(i.estimate.high for i in fixed))
    ruled_out = {c.member: f"pre-flight check [{c.code}]: {c.message}" for c in blocking}
    members = []
    for member in costing.manifest.members:
        if member.name in ruled_out:
            continue
        candidates = []
        for variant in member.variants:
            if variant is not member.variants[0] and left_out(variant, costing.target):
                continue  # a CPU rung the runtime leaves out there (said in the plan's notes: rung_notes)
            batches = [costing.batch_for(member)]
            best = costing.best_batch(member, variant)
            if best and best not in batches and options.batch_size is None and fits_memory(member, variant, best):
                batches.append(best)
            for b in batches:
                items = calibrate_items(widen(costing.member_items(member, variant, b, options.rows), costing.profile,
                                              lane_count(costing)), store, options.target, costing.manifest, [])
                load, inf, ens = (i.estimate for i in items)
                candidates.append(Candidate(variant.name, b, load.high, inf.high + ens.high, variant.value_factor))
        members.append((member, candidates))
    stages = ", ".join(sorted({i.stage for i in fixed if i.estimate.high > 0}))
    if not members:
        return FitPlan((), tuple(ruled_out.items()), (), 0.0, full_value, sum(i.estimate.high for i in fixed))
    plan = best_plan(members, options.rows, options.time_limit_s, options.margin,
                     sum(i.estimate.high for i in fixed), f"the fixed stages ({stages})", lanes=lane_count(costing),
                     quantum=chunk_quantum(costing))
    return replace(plan, dropped=(*tuple(ruled_out.items()), *plan.dropped), full_value=full_value,
                   notes=(*plan.notes, *rung_notes(costing.manifest.members, costing.target, costing.profile)))


def estimate_bundle(
    bundle: str | Path,
    options: EstimateOptions,
    *,
    manifest: Manifest | None = None,
    calibration: CalibrationStore | None = None,
    plan: bool | None = None,
) -> BudgetEstimate:
    """Estimate the run of a bundle on ``options.target`` for ``options.rows`` rows.

    Args:
        bundle: The bundle folder.
        options: Target, rows, limit, margin.
        manifest: The bundle's manifest, if already loaded.
        calibration: Stored calibrations to apply (None: none).
        plan: Work out the best plan that fits: True, False, or None for
            "when the verdict is not fits".

    Returns:
        The :class:`BudgetEstimate`, with pre-flight checks.

    Raises:
        BundleError: Not a bundle. SpecError: unknown target or bad options.
    """
    root = Path(bundle)
    manifest = manifest or Manifest.load(root)
    if not manifest.members:
        raise BundleError(f"bundle {root} has no members to estimate")
    costing = Costing(root, manifest, options, *gpu_calibration(calibration, options.target, manifest))
    used: list[str] = []
    lanes = lane_count(costing)
    fixed = bundle_items(costing, options.rows)
    members: list[Item] = []
    for member in manifest.members:
        variant = member.variants[0]
        members.extend(costing.member_items(member, variant, costing.batch_for(member), options.rows))
    noisy = noise_check(costing.profile, [*fixed, *members], lanes)
    # Repeats that disagreed widen their stages' bands (a real run's calibration then replaces a member's band).
    fixed, members = widen(fixed, costing.profile, lanes), widen(members, costing.profile, lanes)
    members = calibrate_items(members, calibration, options.target, manifest, used)
    by_stage = {s: n for n, s in enumerate(STAGES)}
    items = sorted([*fixed, *members], key=lambda i: by_stage[i.stage])
    checks, fits_memory = preflight(costing, options)
    checks = [*checks, *([noisy] if noisy else [])]
    result = BudgetEstimate(
        bundle=manifest.name, target=options.target, target_name=costing.target.name, rows=options.rows,
        time_limit_s=options.time_limit_s, margin_s=options.margin, items=tuple(items), checks=tuple(checks),
        profile=describe_profile(costing.profile), calibrated=tuple(used), lanes=lanes,
        chunk_rows=tuple(chunk_quantum(costing).items()),
    )
    if plan or (plan is None and result.verdict != "fits"):
        result = replace(result, plan=_fit_plan(costing, calibration, fixed, options, fits_memory, result.blocking))
    return result


def lane_count(costing: Costing) -> int:
    """Lanes the run will use on the target for the estimate's rows (:meth:`Costing.lanes`)."""
    return costing.lanes(costing.options.rows)[0]


def chunk_quantum(costing: Costing) -> dict[str, int]:
    """Rows per chunk of each member for the estimate's rows: the run's grid (``runtime.execute.checkpoint.member_grid``)
    and the quantum its planner splits a member's rows by, so the estimate splits them where the run does."""
    rows = costing.options.rows
    return {m.name: max(b - a for a, b in member_grid(rows, m, costing.profile)) for m in costing.manifest.members}


def describe_profile(profile: Profile) -> str:
    """Where and how the profile was measured, in one line (none: priced without a measurement)."""
    if not profile.measured:
        return ("none: not measured (a GPU target's inference from published figures, the rest from spec sheets; "
                "run `ninefit profile BUNDLE` for a measured one)")
    fp = profile.fingerprint
    gpus = ", ".join(str(g.name) for g in fp.gpus)
    ort = fp.versions.get("onnxruntime") or fp.versions.get("onnxruntime-gpu") or "?"
    where = f"{_or(fp.cpu_model)} ({_or(fp.cpu_threads)} threads{', ' + gpus if gpus else ''})"
    return (f"measured {_or(profile.created)} on {where}, {_or(fp.device, 'cpu')}, onnxruntime {ort}; "
            f"{_or(profile.data.source)}")


def _or(value: Any, absent: str = "?") -> Any:
    """A profile's value as the description shows it, ``absent`` where the profile lacks it."""
    return absent if value is None else value


__all__ = [
    "STAGES",
    "VERDICTS",
    "BudgetEstimate",
    "Check",
    "Costing",
    "EstimateOptions",
    "FitPlan",
    "Item",
    "calibrate_items",
    "describe_profile",
    "estimate_bundle",
    "hardware_of",
    "lane_count",
    "same_machine",
    "verdict",
]
