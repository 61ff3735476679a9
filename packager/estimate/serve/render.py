"""The text ``ninefit estimate`` prints for a bundle that serves: startup, the first call, the later calls, each
batch size against its response deadline, the whole, the verdict and the paced plan."""

from __future__ import annotations

from packager.estimate.price.items import Item
from packager.estimate.render import ITEMS_HEADER, fmt_s, item_line, shape_note, spare, verdict_lines
from packager.estimate.serve.result import MAX_ROWS, ServeEstimate


def _total(label: str, items: tuple[Item, ...]) -> str:
    exp, low, high = (sum(getattr(i.estimate, e) for i in items) for e in ("seconds", "low", "high"))
    band = f"{fmt_s(low)} - {fmt_s(high)}"
    return f"{label:<42} {fmt_s(exp):>9} {band:>21}"


def format_serve(est: ServeEstimate) -> str:
    """The estimate of a serving run as text (see the module docstring)."""
    shape = shape_note(est.target)
    b = est.batches
    out = [
        f"bundle {est.bundle!r} serving Kaggle's evaluation API on {est.target_name} "
        f"({est.target}{', ' + shape if shape else ''}): {b.describe()}, limit {fmt_s(est.time_limit_s)}, "
        f"margin {fmt_s(est.margin_s)}",
        f"batches: {b.source}",
        f"profile: {est.profile}",
        "",
        ITEMS_HEADER,
        f"-- startup: from the notebook's start to the server taking calls (limit {fmt_s(est.startup_limit_s)})",
        *(item_line(i) for i in est.startup),
        _total("server up", est.startup) + f"  {spare(est.startup_limit_s - est.startup_s('high'))} (high edge)",
        f"-- the first call (no response deadline): the bundle verified, every member loaded and run on "
        f"a {b.typical:,}-row batch",
        *(item_line(i) for i in est.first_call),
        _total("first call", est.first_call),
        f"-- the {b.count - 1:,} later call{'s' if b.count != 2 else ''}: each member at the rung its batches run, "
        "and the calls' own cost",
        *(item_line(i) for i in est.later),
        _total("total", est.items) + f"  {est.confidence}",
        "",
        f"per batch: response deadline {fmt_s(est.response_timeout_s)} less a margin of {fmt_s(est.call_margin_s)} "
        "(the runtime's: runtime.serve.budget) and the call's own cost; members planned on the high edges",
        f"  {'rows':>8} {'batches':>8} {'own cost':>9} {'members':>9}  {'slack':>9}  runs / left out",
    ]
    for f in est.fits:
        runs = ", ".join(f"{m} {v} {fmt_s(e.high)}" for m, v, e in f.runs) or "no member"
        left = f"; left out: {', '.join(m for m, _ in f.left_out)}" if f.left_out else ""
        slack = est.response_timeout_s - est.call_margin_s - f.high_s
        out.append(f"  {f.rows:>8,} {f.count:>8,} {fmt_s(f.overhead.high):>9} {fmt_s(max(f.room_s, 0.0)):>9}  "
                   f"{fmt_s(slack):>9}  {runs}{left}")
    most: dict[str, list[str]] = {}
    for member, rung, n in est.largest:
        most.setdefault(member, []).append(f"{rung} {'none' if not n else f'{n:,}+' if n >= MAX_ROWS else f'{n:,}'}")
    if most:
        out.append("largest batch a call fits, each rung alone (high edge): "
                   + "; ".join(f"{m} {', '.join(v)}" for m, v in most.items()))
    out.append("")
    out.extend(verdict_lines(est))
    if est.shares is not None:
        out.append("")
        out.append(f"paced plan (planned on the high edges; the run re-plans each call from what it measures): value "
                   f"{est.value:.3g} of {est.full_value:.3g} ({est.delivered:.0%})")
        for member, rung, fraction in est.shares:
            share = "every row" if fraction >= 1 - 1e-9 else f"{fraction:.0%} of each batch's rows"
            out.append(f"  run   {member:<14} {rung:<8} on {share}")
        ran = {m for m, _, _ in est.shares}
        out.extend(f"  sits out {m}" for m in dict.fromkeys(i.member for i in est.first_call if i.member)
                   if m not in ran)
    elif est.answered is not None:
        out.append("")
        out.append(f"no paced plan: the run cannot pace (declare expected_rows or expected_batches in [serve]); about "
                   f"{est.answered:,} of {b.count:,} batches get their members, the rest the fallback values")
    return "\n".join(out)


__all__ = ["format_serve"]
