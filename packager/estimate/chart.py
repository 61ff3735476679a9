"""A PNG of the estimate's stages against the time limit (matplotlib, imported lazily).

The axis is scaled to the work, in seconds, minutes or hours as fits, so a
25,000-row run that takes 20 minutes of a 9 hour limit is not a row of
invisible slivers. A limit within ``NEAR`` times the work is drawn on the
axis; a farther one is marked by an axis break at the right edge with its
value and the time to spare, and a strip under the chart shows the whole
limit to scale. Every bar is labelled with its time, so a stage too short to
see is still read.
"""

from __future__ import annotations

import os
from pathlib import Path

from packager.estimate.costing import STAGES
from packager.estimate.estimator import BudgetEstimate
from packager.estimate.render import fmt_s
from runtime.errors import PackagingError

_COLORS = {"install": "#9e9e9e", "python": "#b0bec5", "imports": "#90a4ae", "verify": "#607d8b",
           "startup": "#78909c", "load": "#8d6e63", "read": "#4db6ac", "features": "#26a69a", "inference": "#42a5f5",
           "ensembling": "#ab47bc", "writing": "#ffb74d", "postprocess": "#ff8a65", "exit": "#cfd8dc"}
#: A limit up to this many times the work's high edge is drawn on the axis; a farther one gets a break.
NEAR = 2.5


def axis_unit(seconds: float) -> tuple[float, str]:
    """``(seconds per unit, unit name)`` for an axis that runs to ``seconds``."""
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def axis_end(est: BudgetEstimate) -> tuple[float, bool]:
    """Where the main axis ends (seconds) and whether the limit is on it."""
    work = max(est.high_s, est.expected_s, 1e-3)
    if est.time_limit_s <= NEAR * work:
        return max(est.time_limit_s, work) * 1.05, True
    return work * 1.25, False


def write_chart(est: BudgetEstimate, path: str | os.PathLike) -> Path:
    """Draw each stage as a segment of one timeline (with its band) against the limit.

    Raises:
        PackagingError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PackagingError("--chart needs matplotlib, which is not installed here: pip install matplotlib") from exc
    totals = est.stage_totals()
    stages = [s for s in STAGES if totals[s][0] > 0]
    end, limit_on_axis = axis_end(est)
    scale, unit = axis_unit(end)
    rows = len(stages) + 1
    fig = plt.figure(figsize=(10, 1.6 + 0.42 * rows + (0.0 if limit_on_axis else 0.9)))
    if limit_on_axis:
        ax = fig.add_subplot(1, 1, 1)
        strip = None
    else:
        grid = fig.add_gridspec(2, 1, height_ratios=[rows, 1.3], hspace=0.55)
        ax, strip = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])

    def label(x: float, y: float, seconds: float) -> None:
        ax.annotate(_label(seconds), (x / scale, y), xytext=(4, 0), textcoords="offset points",
                    va="center", ha="left", fontsize=8, annotation_clip=False)

    start = 0.0
    for row, stage in enumerate(stages):
        seconds, low, high = totals[stage]
        ax.barh(row, seconds / scale, left=start / scale, color=_COLORS[stage], edgecolor="black", linewidth=0.5)
        ax.errorbar((start + seconds) / scale, row, xerr=[[(seconds - low) / scale], [(high - seconds) / scale]],
                    fmt="none", ecolor="black", capsize=3, linewidth=1)
        label(start + high, row, seconds)
        start += seconds
    total = len(stages)
    ax.barh(total, est.expected_s / scale, color="#1e88e5", edgecolor="black", linewidth=0.5)
    ax.errorbar(est.expected_s / scale, total, xerr=[[(est.expected_s - est.low_s) / scale],
                                                     [(est.high_s - est.expected_s) / scale]],
                fmt="none", ecolor="black", capsize=3)
    label(est.high_s, total, est.expected_s)
    ax.set_yticks(range(total + 1), [*stages, "total"])
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_xlim(0, end / scale)
    if limit_on_axis:
        ax.axvline(est.time_limit_s / scale, color="#c62828", linewidth=2, label=f"time limit {fmt_s(est.time_limit_s)}")
        ax.axvline(est.available_s / scale, color="#c62828", linestyle="--", linewidth=1,
                   label=f"limit - margin ({fmt_s(est.margin_s)})")
        ax.legend(loc="lower right", fontsize=8)
    else:
        _far_limit(ax, strip, est, end)
    share = est.expected_s / est.time_limit_s
    ax.set_title(f"{est.bundle} on {est.target_name}, {est.rows:,} rows: {est.verdict} "
                 f"(expected {fmt_s(est.expected_s)}, {share:.1%} of the {fmt_s(est.time_limit_s)} limit)", fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.86, top=0.9, bottom=0.1 if limit_on_axis else 0.08)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


def _label(seconds: float) -> str:
    """A bar's time: the run log's format, with more digits below a second (so 0.0s is never shown)."""
    if seconds < 0.1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.0005 else "<1ms"
    if seconds < 1:
        return f"{seconds:.2f}s"
    return fmt_s(seconds)


def _far_limit(ax, strip, est: BudgetEstimate, end: float) -> None:
    """A limit far beyond the work: an axis break at the right edge, annotated, and the whole limit to scale."""
    kw = dict(transform=ax.transAxes, color="black", clip_on=False, linewidth=1)
    for dx in (0.0, 0.012):  # the break: two slanted strokes across the right end of the axis
        ax.plot([1.0 + dx - 0.006, 1.0 + dx + 0.006], [-0.03, 0.03], **kw)
    spare = est.available_s - est.high_s
    ax.annotate(f"time limit {fmt_s(est.time_limit_s)}\n(margin {fmt_s(est.margin_s)})\n"
                f"{fmt_s(spare)} to spare\nat the high edge", xy=(1.0, 0.5), xycoords="axes fraction",
                xytext=(14, 0), textcoords="offset points", va="center", ha="left", fontsize=8, color="#c62828")
    scale, unit = axis_unit(est.time_limit_s)
    strip.barh(0, est.expected_s / scale, color="#1e88e5", edgecolor="black", linewidth=0.5)
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


__all__ = ["NEAR", "axis_end", "axis_unit", "write_chart"]
