"""Pricing a serving run on a target: :func:`estimate_serve` (see :mod:`packager.estimate.serve`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from packager.estimate.calibrate import CalibrationStore
from packager.estimate.estimator import calibrate_items, describe_profile, verdict
from packager.estimate.preflight import preflight
from packager.estimate.price.bundle import HOOK_S_PER_ROW, bundle_items
from packager.estimate.price.costing import Costing
from packager.estimate.price.items import SPEC_BAND, Check, EstimateOptions, Item, added, fixed
from packager.estimate.price.noise import noise_check, widen
from packager.estimate.price.roofline import Estimate
from packager.estimate.serve.batches import Batches, declared_batches
from packager.estimate.serve.result import MAX_ROWS, BatchFit, ServeEstimate
from runtime.errors import BundleError, UsageError
from runtime.manifest import Manifest, Member, ServeSpec, Variant
from runtime.progress import format_seconds as _s
from runtime.schedule import planner
from runtime.serve.budget import CallBudget
from runtime.serve.options import ServeOptions
from runtime.serve.pacing import Rung, allocate

#: A call's own fixed cost outside the members: reading predict's arguments, planning, building the answer
#: (rate constant: benchmarks/serve.py (a) measured about 0.6 ms on a 2-core VM; the gateway's round trip is the margin's).
CALL_FIXED_S = 2e-3
#: ... and per row, where the profile has no measured submission write (building the answer's rows).
CALL_S_PER_ROW = 2e-6
#: Importing the competition's inference server (kaggle_evaluation, grpcio, polars) and starting it (rate constant).
SERVER_START_S = 1.5


class _Pricer:
    """A member's cost on the target for a call of ``n`` rows, its loads, a call's own cost (cached)."""

    def __init__(self, costing: Costing, store: CalibrationStore | None, target: str):
        self.costing, self.store, self.target = costing, store, target
        self.profile, self.manifest = costing.profile, costing.manifest
        self._costs: dict[tuple[str, str, int], Item] = {}
        self._loads: dict[tuple[str, str], Item] = {}
        self.used: list[str] = []  # the calibrations applied, a line each

    def _fix(self, item: Item) -> Item:
        """Widened where the profile's repeats disagreed, and calibrated, as the file-run estimate's items."""
        item = widen([item], self.profile, 1)[0]
        return calibrate_items([item], self.store, self.target, self.manifest, self.used)[0]

    def inference(self, member: Member, variant: Variant, rows: int) -> Item:
        key = (member.name, variant.name, rows)
        if key not in self._costs:
            batch = self.costing.batch_for(member)
            est, basis = self.costing.inference(member, variant, batch, rows)
            self._costs[key] = self._fix(Item("inference", est, basis, member.name, variant.name, batch))
        return self._costs[key]

    def load(self, member: Member, variant: Variant) -> Item:
        key = (member.name, variant.name)
        if key not in self._loads:
            batch = self.costing.batch_for(member)
            est, basis = self.costing.load(member, variant, batch)
            self._loads[key] = self._fix(Item("load", est, basis, member.name, variant.name, batch))
        return self._loads[key]

    def rung(self, member: Member, k: int, rows: int) -> Estimate:
        """Rung ``k`` of the member on a call of ``rows`` rows: its inference, and its load unless it is the best
        (loaded on the first call)."""
        variant = member.variants[k]
        est = self.inference(member, variant, rows).estimate
        return added(est, self.load(member, variant).estimate) if k else est

    def overhead(self, rows: int) -> Estimate:
        return call_overhead(self.costing, rows)


def call_overhead(costing: Costing, rows: int) -> Estimate:
    """A call's own cost outside the members for ``rows`` rows: :data:`CALL_FIXED_S`, building the answer's rows
    (the profile's submission write and ensembling per row, host-scaled; else :data:`CALL_S_PER_ROW`), and the
    features hook over the batch where the bundle has one."""
    p = costing.profile
    est = fixed(CALL_FIXED_S, (0.5, 3.0), "low", costing.key, notes=(
        f"a call's own cost {CALL_FIXED_S * 1e3:g} ms (rate constant)",))
    members = len(costing.manifest.members)
    if p.write.s_per_row is not None:
        per_row = float(p.write.s_per_row) + members * float(p.ensemble.s_per_row or 0.0)
        est = added(est, costing.host(per_row * rows))
    else:
        est = added(est, fixed(CALL_S_PER_ROW * rows, SPEC_BAND, "low", costing.key))
    if costing.manifest.data.features:
        rec = p.hooks.get("features")
        if rec is not None and rec.s_per_row is not None:
            est = added(est, costing.host(float(rec.fixed_s or 0.0) + float(rec.s_per_row) * rows))
        else:
            est = added(est, fixed(HOOK_S_PER_ROW * rows, SPEC_BAND, "low", costing.key))
    return est


def estimate_serve(
    bundle: str | Path,
    options: EstimateOptions,
    *,
    manifest: Manifest | None = None,
    calibration: CalibrationStore | None = None,
    batches: Batches | None = None,
    data: Path | None = None,
    plan: bool | None = None,
) -> ServeEstimate:
    """Estimate a serving run of ``bundle`` on ``options.target`` (see the module docstring).

    Args:
        bundle: The bundle folder; its manifest must have ``serve``.
        options: Target, limit, margin, batch size; ``options.rows``: the hidden test's rows.
        manifest: The bundle's manifest, if already loaded.
        calibration: Stored calibrations to apply (None: none).
        batches: The hidden test's batches (None: :func:`declared_batches` for ``options.rows`` and ``data``).
        data: The public test, for ``[serve] batch_by``'s groups.
        plan: Work out the paced plan: True, False, or None for "when the whole does not fit".

    Raises:
        BundleError: Not a bundle, no members, or no ``[serve]``. UsageError: the batches cannot be told.
    """
    root = Path(bundle)
    manifest = manifest or Manifest.load(root)
    serve = _served(root, manifest, options)
    batches = batches or declared_batches(serve, manifest, options.rows, data)
    # Priced per call: the costing's rows are one batch's (the RAM check holds one batch, not the hidden test).
    costing = Costing(root, manifest, replace(options, rows=batches.largest, lanes=1))
    price = _Pricer(costing, calibration, options.target)
    startup, first = _startup_and_first_call(costing, price, batches.typical)
    checks, _ = preflight(costing, replace(options, rows=batches.largest))
    ruled_out = {c.member for c in checks if c.blocking and c.member}
    members = [m for m in manifest.members if m.name not in ruled_out]

    budget = CallBudget(lambda: 0.0, ServeOptions.from_spec(serve))  # the runtime's margin, fed the call's cost
    budget.measured(max(price.overhead(r).high for r, _ in batches.shapes))
    margin, timeout = budget.margin_s, serve.response_timeout_s
    fits = tuple(_fit(price, members, rows, count, timeout - margin) for rows, count in batches.shapes)
    largest = tuple((m.name, v.name, _largest(_call_cost(price, m, k), timeout - margin))
                    for m in members for k, v in enumerate(m.variants))
    later = _later(price, members, fits, batches.typical)
    noisy = noise_check(costing.profile, [*startup, *first, *later], 1)
    checks += [*([noisy] if noisy else []), *_deadline_checks(fits, batches, timeout, margin),
               *_startup_check(startup, serve.startup_limit_s)]
    est = ServeEstimate(
        bundle=manifest.name, target=options.target, target_name=costing.target.name, batches=batches,
        time_limit_s=options.time_limit_s, margin_s=options.margin, startup_limit_s=serve.startup_limit_s,
        response_timeout_s=timeout, call_margin_s=margin, startup=tuple(startup), first_call=tuple(first),
        later=tuple(later), fits=fits, largest=largest, checks=tuple(checks),
        paced=bool(serve.expected_rows or serve.expected_batches), full_value=sum(m.value for m in manifest.members),
        profile=describe_profile(costing.profile), calibrated=tuple(dict.fromkeys(price.used)),
        caveats=tuple(batches.notes) + _caveats(serve),
    )
    return _planned(est, price, members, plan)


def _served(root: Path, manifest: Manifest, options: EstimateOptions) -> ServeSpec:
    """The bundle's ``[serve]`` spec; a clear error where it cannot be estimated as serving."""
    if manifest.serve is None:
        raise BundleError(f"bundle {manifest.name!r} does not serve an evaluation API (its spec has no [serve] "
                          "table): estimate its file run instead")
    if not manifest.members:
        raise BundleError(f"bundle {root} has no members to estimate")
    if options.lanes not in (None, 1):
        raise UsageError(f"--lanes {options.lanes}: a serving run has one lane (each call runs its members one "
                         "after another)")
    return manifest.serve


def _startup_and_first_call(costing: Costing, price: _Pricer, rows: int) -> tuple[list[Item], list[Item]]:
    """The startup's items (to the server taking calls) and the first call's (verification, the runtime's
    start-up, every member's best rung loaded and run on ``rows`` rows, the call's own cost)."""
    b_items = {i.stage: i for i in widen(bundle_items(costing, rows), costing.profile, 1)}
    startup = [b_items[s] for s in ("install", "python", "imports") if s in b_items]
    startup.append(Item("server", fixed(SERVER_START_S, (0.5, 3.0), "low", costing.key, notes=(
        f"importing and starting the competition's inference server, {SERVER_START_S:g} s (rate constant)",)),
        "rate constant"))
    members = costing.manifest.members
    first = [b_items["verify"], b_items["startup"], *(price.load(m, m.variants[0]) for m in members),
             *(price.inference(m, m.variants[0], rows) for m in members),
             Item("call", price.overhead(rows), "rate constant")]
    return startup, first


def _startup_check(startup: list[Item], limit_s: float) -> list[Check]:
    """Blocking where the server takes calls after the startup limit at the expected time."""
    seconds = sum(i.estimate.seconds for i in startup)
    if seconds <= limit_s:
        return []
    what = ", ".join(f"{i.stage} {_s(i.estimate.seconds)}" for i in startup if i.estimate.seconds)
    return [Check("startup", "blocking", (
        f"the server takes calls about {_s(seconds)} after the notebook starts ({what}), over the startup "
        f"limit of {_s(limit_s)}: the gateway gives up and the submission fails; ship fewer or smaller wheels, "
        "or import less before the server starts"))]


def _planned(est: ServeEstimate, price: _Pricer, members: list[Member], plan: bool | None) -> ServeEstimate:
    """``est`` with what the run delivers where the whole does not fit (or ``plan`` asks): the paced shares,
    or, where the run cannot pace, how many batches get their members before the time runs out."""
    whole = verdict(est.expected_s, est.high_s, est.available_s)
    if plan is False or est.blocking or (whole == "fits" and not plan):
        return est
    batches = est.batches
    # The members' time after the first call: what is left less every later call's own cost (as the runtime's pace).
    left = est.available_s - est.startup_s("high") - est.first_call_s("high") - sum(
        i.estimate.high for i in est.later if i.stage == "calls")
    if not est.paced:
        if whole == "fits":
            return est
        work = sum(i.estimate.high for i in est.later if i.stage != "calls")
        per_batch = work / max(batches.count - 1, 1)
        answered = batches.count if work <= left else 1 + max(0, int(left // per_batch))
        return replace(est, answered=min(answered, batches.count))
    shares, value = _paced(price, members, est.fits, batches, batches.typical, max(0.0, left))
    return replace(est, shares=shares, value=value)


def _fit(price: _Pricer, members: list[Member], rows: int, count: int, deadline_s: float) -> BatchFit:
    """What a call of ``rows`` rows runs within ``deadline_s`` (the deadline less the margin), planned as the
    predictor plans a call (:func:`runtime.schedule.planner.plan`) on the high edges."""
    overhead = price.overhead(rows)
    room = deadline_s - overhead.high
    runs, left_out = [], []
    if room > 0 and members:
        states = [planner.MemberState(m.name, m.value, tuple(
            planner.Variant(v.name, price.inference(m, v, rows).estimate.high / rows,
                            price.load(m, v).estimate.high if k else 0.0, v.value_factor)
            for k, v in enumerate(m.variants)), rows) for m in members]
        chosen = {s.member: s.variant for s in planner.plan(states, 0.0, planner.Budget(deadline=room)).steps}
    else:
        chosen = {}
    for m in members:
        if m.name in chosen:
            k = [v.name for v in m.variants].index(chosen[m.name])
            runs.append((m.name, chosen[m.name], price.rung(m, k, rows)))
            continue
        cheapest = min(range(len(m.variants)), key=lambda k: price.rung(m, k, rows).high)
        need = price.rung(m, cheapest, rows)
        rung = m.variants[cheapest].name + (" with its load" if cheapest else "")
        if need.high > room:
            why = (f"a {rows:,}-row batch needs {_s(need.high)} of it at the high edge ({rung}), and the response "
                   f"deadline leaves the members {_s(max(room, 0.0))} (less the margin and the call's own cost)")
        else:
            why = (f"a {rows:,}-row batch needs {_s(need.high)} of it ({rung}), and the {_s(room)} the response "
                   "deadline leaves the members goes to more valuable ones")
        if need.seconds <= room < need.high:
            why += " (at the expected cost it fits: the run, measuring live, may run it)"
        left_out.append((m.name, why))
    return BatchFit(rows, count, overhead, room, tuple(runs), tuple(left_out))


def _call_cost(price: _Pricer, member: Member, k: int) -> Callable[[int], float]:
    """A call's high seconds for ``n`` rows on the member's rung ``k`` alone: its overhead and the rung's run."""
    return lambda n: price.overhead(n).high + price.rung(member, k, n).high


def _largest(cost: Callable[[int], float], deadline_s: float) -> int:
    """The most rows whose ``cost`` fits ``deadline_s`` (0: not one; :data:`MAX_ROWS`: at least that many)."""
    if cost(1) > deadline_s:
        return 0
    lo, hi = 1, 2
    while hi <= MAX_ROWS and cost(hi) <= deadline_s:
        lo, hi = hi, hi * 2
    if hi > MAX_ROWS:
        return MAX_ROWS
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= deadline_s else (lo, mid)
    return lo


def _later(price: _Pricer, members: list[Member], fits: tuple[BatchFit, ...], n0: int) -> list[Item]:
    """The calls after the first: each member's work at the rungs its batches run, and the calls' own cost."""
    counts = [(f, f.count - (1 if f.rows == n0 else 0)) for f in fits]
    work: dict[tuple[str, str], Estimate] = {}
    loaded: set[tuple[str, str]] = set()
    calls = None
    for f, n in counts:
        if n <= 0:
            continue
        calls = f.overhead.scaled(n) if calls is None else added(calls, f.overhead.scaled(n))
        for member, rung, _ in f.runs:
            m = next(x for x in members if x.name == member)
            e = price.inference(m, m.variant(rung), f.rows).estimate.scaled(n)
            if rung != m.variants[0].name and (member, rung) not in loaded:  # a cheaper rung loads once
                loaded.add((member, rung))
                e = added(e, price.load(m, m.variant(rung)).estimate)
            work[(member, rung)] = added(work[(member, rung)], e) if (member, rung) in work else e
    out = []
    for (member, rung), e in work.items():
        m = next(x for x in members if x.name == member)
        item = price.inference(m, m.variant(rung), n0)
        out.append(replace(item, estimate=replace(e, notes=item.estimate.notes)))
    if calls is not None:
        out.append(Item("calls", calls, "rate constant"))
    return out


def _paced(price: _Pricer, members: list[Member], fits: tuple[BatchFit, ...], batches: Batches, n0: int,
           left_s: float) -> tuple[tuple[tuple[str, str, float], ...], float]:
    """Each member's rung and share of every batch's rows, as the runtime paces the time ``left_s`` over the
    rows after the first call (:func:`runtime.serve.pacing.allocate` on the high-edge costs): a member's ladder
    is the rungs the deadline admits (its typical batch's rung and cheaper), each costing its work over the later
    batches per row to come (and its load, where it is not the best). Returns (shares, value delivered)."""
    typical = next(f for f in fits if f.rows == n0)
    rows_left = max(batches.rows - n0, 1)
    counts = [(f, f.count - (1 if f.rows == n0 else 0)) for f in fits]
    admitted = {m: r for m, r, _ in typical.runs}
    ladders: dict[str, Sequence[Rung]] = {}
    for m in members:
        if m.name not in admitted:
            continue
        names = [v.name for v in m.variants]
        ladder = []
        for k in range(names.index(admitted[m.name]), len(names)):
            v = m.variants[k]
            seconds = sum(n * price.inference(m, v, f.rows).estimate.high for f, n in counts if n > 0)
            if k:
                seconds += price.load(m, v).estimate.high
            ladder.append(Rung(v.name, seconds / rows_left, m.value * v.value_factor))
        ladders[m.name] = ladder
    shares = allocate(ladders, left_s / rows_left)
    by_name = {m.name: m for m in members}
    out = tuple((name, s.rung, s.fraction) for name, s in shares.items())
    value = sum(by_name[n].value * by_name[n].variant(r).value_factor * f for n, r, f in out)
    return out, value


def _deadline_checks(fits: tuple[BatchFit, ...], batches: Batches, timeout: float, margin: float) -> list[Check]:
    """Blocking: a call whose own cost (expected) leaves its members no time: it would answer late; no member fits
    any batch (every batch answered with the fallback values). A warning where the call's own cost leaves no time
    at its high edge only."""
    room = timeout - margin
    late = [f for f in fits if f.overhead.seconds >= room] or [f for f in fits if f.room_s <= 0]
    if late:
        f = late[-1]
        blocking = f.overhead.seconds >= room
        edge = f"{_s(f.overhead.seconds)} (expected)" if blocking else f"{_s(f.overhead.high)} at the high edge"
        return [Check("response-deadline", "blocking" if blocking else "warning", (
            f"a {f.rows:,}-row call costs {edge} outside the members, and the response deadline less the margin "
            f"leaves {_s(room)}: {'it cannot be answered in time' if blocking else 'it may be answered late'}; "
            "the call's own work (the features hook, building the answer) must be lighter"))]
    if not any(f.runs for f in fits):
        return [Check("response-deadline", "blocking", (
            f"no member fits a batch within the response deadline ({_s(timeout)} less a margin of {_s(margin)}): "
            f"every batch of {batches.describe()} would be answered with the fallback values"))]
    return []


def _caveats(serve: ServeSpec) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if not (serve.expected_rows or serve.expected_batches):
        out += ("[serve] declares neither expected_rows nor expected_batches: the run cannot pace the notebook's "
                "time over the batches to come (the estimate knows the rows; the run does not)",)
    return out


__all__ = ["CALL_FIXED_S", "CALL_S_PER_ROW", "SERVER_START_S", "call_overhead", "estimate_serve"]
