"""A PNG of the estimate's stages against the time limit (matplotlib, imported lazily).

The chart is the estimate's own timeline (:func:`timeline`): the stages
before the models (start-up, reading, the features hook) one after another,
then the members, then writing and exit, so the bars end exactly at the
expected total. On one lane the members' load, inference and ensembling
follow each other; on several (a T4 x2 is two) they run at the same time, so
the members take one row, their span, and under it a row per lane shows
which member runs on it when, its load darker (the estimate's lane layout,
:meth:`~packager.estimate.estimator.BudgetEstimate.lane_steps`): the lanes'
stages are never added up.

The axis is scaled to the work, in seconds, minutes or hours as fits, so a
25,000-row run that takes 20 minutes of a 9 hour limit is not a row of
invisible slivers. A limit within ``NEAR`` times the work is drawn on the
axis; a farther one is marked by an axis break at the right edge with its
value and the time to spare, and a strip under the chart shows the whole
limit to scale. Every bar is labelled with its time (right of its band where
that fits inside the axes, else left of the bar), so a stage too short to see
is still read; a member's name is written in its lane where it fits, and the
colours are in a legend beside the chart. Notes and legends sit right of the
axes, never over the bars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from packager.estimate.estimator import BudgetEstimate
from packager.estimate.render import fmt_s
from runtime.errors import PackagingError

_COLORS = {"install": "#9e9e9e", "python": "#b0bec5", "imports": "#90a4ae", "verify": "#607d8b",
           "startup": "#78909c", "load": "#8d6e63", "read": "#4db6ac", "features": "#26a69a", "inference": "#42a5f5",
           "ensembling": "#ab47bc", "writing": "#ffb74d", "postprocess": "#ff8a65", "exit": "#cfd8dc"}
_TOTAL, _MEMBERS = "#1e88e5", "#bbdefb"
_PALETTE = ("#42a5f5", "#66bb6a", "#ffa726", "#ab47bc", "#26c6da", "#ef5350", "#d4e157", "#8d6e63")
#: The stages before the members and after them, in the order of a run.
BEFORE = ("install", "python", "imports", "verify", "startup", "read", "features")
AFTER = ("writing", "postprocess", "exit")
#: A limit up to this many times the work's high edge is drawn on the axis; a farther one gets a break.
NEAR = 2.5
_PAD = 4  # points between a bar (or its band) and its label
_BACKING = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}  # over a limit line


@dataclass(frozen=True)
class Bar:
    """One bar of the chart, in seconds from the start of the run.

    ``low`` and ``high`` are the band of its length (the whisker at its end);
    ``load`` the part of a lane step that loads the member (0 elsewhere).
    """

    row: str
    start: float
    seconds: float
    low: float
    high: float
    color: str
    member: str = ""
    load: float = 0.0

    @property
    def end(self) -> float:
        return self.start + self.seconds


def timeline(est: BudgetEstimate) -> list[Bar]:
    """The bars of the chart, top to bottom: what the estimate's total adds up, in run order.

    The stage rows follow each other from 0 to :attr:`BudgetEstimate.expected_s`:
    the stages before the members, the members (on one lane: load, inference,
    ensembling; on several: one row of their span, then one bar per lane step),
    the stages after; last, the ``total`` row.
    """
    totals = est.stage_totals()
    bars: list[Bar] = []
    t = 0.0

    def stage(name: str) -> None:
        nonlocal t
        seconds, low, high = totals[name]
        if seconds > 0:
            bars.append(Bar(name, t, seconds, low, high, _COLORS[name]))
            t += seconds

    for name in BEFORE:
        stage(name)
    if est.lanes <= 1:
        for name in ("load", "inference", "ensembling"):
            stage(name)
    else:
        span = est.members_span()
        work = sum(totals[s][0] for s in ("load", "inference", "ensembling"))
        bars.append(Bar(f"members, {est.lanes} lanes\n({fmt_s(work)} of work)", t, span, est.members_span("low"),
                        est.members_span("high"), _MEMBERS))
        names = list(dict.fromkeys(m for _, m, _, _, _ in est.lane_steps()))
        for lane, member, a, loaded, b in est.lane_steps():
            bars.append(Bar(f"lane {lane}", t + a, b - a, b - a, b - a, _PALETTE[names.index(member) % len(_PALETTE)],
                            member=member, load=loaded - a))
        t += span
    for name in AFTER:
        stage(name)
    bars.append(Bar("total", 0.0, est.expected_s, est.low_s, est.high_s, _TOTAL))
    return bars


def axis_unit(seconds: float) -> tuple[float, str]:
    """``(seconds per unit, unit name)`` for an axis that runs to ``seconds``."""
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def axis_end(est: BudgetEstimate, bars: list[Bar] | None = None) -> tuple[float, bool]:
    """Where the main axis ends (seconds) and whether the limit is on it; past every bar and its band."""
    bars = timeline(est) if bars is None else bars
    work = max([est.high_s, est.expected_s, 1e-3, *(b.start + max(b.seconds, b.high) for b in bars)])
    if est.time_limit_s <= NEAR * work:
        return max(est.time_limit_s, work) * 1.05, True
    return work * 1.25, False


def draw_chart(est: BudgetEstimate):
    """The chart as a matplotlib figure (the caller closes it); see :func:`write_chart`.

    Raises:
        PackagingError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.artist import Artist
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise PackagingError("--chart needs matplotlib, which is not installed here: pip install matplotlib") from exc
    bars = timeline(est)
    rows = list(dict.fromkeys(b.row for b in bars))
    end, limit_on_axis = axis_end(est, bars)
    scale, unit = axis_unit(end)
    fig = plt.figure(figsize=(11, 1.9 + 0.42 * len(rows) + (0.0 if limit_on_axis else 1.0)))
    if limit_on_axis:
        ax, strip = fig.add_subplot(1, 1, 1), None
    else:
        grid = fig.add_gridspec(2, 1, height_ratios=[len(rows), 1.3], hspace=0.6)
        ax, strip = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax.set_xlim(0, end / scale)
    labels = []
    for bar in bars:
        y = rows.index(bar.row)
        if bar.member:
            if bar.load > 0:
                ax.barh(y, bar.load / scale, left=bar.start / scale, color=_COLORS["load"], edgecolor="black",
                        linewidth=0.5)
            ax.barh(y, (bar.seconds - bar.load) / scale, left=(bar.start + bar.load) / scale, color=bar.color,
                    edgecolor="black", linewidth=0.5)
            continue
        ax.barh(y, bar.seconds / scale, left=bar.start / scale, color=bar.color, edgecolor="black", linewidth=0.5)
        if bar.high - bar.low > 1e-9:
            ax.errorbar(bar.end / scale, y, xerr=[[max(bar.seconds - bar.low, 0.0) / scale],
                                                  [max(bar.high - bar.seconds, 0.0) / scale]],
                        fmt="none", ecolor="black", capsize=3, linewidth=1)
        labels.append((bar, y))
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    title = ax.set_title(f"{est.bundle} on {est.target_name}, {est.rows:,} rows\n{est.verdict}: expected "
                         f"{fmt_s(est.expected_s)} ({fmt_s(est.low_s)} - {fmt_s(est.high_s)}, confidence "
                         f"{est.confidence}), {_share(est.expected_s / est.time_limit_s)} the "
                         f"{fmt_s(est.time_limit_s)} limit", fontsize=10)
    handles: list[Artist] = []
    if limit_on_axis:
        handles += [ax.axvline(est.time_limit_s / scale, color="#c62828", linewidth=2,
                               label=f"time limit {fmt_s(est.time_limit_s)}"),
                    ax.axvline(est.available_s / scale, color="#c62828", linestyle="--", linewidth=1,
                               label=f"limit - margin ({fmt_s(est.margin_s)})")]
    names = list(dict.fromkeys(b.member for b in bars if b.member))
    if names:
        handles += [Patch(facecolor=_COLORS["load"], edgecolor="black", linewidth=0.5, label="load")]
        handles += [Patch(facecolor=next(b.color for b in bars if b.member == m), edgecolor="black", linewidth=0.5,
                          label=m) for m in names]
    fig.subplots_adjust(left=0.15, right=0.80, top=1 - 0.75 / fig.get_figheight(),
                        bottom=0.65 / fig.get_figheight())
    if not limit_on_axis:
        _far_limit(ax, strip, est, end)
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=8, frameon=False)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # the Agg canvas (matplotlib.use above) has it
    for bar, y in labels:
        _place_label(ax, renderer, bar, y, scale)
    for bar in bars:
        if bar.member:
            _name_in_lane(ax, renderer, bar, rows.index(bar.row), scale)
    _fit_title(title, fig, renderer)
    return fig


def write_chart(est: BudgetEstimate, path: str | os.PathLike) -> Path:
    """Draw the estimate's timeline against the limit (:func:`draw_chart`) and write it as a PNG.

    Raises:
        PackagingError: matplotlib is not installed.
    """
    fig = draw_chart(est)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _label(seconds: float) -> str:
    """A bar's time: the run log's format, with more digits below a second (so 0.0s is never shown)."""
    if seconds < 0.1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.0005 else "<1ms"
    if seconds < 1:
        return f"{seconds:.2f}s"
    return fmt_s(seconds)


def _place_label(ax, renderer, bar: Bar, y: float, scale: float) -> None:
    """The bar's time right of its band where that ends inside the axes; else left of the bar; else inside it."""
    text = _label(bar.seconds)
    right = max(bar.end, bar.start + bar.high) / scale
    box = ax.get_window_extent(renderer)
    label = ax.annotate(text, (right, y), xytext=(_PAD, 0), textcoords="offset points", va="center", ha="left",
                        fontsize=8, bbox=_BACKING, gid="time")
    if label.get_window_extent(renderer).x1 <= box.x1:
        return
    label.remove()
    left = min(bar.start, bar.start + bar.seconds - bar.low) / scale
    label = ax.annotate(text, (left, y), xytext=(-_PAD, 0), textcoords="offset points", va="center", ha="right",
                        fontsize=8, bbox=_BACKING, gid="time")
    if label.get_window_extent(renderer).x0 >= box.x0:
        return
    label.remove()  # a bar from the axis' start to (near) its end: written inside it, from its start (the band's
    # whisker is at its end), in a colour that reads on the bar
    ax.annotate(text, (bar.start / scale, y), xytext=(_PAD, 0), textcoords="offset points", va="center", ha="left",
                fontsize=8, color="white" if _dark(bar.color) else "black", fontweight="bold", gid="time")


def _share(share: float) -> str:
    """``5.0% of`` the limit; far past it, ``48x`` it."""
    return f"{share:.1%} of" if share < 10 else f"{share:,.0f}x"


def _dark(color: str) -> bool:
    """Whether white text reads better than black on ``color`` (``#rrggbb``), by its luminance."""
    r, g, b = (int(color[k:k + 2], 16) / 255 for k in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.55


def _name_in_lane(ax, renderer, bar: Bar, y: float, scale: float) -> None:
    """The member's name on its lane step where it fits inside the step's bar (the legend names every colour)."""
    label = ax.annotate(bar.member, ((bar.start + bar.load + bar.end) / 2 / scale, y), ha="center", va="center",
                        fontsize=7, gid="member")
    inner = (ax.transData.transform(((bar.start + bar.load) / scale, y))[0],
             ax.transData.transform((bar.end / scale, y))[0])
    extent = label.get_window_extent(renderer)
    if extent.x0 < inner[0] + 1 or extent.x1 > inner[1] - 1:
        label.remove()


def _fit_title(title, fig, renderer) -> None:
    """Shrink the title until it is as wide as the figure at most (a long CPU name)."""
    size = title.get_fontsize()
    while size > 6 and title.get_window_extent(renderer).width > fig.bbox.width * 0.98:
        size -= 0.5
        title.set_fontsize(size)


def _far_limit(ax, strip, est: BudgetEstimate, end: float) -> None:
    """A limit far beyond the work: an axis break at the right edge, annotated, and the whole limit to scale."""
    kw = dict(transform=ax.transAxes, color="black", clip_on=False, linewidth=1)
    for dx in (0.0, 0.012):  # the break: two slanted strokes across the right end of the axis
        ax.plot([1.0 + dx - 0.006, 1.0 + dx + 0.006], [-0.03, 0.03], **kw)
    spare = est.available_s - est.high_s
    ax.annotate(f"time limit {fmt_s(est.time_limit_s)}\n(margin {fmt_s(est.margin_s)})\n"
                f"{fmt_s(spare) + ' to spare' if spare >= 0 else fmt_s(-spare) + ' over'}\nat the high edge",
                xy=(1.0, 1.0), xycoords="axes fraction", xytext=(14, 0), textcoords="offset points", va="top",
                ha="left", fontsize=8, color="#c62828")
    scale, unit = axis_unit(est.time_limit_s)
    strip.barh(0, est.expected_s / scale, color=_TOTAL, edgecolor="black", linewidth=0.5)
    strip.barh(0, (est.high_s - est.expected_s) / scale, left=est.expected_s / scale, color="#90caf9")
    strip.axvspan(0, end / scale, color="#fff59d", alpha=0.6, label="range shown above")
    strip.axvline(est.time_limit_s / scale, color="#c62828", linewidth=2)
    strip.axvline(est.available_s / scale, color="#c62828", linestyle="--", linewidth=1)
    strip.set_xlim(0, est.time_limit_s * 1.02 / scale)
    strip.annotate(f"the run: {_label(est.expected_s)} ({est.expected_s / est.time_limit_s:.1%})",
                   xy=(est.high_s / scale, 0), xytext=(30, 0), textcoords="offset points", va="center",
                   fontsize=8, arrowprops=dict(arrowstyle="->", linewidth=0.8))
    strip.set_yticks([0], ["whole\nlimit"])
    strip.set_xlabel(f"{unit} (the whole {fmt_s(est.time_limit_s)} limit; shaded: the range shown above)", fontsize=8)
    strip.tick_params(labelsize=8)


__all__ = ["AFTER", "BEFORE", "NEAR", "Bar", "axis_end", "axis_unit", "draw_chart", "timeline", "write_chart"]
