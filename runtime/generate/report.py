"""The report of a generative run: per item where its time went (samples, tokens, seconds, banked or borrowed, the
vote, why it stopped, the answer), the measured costs, and the totals against the limit."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.fileio import atomic_write
from runtime.progress import format_seconds


@dataclass
class GenerationReport:
    bundle: str
    rows: int
    submission: str
    model: str = ""
    engine: str = ""
    time_limit_s: float | None = None
    margin_s: float = 0.0
    reserve_s: float = 0.0
    started_at_s: float = 0.0
    finished_at_s: float = 0.0
    slack_s: float | None = None
    seconds: float = 0.0
    load_s: float = 0.0
    mode: str = "bank"  # bank (time banking, early agreement) or fixed (an equal fixed share per item)
    covered_rows: int = 0  # rows answered by the model (not the fallback)
    resumed: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    damage: list[dict[str, str]] = field(default_factory=list)
    failure: str = ""
    failure_reason: str = ""
    report_path: str = ""
    work_dir: str = ""
    members: list[Any] = field(default_factory=list)  # none: the CLI's ensemble checks see no member

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("members")
        d["totals"] = self.totals()
        return d

    def write_json(self, path: str | os.PathLike) -> None:
        atomic_write(path, json.dumps(self.to_dict(), indent=2), fsync=False, what="the run report",
                     remedy="Give --report a path on a disk with room, or free some space there.")

    def totals(self) -> dict[str, Any]:
        items = self.items
        stops: dict[str, int] = {}
        for it in items:
            stops[it.get("stop", "")] = stops.get(it.get("stop", ""), 0) + 1
        return {"items": len(items), "samples": sum(it.get("samples", 0) for it in items),
                "new_tokens": sum(it.get("new_tokens", 0) for it in items),
                "fallback_answers": sum(1 for it in items if it.get("fallback")),
                "seconds": sum(it.get("seconds", 0.0) for it in items),
                "borrowed_s": sum(max(0.0, -it.get("banked_s", 0.0)) for it in items), "stops": stops}

    def table(self) -> str:
        # bank: the item's share less its seconds (> 0: banked for the items after it; < 0: borrowed). Shares grow
        # with what earlier items banked, so the banked column does not add up to time saved (the slack says that).
        lines = [f"{'item':<12} {'samples':>7} {'tokens':>7} {'seconds':>8} {'share':>7} {'bank':>7}  "
                 f"{'stop':<8} {'answer':<10} vote"]
        for it in self.items:
            vote = ", ".join(f"{a}:{n}" for a, n in list(it.get("vote", {}).items())[:4])
            answer = str(it.get("answer", "")) + (" (fallback)" if it.get("fallback") else "")
            lines.append(f"{str(it['id'])[:12]:<12} {it.get('samples', 0):>7} {it.get('new_tokens', 0):>7} "
                         f"{it.get('seconds', 0.0):>8.2f} {it.get('share_s', 0.0):>7.2f} {it.get('banked_s', 0.0):>+7.2f}"
                         f"  {it.get('stop', ''):<8} {answer:<10} {vote}")
        t = self.totals()
        lines.append(f"{self.covered_rows}/{self.rows} rows answered by {self.model or 'the model'} ({self.engine}, "
                     f"{self.mode}); {t['samples']} samples, {t['new_tokens']} new tokens, {t['fallback_answers']} "
                     f"fallback answer(s); the items used {t['seconds']:.1f}s ({t['borrowed_s']:.1f}s borrowed beyond "
                     f"their shares); {self.seconds:.2f}s in all -> {self.submission}")
        together = max((it.get("together", 1) for it in self.items), default=1)
        if together > 1:
            lines.append(f"items answered up to {together} together (batch_items): their samples shared each engine "
                         "call; an item's seconds are its part of each round")
        if self.resumed:
            lines.append(f"{self.resumed} item(s) resumed from {self.work_dir} (answered by an earlier run)")
        if self.costs.get("measured"):
            rates = ", ".join(f"batch {b}: {r:,.0f}" for b, r in self.costs["decode_tokens_per_s"].items())
            lines.append(f"measured: prefill {self.costs['prefill_s_per_token'] * 1e3:.3g} ms/token; decode tokens/s "
                         f"{rates}; engine load {self.load_s:.2f}s")
        if self.time_limit_s is not None and self.slack_s is not None:
            lines.append(f"limit {format_seconds(self.time_limit_s)} (margin {format_seconds(self.margin_s)}, reserve "
                         f"{format_seconds(self.reserve_s)}); finished at {self.finished_at_s:.1f}s since start, "
                         f"slack {self.slack_s:.1f}s")
        lines += [f"event: {e}" for e in self.events]
        return "\n".join(lines)

    def brief(self) -> str:
        """The totals, the limit and the events: :meth:`table` without the per-item lines."""
        return "\n".join(self.table().splitlines()[1 + len(self.items):])


__all__ = ["GenerationReport"]
