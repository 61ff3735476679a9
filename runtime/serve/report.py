"""The serving run's report, written as the run goes: on Kaggle's rerun nothing runs after ``serve()``.

Every call appends one JSON line (:class:`CallRecord`) to the report file: the
batch's rows, each member's outcome (rung, rows, seconds, done / partial /
abandoned / failed / skipped and why), the call's latency, its response
deadline and slack, the share of the notebook's time it had, and how many
rows took the fallback. A summary (calls, rows, the slowest call, the least
slack, fallback rows, members' use) is rewritten beside it after each call,
so a notebook killed at any point leaves both.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.fileio import atomic_write
from runtime.progress import log


@dataclass
class CallRecord:
    """One call of the gateway, as the report keeps it."""

    batch: int
    rows: int
    started_s: float  # on the notebook's clock
    latency_s: float = 0.0
    deadline_s: float | None = None  # the response deadline (None: the first call, or none set)
    end_s: float | None = None  # when the call had to have its answer, on the notebook's clock
    share_s: float | None = None  # the time the call had
    slack_s: float | None = None  # deadline - latency (None without a deadline)
    load_s: float = 0.0  # loading the bundle and its members (the first call)
    members: list[dict[str, Any]] = field(default_factory=list)
    fallback_rows: int = 0
    events: list[str] = field(default_factory=list)


class ServeReport:
    """Appends each call's record to ``path`` (JSON lines) and keeps ``<path stem>.summary.json`` beside it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.summary_path = self.path.with_name(f"{self.path.stem}.summary.json")
        self.summary: dict[str, Any] = {"calls": 0, "rows": 0, "fallback_rows": 0, "slowest_call_s": 0.0,
                                        "least_slack_s": None, "load_s": 0.0, "members": {}, "events": 0}
        self._warned = False

    def add(self, record: CallRecord) -> None:
        """Record one call (a report that cannot be written is said once; the call is answered anyway)."""
        self._summarise(record)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a" if self.summary["calls"] > 1 else "w", encoding="utf-8") as f:  # a new run: a new file
                f.write(json.dumps(asdict(record)) + "\n")
            atomic_write(self.summary_path, json.dumps(self.summary, indent=1), fsync=False,
                         what="the serving report's summary", remedy="Give the report a writable folder.")
        except Exception as exc:  # noqa: BLE001 - the answer matters more than its report
            if not self._warned:
                log(f"could not write the serving report {self.path}: {exc}")
                self._warned = True

    def _summarise(self, r: CallRecord) -> None:
        s = self.summary
        s["calls"] += 1
        s["rows"] += r.rows
        s["fallback_rows"] += r.fallback_rows
        s["load_s"] += r.load_s
        s["events"] += len(r.events)
        if r.deadline_s is not None:
            s["slowest_call_s"] = max(s["slowest_call_s"], r.latency_s)
        if r.slack_s is not None:
            s["least_slack_s"] = r.slack_s if s["least_slack_s"] is None else min(s["least_slack_s"], r.slack_s)
        for m in r.members:
            use = s["members"].setdefault(m["member"], {})
            use[m["status"]] = use.get(m["status"], 0) + 1
            use["rows"] = use.get("rows", 0) + m["rows"]


def default_report_path() -> Path:
    """``serve_report.jsonl`` in the working folder (``/kaggle/working`` in a notebook)."""
    return Path(os.getcwd()) / "serve_report.jsonl"


__all__ = ["CallRecord", "ServeReport", "default_report_path"]
