"""The text table ``ninefit estimate`` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packager.estimate.estimator import BudgetEstimate
from packager.estimate.price.items import Item
from runtime.progress import format_seconds

if TYPE_CHECKING:  # the serving estimate renders its own table, and closes with verdict_lines
    from packager.estimate.serve.result import ServeEstimate


def fmt_s(seconds: float) -> str:
    """The run log's :func:`runtime.progress.format_seconds` (``12.3s``, ``4m05s``, ``8h06m00s``),
    with a leading ``-`` when negative."""
    return "-" + format_seconds(-seconds) if seconds < 0 else format_seconds(seconds)


def spare(seconds: float) -> str:
    return f"{fmt_s(seconds)} to spare" if seconds >= 0 else f"{fmt_s(-seconds)} over"


def verdict_lines(est: BudgetEstimate | ServeEstimate) -> list[str]:
    """An estimate's closing lines, a file run's or a serving one's: the limit against the expected time and the
    high edge, the verdict, its calibration, caveats and pre-flight checks."""
    # "spare", not "margin left": the margin is the one figure of the header, kept apart from this.
    out = [f"limit {fmt_s(est.time_limit_s)} - margin {fmt_s(est.margin_s)} = {fmt_s(est.available_s)} "
           f"available; expected {fmt_s(est.expected_s)} ({est.expected_s / est.available_s:.0%}): "
           f"{spare(est.available_s - est.expected_s)} (expected) / {spare(est.available_s - est.high_s)} "
           "(high edge)",
           f"verdict: {est.verdict.upper()} ({est.reason})"]
    if est.calibrated:
        out.append("calibration: " + "; ".join(est.calibrated))
    out.extend(f"caveat: {c}" for c in est.caveats)
    if est.checks:
        out.append("")
        out.append("pre-flight checks:")
        out.extend(f"  {c.level.upper() if c.blocking else c.level} [{c.code}] {c.message}" for c in est.checks)
    return out


def shape_note(target: str) -> str:
    """What the estimate priced, as Kaggle names it: ``Kaggle machine shape NvidiaTeslaT4`` ("" for ``local``)."""
    from packager.offline.image import image_facts

    shapes = image_facts().shapes
    if target not in shapes:
        return ""
    if shapes[target]:
        return f"Kaggle machine shape {shapes[target]}"
    return "a Kaggle CPU notebook (no machine shape)" if target == "cpu" else "no Kaggle machine shape known"


#: The header of the items' table (:func:`item_line`).
ITEMS_HEADER = (f"{'stage':<11} {'member':<14} {'variant':<8} {'batch':>6} {'expected':>9} {'band':>21}  "
                f"{'conf':<6} basis")


def item_line(item: Item) -> str:
    """One line of the items' table: stage, member, variant, batch, expected time, band, confidence, basis."""
    e = item.estimate
    band = f"{fmt_s(e.low)} - {fmt_s(e.high)}"
    return (f"{item.stage:<11} {item.member or '-':<14} {item.variant:<8} {item.batch_size or '':>6} "
            f"{fmt_s(e.seconds):>9} {band:>21}  {e.confidence:<6} {item.basis}")


def format_table(est: BudgetEstimate) -> str:
    """Per stage and member: expected time, band, confidence; then total, margin, verdict, checks, plan."""
    shape = shape_note(est.target)
    out = [
        f"bundle {est.bundle!r} on {est.target_name} ({est.target}{', ' + shape if shape else ''}), {est.rows:,} rows, "
        f"limit {fmt_s(est.time_limit_s)}, margin {fmt_s(est.margin_s)}",
        f"profile: {est.profile}",
        "",
        ITEMS_HEADER,
    ]
    out.extend(item_line(item) for item in est.items)
    band = f"{fmt_s(est.low_s)} - {fmt_s(est.high_s)}"
    out.append(f"{'total':<11} {'':<14} {'':<8} {'':>6} {fmt_s(est.expected_s):>9} {band:>21}  {est.confidence}")
    if est.lanes > 1:
        layout = est.lane_layout()
        out.append(f"on {est.lanes} lanes (one per GPU unless --lanes; the member stages overlap, the total counts "
                   "their span):")
        for k in range(est.lanes):
            ran = ", ".join(f"{m} {fmt_s(a)}-{fmt_s(b)}" for lane, m, a, b in layout if lane == k) or "idle"
            out.append(f"  lane {k}: {ran}")
    out.append("")
    out.extend(verdict_lines(est))
    run_wide = [c for c in est.blocking if not c.member]
    if est.plan is not None and run_wide:
        out.append("")
        out.append("best plan that fits: none; leaving members out does not lift the blocking pre-flight "
                   f"check{'s' if len(run_wide) > 1 else ''} [{'], ['.join(c.code for c in run_wide)}] above")
    elif est.plan is not None:
        p = est.plan
        out.append("")
        share = p.value / p.full_value if p.full_value else 0.0
        out.append(f"best plan that fits (planned on the high edges): value {p.value:.3g} of {p.full_value:.3g} "
                   f"({share:.0%}), {fmt_s(p.high_s)} at most")
        for k, (member, variant, batch, seconds) in enumerate(p.steps):
            lane = f"  on lane {p.lane_of(k)}" if p.lane_count > 1 else ""
            out.append(f"  run   {member:<14} {variant:<8} batch {batch:<6} {fmt_s(seconds):>9}{lane}")
        for member, old, new in p.degraded:
            (v_old, _, b_old), (v_new, _, b_new) = old.partition("@"), new.partition("@")
            if v_old == v_new:
                out.append(f"  batch {member}: {b_old} -> {b_new} (the profile's fastest batch size)")
            else:
                out.append(f"  degrade {member}: {old} -> {new}")
        for member, reason in p.dropped:
            out.append(f"  drop  {member}: {reason}")
        if not p.steps:
            out.append("  nothing fits in the time available")
        out.extend(f"  note: {n}" for n in p.notes)
    return "\n".join(out)


__all__ = ["ITEMS_HEADER", "fmt_s", "format_table", "item_line", "shape_note", "spare", "verdict_lines"]
