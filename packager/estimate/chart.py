"""A PNG of the estimate's stages against the time limit (matplotlib, imported lazily)."""

from __future__ import annotations

import os
from pathlib import Path

from packager.estimate.estimator import STAGES, BudgetEstimate
from packager.estimate.render import fmt_s
from runtime.errors import PackagingError

_COLORS = {"install": "#9e9e9e", "startup": "#78909c", "load": "#8d6e63", "read": "#4db6ac",
           "inference": "#42a5f5", "ensembling": "#ab47bc", "writing": "#ffb74d"}


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
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(stages)))
    start = 0.0
    for row, stage in enumerate(stages):
        seconds, low, high = totals[stage]
        ax.barh(row, seconds, left=start, color=_COLORS[stage], edgecolor="black", linewidth=0.5)
        ax.errorbar(start + seconds, row, xerr=[[seconds - low], [high - seconds]], fmt="none",
                    ecolor="black", capsize=3, linewidth=1)
        start += seconds
    total = len(stages)
    ax.barh(total, est.expected_s, color="#1e88e5", edgecolor="black", linewidth=0.5)
    ax.errorbar(est.expected_s, total, xerr=[[est.expected_s - est.low_s], [est.high_s - est.expected_s]],
                fmt="none", ecolor="black", capsize=3)
    ax.axvline(est.time_limit_s, color="#c62828", linewidth=2, label="time limit")
    ax.axvline(est.available_s, color="#c62828", linestyle="--", linewidth=1, label="limit - margin")
    ax.set_yticks(range(total + 1), [*stages, "total"])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(est.time_limit_s, est.high_s) * 1.05)
    share = est.expected_s / est.time_limit_s
    ax.set_title(f"{est.bundle} on {est.target_name}, {est.rows:,} rows: {est.verdict} "
                 f"(expected {fmt_s(est.expected_s)}, {share:.1%} of the {fmt_s(est.time_limit_s)} limit)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


__all__ = ["write_chart"]
