"""A serving rehearsal told for a terminal: the verdict, the startup, each call, the members' use.

Each call's line joins the gateway's view (rows, latency over the whole round
trip, the response deadline, slack) with the predictor's (the members and
rungs that ran, the rows they covered, the rows that took the fallback).
Past :data:`ALL_CALLS` calls, the first calls and those with the least slack
are shown; every call is in the kept ``latency.jsonl`` and
``serve_report.jsonl``.
"""

from __future__ import annotations

import textwrap
from typing import Any

#: Up to this many calls, every call gets a line.
ALL_CALLS = 40
#: Past it: the first calls, and the calls with the least slack.
FIRST_CALLS = 10
TIGHTEST_CALLS = 10


def _seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}s"


def _members(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "(no predictor record)"
    parts = [f"{m['member']} {m.get('variant') or '-'} {m['rows']} {m['status']}" for m in rec.get("members") or ()]
    return "; ".join(parts) or "(no member ran)"


def call_lines(calls: tuple[dict[str, Any], ...]) -> list[str]:
    """One line per call shown (all of them, or the first and the tightest)."""
    shown = list(range(len(calls)))
    if len(calls) > ALL_CALLS:
        timed = [k for k in range(FIRST_CALLS, len(calls)) if calls[k].get("slack_s") is not None]
        tight = sorted(timed, key=lambda k: calls[k]["slack_s"])[:TIGHTEST_CALLS]
        shown = sorted(set(range(FIRST_CALLS)) | set(tight))
    lines = [f"  {'call':>5}  {'batch':<16} {'rows':>6}  {'latency':>9}  {'deadline':>9}  {'slack':>9}  "
             f"{'fallback':>8}  members (rung, rows, outcome)"]
    last = -1
    for k in shown:
        if k != last + 1:
            lines.append(f"  {'...':>5}  ({k - last - 1} call(s) not shown)")
        c, p = calls[k], calls[k].get("predictor")
        fallback = "-" if p is None else str(p.get("fallback_rows", 0))
        late = f"  {c['error']}" if c.get("error") else ""
        lines.append(f"  {c['batch']:>5}  {c['key'][:16]:<16} {c['rows']:>6}  {_seconds(c.get('latency_s')):>9}  "
                     f"{_seconds(c.get('deadline_s')):>9}  {_seconds(c.get('slack_s')):>9}  {fallback:>8}  "
                     f"{_members(p)}{late}")
        last = k
    if last != len(calls) - 1:
        lines.append(f"  {'...':>5}  ({len(calls) - 1 - last} call(s) not shown)")
    return lines


def _startup(result: Any) -> list[str]:
    info = (result.gateway or {}).get("ninefit") or {}
    lines = [f"server: {result.server}"]
    if info.get("startup_s") is not None:
        lines.append(f"startup: the server took its first call {info['startup_s']:.2f} s after the gateway started "
                     f"(limit {info['startup_limit_s']:g} s)")
    elif info:
        lines.append(f"startup: no server took a call (limit {info.get('startup_limit_s', 0):g} s)")
    if info.get("batches") is not None:
        order = (f"random order, seed {result.seed} (`--seed {result.seed}` repeats it)" if result.seed is not None
                 else "file order")
        lines.append(f"calls: {info['answered']} of {info['batches']} answered and valid, {info['rows']} rows; "
                     f"{order}; response deadline {info['response_timeout_s']:g} s after the first call")
    first = result.calls[0] if result.calls else None
    if first is not None:
        load = (first.get("predictor") or {}).get("load_s")
        lines.append(f"first call: {_seconds(first.get('latency_s'))} (no deadline)"
                     + (f"; loading the bundle and its members took {load:.3f} s" if load is not None else ""))
    return lines


def _totals(result: Any) -> list[str]:
    info = (result.gateway or {}).get("ninefit") or {}
    lines = []
    if info.get("least_slack_s") is not None:
        lines.append(f"slowest call {info['slowest_s']:.3f} s, least slack {info['least_slack_s']:.3f} s "
                     f"(deadline {info['response_timeout_s']:g} s)")
    s = result.serve_summary
    if s:
        lines.append(f"fallback rows: {s.get('fallback_rows', 0)} of {s.get('rows', 0)}")
        for member, use in sorted((s.get("members") or {}).items()):
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(use.items()) if k != "rows")
            lines.append(f"member {member}: {use.get('rows', 0)} rows; calls {outcomes}")
    return lines


def batch_table(result: Any) -> str:
    """The whole summary of a :class:`~packager.offline.serve_simulate.ServeSimulationResult`."""
    head = "verdict: passed" if result.passed else f"verdict: {result.verdict} (Kaggle: {result.kaggle_failure or '-'})"
    lines = [head]
    if result.details:
        lines.append(textwrap.indent(result.details, "  "))
    lines.append(f"notebook ran {result.seconds:.1f} s; network isolation: {result.isolation}")
    lines += _startup(result)
    if result.calls:
        lines += call_lines(result.calls)
    lines += _totals(result)
    if result.submission:
        lines.append(f"submission: {result.submission}")
    if result.notebook:
        lines.append(f"executed notebook: {result.notebook}")
    return "\n".join(lines)


__all__ = ["ALL_CALLS", "batch_table", "call_lines"]
