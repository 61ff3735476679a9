"""How far a profile's repeated measurements agreed, and what that does to the estimate's band and confidence.

The profile keeps the fastest of repeated measurements (other work on the
machine only slows a run down), so a profile taken on a busy machine still
yields one figure per stage; but when the repeats disagree, that figure is
as uncertain as their disagreement. Each measured item is given the *spread*
of the repeats it comes from (the largest over the smallest, >= 1):

* a member's inference: the last ``stable_windows`` measurement windows of the
  point at its batch size (all its points where that batch was not measured);
  on several CPU lanes, also the repeated lane check runs (the lane speedup);
* ``python``, ``imports``, ``exit``: the repeated interpreter-and-imports runs;
* ``startup``: the repeated whole-process check runs and end-to-end check runs;
* ``ensembling``: the repeated end-to-end check runs;
* every measured item: the other processes' share of the cores while the
  profile was taken (:class:`~packager.estimate.measure.load.LoadMeter`, the profile's ``load``): repeats that
  agree on a machine busy all along are slowed alike, so a share over
  :data:`BUSY` counts as a spread of ``1 / (1 - share)``.

Where the spread passes :data:`NOISY` (the profile's own tolerance is 10 %),
the item's confidence is ``low`` and its band reaches from ``seconds / spread``
to ``seconds x spread`` at least; :func:`noise_check` says which repeats
disagreed, by how much, and what to do (profile again on a quiet machine).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from packager.estimate.measure.load import BUSY
from packager.estimate.price.items import Check, Item
from runtime.profile import BatchPoint, Profile

#: Repeats whose largest is more than this times their smallest disagree: the figure is not trusted as measured.
NOISY = 1.25
_WINDOWS = 3  # the profile's default stable_windows: the windows its stability rule judges


def spread(values: Iterable[float]) -> float:
    """Largest over smallest of repeated measurements (1 with fewer than two positive ones)."""
    xs = [float(x) for x in values if isinstance(x, (int, float)) and x > 0]
    return max(xs) / min(xs) if len(xs) >= 2 else 1.0


def _point_spread(point: BatchPoint, count: int) -> float:
    return spread(point.windows[-count:])


def member_spread(profile: Profile, member: str, variant: str, batch: int) -> float:
    """Spread of the windows behind a member's figure at ``batch`` (every measured batch where that one was not)."""
    rec = profile.cost(member, variant)
    points = rec.batches if rec is not None else {}
    count = int(profile.options.stable_windows or _WINDOWS)
    if batch in points:
        return _point_spread(points[batch], count)
    return max([_point_spread(p, count) for p in points.values()] or [1.0])


def bundle_spreads(profile: Profile) -> dict[str, tuple[float, str]]:
    """``{"process" | "check" | "lanes" | "load": (spread, what was repeated)}`` of the profile's bundle-wide repeats."""
    run = profile.checkpoint.run
    out: dict[str, tuple[float, str]] = {}
    runs = profile.startup.import_runs
    out["process"] = (spread(runs), f"{len(runs)} interpreter-and-imports runs")
    repeats = run.repeats_s
    check = max([spread(r) for r in repeats] or [1.0])
    whole = run.process.runs
    out["check"] = (max(check, spread(whole)), f"the end-to-end check runs ({sum(map(len, repeats)) + len(whole)})")
    lanes = run.lanes.runs_s
    out["lanes"] = (spread(lanes), f"{len(lanes)} lane check runs")
    share = float(profile.load.others_cpu_share or 0.0)
    out["load"] = (1 / (1 - min(share, 0.8)) if share > BUSY else 1.0,
                   f"other processes used {share:.0%} of the cores while it was profiled")
    return out


def _item_spread(item: Item, profile: Profile, bundle: Mapping[str, tuple[float, str]],
                 lanes: int) -> tuple[float, str]:
    own = _own_spread(item, profile, bundle, lanes)
    return max(own, bundle["load"], key=lambda sw: sw[0]) if item.basis.startswith(("measured", "roofline")) else own


def _own_spread(item: Item, profile: Profile, bundle: Mapping[str, tuple[float, str]],
                lanes: int) -> tuple[float, str]:
    if item.stage == "inference" and item.member:
        s = member_spread(profile, item.member, item.variant, item.batch_size)
        what = f"measurement windows of {item.member}/{item.variant} at batch {item.batch_size}"
        if lanes > 1 and bundle["lanes"][0] > s:
            s, what = bundle["lanes"][0], bundle["lanes"][1]
        return s, what
    key = {"python": "process", "imports": "process", "exit": "process", "startup": "check",
           "ensembling": "check"}.get(item.stage)
    return bundle[key] if key else (1.0, "")


def widen(items: Sequence[Item], profile: Profile | None, lanes: int = 1) -> list[Item]:
    """``items`` with each measured one whose repeats disagreed (spread > :data:`NOISY`) at low confidence,
    its band from ``seconds / spread`` to ``seconds x spread`` at least."""
    if profile is None or not profile.measured:
        return list(items)
    bundle = bundle_spreads(profile)
    out = []
    for item in items:
        s, what = _item_spread(item, profile, bundle, lanes)
        if s > NOISY and item.basis.startswith(("measured", "roofline")):
            e = item.estimate
            e = replace(e, low=min(e.low, e.seconds / s), high=max(e.high, e.seconds * s), confidence="low",
                        notes=(*e.notes, f"the repeats behind it disagreed by x{s:.2f} ({what}): band widened"))
            item = replace(item, estimate=e)
        out.append(item)
    return out


def noise_check(profile: Profile | None, items: Sequence[Item], lanes: int = 1) -> Check | None:
    """A warning naming every disagreement over :data:`NOISY` behind ``items``; None when the repeats agreed."""
    if profile is None or not profile.measured:
        return None
    bundle = bundle_spreads(profile)
    found: dict[str, float] = {}
    for item in items:
        s, what = _item_spread(item, profile, bundle, lanes)
        if s > NOISY and item.basis.startswith(("measured", "roofline")):
            found[what] = max(found.get(what, 1.0), s)
    if not found:
        return None
    listed = "; ".join(f"{what}: x{s:.2f}" for what, s in sorted(found.items(), key=lambda kv: -kv[1]))
    return Check("profile", "warning", f"the profile was measured on a busy machine ({listed}; repeats agree "
                 f"within x{NOISY:g} on a quiet one), so the stages measured then are at low confidence and their "
                 "bands widened by as much. Profile again on a quiet machine (`ninefit profile BUNDLE --data DATA`) "
                 "for a band you can trust")


__all__ = ["NOISY", "bundle_spreads", "member_spread", "noise_check", "spread", "widen"]
