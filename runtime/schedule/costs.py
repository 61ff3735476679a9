"""What each variant costs here: the bundle's profile as a prior, live throughput on top.

Sources, strongest last:

1. the bundle's profile, ``manifest.profile.members[member][variant]``
   (:class:`runtime.profile.VariantCost`: its ``s_per_row`` and ``setup_s``, as
   :func:`runtime.data.text.row_costs` gives them to the run), measured on the packaging machine;
2. costs an earlier (killed) run measured live in the same work folder;
3. this run's own batches: once a rung has one timed batch, its measured
   throughput replaces the prior (never below the last few batches, so a
   member slowing down is seen at once).

The first batch after each load is warm-up and is left out. The profile's
priors are scaled by :meth:`CostModel.calibration`, the *machine factor* (how
much slower this machine is than the profile said, from every member measured
here), so whatever is not measured yet is costed for this machine; costs saved
by an earlier run were measured here and are taken as they are. An unmeasured
rung of a ladder is costed from a measured rung of the same member
(:func:`cost_factor`).

A lower rung is used only where it is cheaper here: once measured, a rung not
at least :data:`RUNG_GAIN` cheaper per row than a rung above it is pruned
(:meth:`CostModel.pruned_by`); fp16 on a CPU is the usual case. Until a rung
is measured, a chunk on it is only started if it fits at
:data:`UNMEASURED_CAUTION` times its estimated cost.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.manifest import Member, Variant
from runtime.profile import VariantCost
from runtime.schedule import planner

#: Assumed speed-up of fp16 over fp32 on a GPU, until measured (none on a CPU).
FP16_GPU_FACTOR = 0.6
#: Assumed cost of an int8 / bf16 rung against fp32 on a CPU, until measured: without a profile an unmeasured
#: CPU rung costed as fp32 would never be worth its value factor, so never run, so never measured. With this it is
#: tried (at UNMEASURED_CAUTION), measured on its first batches, and pruned at once where it is not cheaper here.
CPU_RUNG_FACTOR = {"int8": 0.5, "bf16": 0.7}
#: Batches the "recent" throughput is taken over.
RECENT_BATCHES = 3
#: A lower rung must be measured at least this share cheaper per row than every rung above it.
RUNG_GAIN = 0.05
#: Before a rung is measured here, its chunks are assumed to take up to this many times its estimate.
UNMEASURED_CAUTION = 2.0
#: A first batch shorter than this founds the machine factor on timer and scheduler noise (said so).
SHORT_BATCH_S = 0.02
#: Machine-factor ratios (members' first batches, or a member's later batches) further apart than this disagree.
FACTOR_SPREAD = 1.5


@dataclass
class LiveRate:
    """Throughput of one variant in this run; the first batch after each load is warm-up."""

    rows: float = 0  # a text member books each batch as its share of the chunk's rows: fractions
    seconds: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES))
    warm: bool = False
    warmup: float | None = None  # s/row of the last warm-up batch
    first: float | None = None  # s/row of the first timed batch (calibrates the profile)
    first_s: float | None = None  # seconds of that batch: how much the machine factor rests on
    last: float | None = None  # s/row of the last timed batch (of at least half the largest: a tail's fixed cost is no slowdown)
    largest: float = 0  # rows of the largest timed batch

    def add(self, rows: float, seconds: float) -> None:
        if not self.warm:
            self.warm, self.warmup = True, seconds / max(rows, 1)
            return
        if self.first is None:
            self.first, self.first_s = seconds / max(rows, 1), seconds
        self.largest = max(self.largest, rows)
        if 2 * rows >= self.largest:
            self.last = seconds / max(rows, 1)
        self.rows += rows
        self.seconds += seconds
        self.recent.append((rows, seconds))

    @property
    def recent_s_per_row(self) -> float:
        return sum(s for _, s in self.recent) / max(1, sum(n for n, _ in self.recent))


def profile_entries(profile: Mapping | None, member: str) -> dict[str, dict[str, float]]:
    """Valid ``{variant: {"s_per_row", "setup_s"}}`` entries of one member; malformed ones are ignored.

    ``profile``: ``{member: {variant: costs}}``, each a :class:`runtime.profile.VariantCost` (read by
    attribute) or its ``{"s_per_row", "setup_s"}`` mapping (the priors, and the costs a run saves).
    """
    out: dict[str, dict[str, float]] = {}
    entries = profile.get(member, {}) if isinstance(profile, Mapping) else {}
    if not isinstance(entries, Mapping):
        return out
    for variant, d in entries.items():
        if isinstance(d, VariantCost):
            d = d.prior()
        if not isinstance(d, Mapping):
            continue
        clean = {k: float(d[k]) for k in ("s_per_row", "setup_s")
                 if isinstance(d.get(k), (int, float)) and math.isfinite(d[k]) and d[k] >= 0}
        if "s_per_row" in clean:
            out[str(variant)] = clean
    return out


def cost_factor(member: Member, ref: Variant, target: Variant, gpu: bool) -> float:
    """Rough cost of ``target`` relative to ``ref``: TTA passes, pixels, fp16 on a GPU, int8/bf16 on a CPU."""
    f = len(target.tta) / len(ref.tta)
    base = next((i.image.size for i in member.inputs if i.image is not None), None)
    a, b = ref.image_size or base, target.image_size or base
    if a and b:
        f *= (b[0] * b[1]) / (a[0] * a[1])
    if gpu and ref.precision != target.precision:
        f *= FP16_GPU_FACTOR if target.precision == "fp16" else 1 / FP16_GPU_FACTOR
    elif not gpu and ref.precision != target.precision:
        f *= CPU_RUNG_FACTOR.get(target.precision, 1.0) / CPU_RUNG_FACTOR.get(ref.precision, 1.0)
    return f


class CostModel:
    """Seconds per row and setup seconds of every member's variants, kept up to date.

    Args:
        members: The ensemble's members.
        profile: ``{member: {variant: {"s_per_row", "setup_s"}}}`` from the bundle
            (measured elsewhere: scaled by :meth:`calibration`).
        saved: The same, measured live by an earlier run in this work folder
            (it wins over the profile, and is not scaled).
    """

    def __init__(self, members: tuple[Member, ...], profile: Mapping | None = None, saved: Mapping | None = None):
        self.members = {m.name: m for m in members}
        self.prior = {m.name: profile_entries(profile, m.name) for m in members}
        self.saved = {m.name: profile_entries(saved, m.name) for m in members}
        self.rates: dict[tuple[str, str], LiveRate] = {}
        self.setup: dict[tuple[str, str], float] = {}  # measured in this run
        self.gpu = False  # a runner reported a GPU: fp16 is then assumed faster
        self.rebased: set[str] = set()  # members now on another backend than their priors were measured on
        # Members whose graph runs on the CPU whatever the machine (Member.device "cpu": tree ensembles): how much
        # slower this machine's CPU is than the profile's says nothing of its GPU, and the other way round, so
        # each kind is calibrated by its own members' first batches (see _factor).
        self.cpu_work = {m.name for m in members if m.device == "cpu"}

    def rate(self, member: str, variant: str) -> LiveRate:
        return self.rates.setdefault((member, variant), LiveRate())

    def loaded(self, member: str, variant: str, setup_s: float, gpu: bool) -> None:
        """A runner was loaded in ``setup_s``; its next batch is warm-up."""
        self.setup[member, variant] = setup_s
        self.gpu = self.gpu or gpu
        self.rate(member, variant).warm = False

    def rebase(self, member: str) -> None:
        """``member`` fell back to another backend: once it has live rows, cost it on those alone.

        Its priors (the bundle's profile, an earlier run's costs) were measured on
        the backend it failed to load, so they neither blend into its cost nor
        calibrate the other members; until its first timed batch they remain the
        only guess there is.
        """
        self.rebased.add(member)

    def _kind_ratios(self, member: str) -> list[float]:
        """The best rungs' ratios of the members of ``member``'s kind (CPU work, or the rest)."""
        mine = member in self.cpu_work
        return sorted(r for m, r in self._best_by_member() if (m in self.cpu_work) == mine)

    def _best_by_member(self) -> list[tuple[str, float]]:
        out = []
        for (m, v), r in self.rates.items():
            prior = self.prior[m].get(v, {}).get("s_per_row")
            if r.first is not None and prior and m not in self.rebased and v == self.members[m].variants[0].name:
                out.append((m, r.first / prior))
        return out

    def calibration(self) -> float:
        """The machine factor: how much slower this machine is than the profile said, the
        median ratio of first live batches to profiled cost over the members' best
        rungs (1 until one was measured); with members of both kinds (CPU work and the rest), each member's
        prior is scaled by its own kind's factor instead (:meth:`_factor`).

        The profile was measured on the packaging machine; a Kaggle CPU may be
        far slower. Applying the ratio seen on the first members to the priors
        of the others keeps the plan from starting members that cannot finish.
        First batches only, so one member slowing down mid-run says nothing
        about the others.
        """
        return _median(self._ratios(best=True))

    def calibration_caveat(self) -> str:
        """Why the machine factor (:meth:`calibration`) rests on noisy measurements; "" when it does not.

        It is founded on each member's first timed batch: one batch shorter than
        :data:`SHORT_BATCH_S` is mostly the timer and the scheduler; members whose ratios
        lie more than :data:`FACTOR_SPREAD` apart, or a member whose later batches give a
        ratio that far from its first, measured the machine in different states (a busy
        machine). The factor is then a guess, and the report says so beside it.
        """
        founding = [(m, r) for (m, v), r in self.rates.items() if r.first is not None and m not in self.rebased
                    and v == self.members[m].variants[0].name and self.prior[m].get(v, {}).get("s_per_row")]
        if not founding:
            return ""
        why = []
        short = [f"{m} {r.first_s * 1e3:.2g} ms" for m, r in founding
                 if r.first_s is not None and r.first_s < SHORT_BATCH_S]
        if short:
            why.append(f"first batch{'es' if len(short) > 1 else ''} under {SHORT_BATCH_S * 1e3:g} ms "
                       f"({', '.join(short)})")
        ratios = self._ratios(best=True)
        if len(ratios) > 1 and ratios[-1] > FACTOR_SPREAD * ratios[0]:
            why.append(f"members' ratios from x{ratios[0]:.2f} to x{ratios[-1]:.2f}")
        for m, r in founding:
            prior = self.prior[m][self.members[m].variants[0].name]["s_per_row"]
            steady = r.recent_s_per_row if len(r.recent) == RECENT_BATCHES else None  # its last batches
            first = r.first
            assert first is not None, "founding holds only rates with a first batch"
            if steady and max(steady, first) > FACTOR_SPREAD * min(steady, first):
                why.append(f"{m}'s later batches give x{steady / prior:.2f}, its first x{first / prior:.2f}")
        return "noisy: " + "; ".join(why) if why else ""

    def factor_summary(self) -> dict[str, object]:
        """The machine factor for the run report: ``value``, each founding member's ``ratios`` (first batch /
        prior) and the ``caveat`` of :meth:`calibration_caveat`; empty before a best rung was measured."""
        if not self.calibrated():
            return {}
        ratios = {m: r.first / self.prior[m][v]["s_per_row"] for (m, v), r in self.rates.items()
                  if r.first is not None and m not in self.rebased and v == self.members[m].variants[0].name
                  and self.prior[m].get(v, {}).get("s_per_row")}
        return {"value": self.calibration(), "ratios": ratios, "caveat": self.calibration_caveat()}

    def calibrated(self) -> bool:
        """Whether a best rung measured here founds the machine factor (:meth:`calibration`)."""
        return bool(self._ratios(best=True))

    def _ratios(self, best: bool = False, member: str | None = None, variant: str | None = None,
                like: str | None = None) -> list[float]:
        """First live batch / profiled cost, sorted: over the members' best rungs (``best``), or over
        ``member``'s rungs, or over the rungs named ``variant``. Best rungs only for the machine: a
        lower rung's error (fp16 profiled on a GPU, run on a CPU) is that rung's, for pruning to
        judge, not the machine's; and never a member re-costed on a fallback backend."""
        out = []
        for (m, v), r in self.rates.items():
            prior = self.prior[m].get(v, {}).get("s_per_row")
            if r.first is None or not prior or m in self.rebased:
                continue
            if best and v != self.members[m].variants[0].name or member is not None and m != member \
                    or variant is not None and v != variant \
                    or like is not None and (m in self.cpu_work) != (like in self.cpu_work):
                continue
            out.append(r.first / prior)
        return sorted(out)

    def _factor(self, member: str, variant: str) -> float:
        """What a prior of ``member`` on ``variant`` is scaled by: the machine factor once a best rung
        calibrated it. Before that (the probes ran the rungs the plan wanted, maybe lower ones), the
        ratio one of the member's own rungs measured, else the median one its rung measured on the
        other members: fp16 profiled on a GPU and run on a CPU is off alike for every member. So
        the rungs are neither planned on the raw profile nor pruned on the unproved claim that this
        machine is as fast as the packaging one; a lower rung's ratio still calibrates no best rung
        of another member (its error may be the rung's own)."""
        best = self._ratios(best=True)
        mixed = bool(self.cpu_work) and len(self.cpu_work) < len(self.members)
        if mixed:  # both kinds here: each its own factor
            best = self._kind_ratios(member)
        if best:
            return _median(best)
        same = self._ratios(variant=variant, like=member) if mixed else self._ratios(variant=variant)
        for ratios in (self._ratios(member=member), same):
            if ratios:
                return ratios[len(ratios) // 2]
        return 1.0

    def _prior(self, member: str, variant: str) -> float | None:
        saved = self.saved[member].get(variant, {}).get("s_per_row")
        if saved is not None:  # measured on this machine already: calibrating it again would count the ratio twice
            return saved
        prior = self.prior[member].get(variant, {}).get("s_per_row")
        return None if prior is None else prior * self._factor(member, variant)

    def s_per_row(self, member: str, variant: str) -> float | None:
        """Best estimate now; None when nothing is known about the member."""
        prior = self._prior(member, variant)
        r = self.rates.get((member, variant))
        if r is None or r.rows == 0:
            return prior if prior is not None else self._scaled(member, variant)
        if member in self.rebased:
            return self._measured_s_per_row(member, variant)
        # Measured here wins over the prior at once (prior_rows=0): the prior is another machine's.
        return max(planner.estimate_s_per_row(r.rows, r.seconds, prior, prior_rows=0), r.recent_s_per_row)

    def mean_s_per_row(self, member: str, variant: str) -> float | None:
        """This run's mean cost per row of the rung, tails and jitter averaged in (the long run's pace); the
        best estimate where it has none."""
        r = self.rates.get((member, variant))
        return r.seconds / r.rows if r is not None and r.rows else self.s_per_row(member, variant)

    def cautious_s_per_row(self, member: str, variant: str) -> float:
        """For deciding whether a chunk still fits: also trusts the last batch (a member
        slowing down shows there first) or a lone warm-up batch, and allows
        :data:`UNMEASURED_CAUTION` times the estimate for a rung never measured here."""
        spr = self.s_per_row(member, variant) or 0.0
        r = self.rates.get((member, variant))
        if r is not None and r.last is not None:
            spr = max(spr, r.last)
        if r is not None and not r.rows and r.warmup is not None:
            spr = max(spr, r.warmup)
        elif not self.measured_here(member, variant):
            spr *= UNMEASURED_CAUTION
        return spr

    def measured_here(self, member: str, variant: str) -> bool:
        """Whether this rung's cost was measured on this machine (in this run or a killed one here)."""
        r = self.rates.get((member, variant))
        return bool(r is not None and (r.rows or r.warmup is not None)) or "s_per_row" in self.saved[member].get(variant, {})

    def _measured_s_per_row(self, member: str, variant: str) -> float | None:
        r = self.rates.get((member, variant))
        if r is not None and r.rows:
            return max(r.seconds / r.rows, r.recent_s_per_row)
        return self.saved[member].get(variant, {}).get("s_per_row")

    def pruned_by(self, member: str, variant: str) -> str | None:
        """The better rung that ``variant``, measured here, is not cheaper than (None: keep it).

        The top rung is never pruned; nor is a rung not measured yet. The
        comparison is with the better rung's best estimate now (measured, or
        its prior times the machine factor), so it is redone as costs move.
        """
        m = self.members[member]
        names = [v.name for v in m.variants]
        mine = self._measured_s_per_row(member, variant)
        if names.index(variant) == 0 or mine is None:
            return None
        for above in names[: names.index(variant)]:
            other = self.s_per_row(member, above)
            if other is not None and mine >= (1.0 - RUNG_GAIN) * other:
                return above
        return None

    def _scaled(self, member: str, variant: str) -> float | None:
        """An unmeasured variant's cost, scaled from a measured rung of the same member."""
        m = self.members[member]
        target = m.variant(variant)
        for ref in m.variants:
            if ref.name == variant:
                continue
            r = self.rates.get((member, ref.name))
            base = r.seconds / r.rows if r is not None and r.rows else self._prior(member, ref.name)
            if base is not None:
                return base * cost_factor(m, ref, target, self.gpu)
        return None

    def setup_s(self, member: str, variant: str) -> float:
        """Measured setup, else profiled, else that of another rung; 0 when unknown."""
        others = [s for (m, _), s in self.setup.items() if m == member]
        for source in (self.setup.get((member, variant)), self.saved[member].get(variant, {}).get("setup_s"),
                       self.prior[member].get(variant, {}).get("setup_s"), *others):
            if source is not None:
                return source
        return 0.0

    def measured(self) -> dict[str, dict[str, dict[str, float]]]:
        """This run's measurements, in the profile's format (for a resumed run)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (m, v), r in self.rates.items():
            if r.rows:
                out.setdefault(m, {})[v] = {"s_per_row": r.seconds / r.rows, "setup_s": self.setup_s(m, v)}
        return out


def _median(ratios: list[float]) -> float:
    """The median of sorted ``ratios``; 1 when there are none."""
    if not ratios:
        return 1.0
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


__all__ = ["CPU_RUNG_FACTOR", "FACTOR_SPREAD", "FP16_GPU_FACTOR", "RUNG_GAIN", "SHORT_BATCH_S", "UNMEASURED_CAUTION", "CostModel",
           "LiveRate", "cost_factor", "profile_entries"]
