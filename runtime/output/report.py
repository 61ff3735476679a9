"""The run report: what each member did, the memory peaks, the slack, and the verdict.

Written as JSON at the end of the run (also when it raised; by default
``<submission stem>.run_report.json`` beside the submission) and printed as
a table. Damaged bundle files, and what each took out of the run, are in
both. Where the run would have failed on Kaggle, :func:`kaggle_failure`
names the failure the user would have seen there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.bundle import DAMAGED_REASON
from runtime.fileio import atomic_write
from runtime.progress import format_gib, format_seconds, quiet_keeps

#: Member statuses in the report.
MEMBER_STATUSES = ("pending", "done", "partial", "degraded", "dropped", "failed")

#: Kaggle's names for the failures a run can be told apart by.
TIMEOUT = "Notebook Timeout"
EXCEEDED_COMPUTE = "Notebook Exceeded Allowed Compute"
CSV_NOT_FOUND = "Submission CSV Not Found"
THREW_EXCEPTION = "Notebook Threw Exception"

#: What a Kaggle notebook gets (KAGGLE.md: about 30 GB RAM, about 20 GB output disk; uncertain).
KAGGLE_RAM_BYTES = 30 * 10**9
KAGGLE_DISK_BYTES = 20 * 10**9


@dataclass
class MemberReport:
    """One member's part of the run.

    Time is booked in three disjoint parts, each summed over every (re)load of
    the member in this run (resumed chunks cost nothing):

    * ``load_seconds``: building the runner and ``activate()`` (session or
      engine creation), nothing else;
    * ``warmup_seconds``: the first batch after each load (``warmup_rows``
      rows), which pays lazy initialisation and is left out of throughput;
    * ``seconds``: every other batch (reading and preprocessing its rows,
      inference with each TTA pass, the output activation), for
      ``rows_timed`` rows; ``rows_per_s`` is that ratio (a chunk whose save
      failed was still inferred: its rows count there, not in ``rows_computed``).

    In none of them: an attempt that ran out of memory (the batch is retried
    smaller and counted then), checking outputs, saving chunks, and writing
    the submission.
    """

    name: str
    variant: str = ""  # the variant that covered most rows
    backend: str = ""
    rows: int = 0  # rows covered, resumed chunks included
    seconds: float = 0.0  # inference seconds in this run, warm-up batches excluded
    load_seconds: float = 0.0  # runner load + activate, summed over loads
    warmup_seconds: float = 0.0  # first batch after each load
    warmup_rows: float = 0  # rows in those batches (part of rows_computed; a text member's are fractions)
    rows_timed: float = 0  # rows of the batches booked in ``seconds`` (every batch after the first after a load)
    status: str = "pending"  # one of MEMBER_STATUSES
    reason: str = ""
    weight: float = 0.0
    value: float = 0.0
    variants: list[str] = field(default_factory=list)  # every variant that covered rows, best first
    rows_computed: int = 0  # rows predicted in this run (not resumed)
    chunks_resumed: int = 0
    chunks_computed: int = 0
    batch_size: int = 0  # last batch size used (halved on out-of-memory)
    oom_retries: int = 0
    s_per_row: float | None = None  # last live estimate
    # Each change of the plan's decision for this member, with the costs it was made on:
    # {"at_s", "decision" (probe / no probe / run / run partial / drop / stop / prune), "variant",
    #  "s_per_row", "expected_s", "seconds_left" (to the limit), "margin_s", "reason"}.
    decisions: list[dict[str, Any]] = field(default_factory=list)
    missing_policy: str = "skip"  # what it did with non-finite inputs: skip / error / fill
    missing_columns: dict[str, int] = field(default_factory=dict)  # its input columns with non-finite values -> rows
    rows_skipped_input: int = 0  # rows of its finished chunks left out: non-finite inputs (policy "skip")
    rows_nonfinite_output: int = 0  # rows of its finished chunks left out: non-finite outputs
    rows_unfed: int = 0  # rows of its finished chunks left out: the features hook failed on them (computed on zeros)
    # Text members: the test's length distribution (runtime.data.text.length_stats) and, for the
    # batches this run computed, "batches", "padded_tokens", "real_tokens", "padding_waste".
    text: dict[str, Any] | None = None
    backend_used: str = ""  # the backend (fallback-chain step) it really ran on, e.g. "torch-cuda"
    device: str = ""  # "gpu" or "cpu": where that backend ran
    fallbacks: list[str] = field(default_factory=list)  # "step: reason" for each backend passed over
    gpu_peak_bytes: int | None = None  # its peak GPU memory (CUDA only), see gpu_memory_source
    gpu_memory_source: str = ""  # "torch.cuda.max_memory_allocated" or "nvml device used (all processes)"

    @property
    def rows_per_s(self) -> float:
        """Steady throughput: rows computed after warm-up per second of ``seconds``."""
        return self.rows_timed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunReport:
    """Everything a run did; ``to_dict`` is the JSON written next to the submission."""

    bundle: str
    rows: int
    submission: str
    members: list[MemberReport] = field(default_factory=list)
    seconds: float = 0.0  # wall seconds of run() itself
    covered_rows: int = 0
    time_limit_s: float | None = None
    margin_s: float = 0.0
    reserve_s: float = 0.0
    started_at_s: float = 0.0  # clock reading (seconds since the notebook started) when run() began
    finished_at_s: float = 0.0  # ... when the final submission was on disk
    slack_s: float | None = None  # deadline - finished_at_s; None without a limit
    weight_delivered: float = 0.0  # share of the ensemble weight delivered, rows considered
    value_delivered: float = 0.0  # same, by value (variant value factors applied)
    submission_writes: int = 0
    chunks_resumed: int = 0
    replans: int = 0
    peak_rss_bytes: int = 0
    peak_ram_used_bytes: int | None = None
    ram_limit_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    gpu_total_bytes: int | None = None
    work_dir: str = ""  # the checkpoints of this run (WORK/checkpoints/<key>)
    report_path: str = ""  # where this report is written
    checkpoint_bytes: int = 0
    damage: list[dict[str, str]] = field(default_factory=list)  # damaged bundle files: file, problem, effect
    events: list[str] = field(default_factory=list)
    failure: str = ""  # a Kaggle failure name, where the run would have failed there
    failure_reason: str = ""
    # Where it ran (runtime.machine.describe_machine): cpu_model, cores, gpus (NVML's names); `ninefit estimate
    # --calibrate` folds a report only into the calibration of a target with that device.
    machine: dict[str, Any] = field(default_factory=dict)
    # The machine factor the priors were scaled by (runtime.schedule.costs.CostModel.factor_summary): value, ratios (each
    # founding member's first batch / profile), caveat ("noisy: ..." where it rests on noisy measurements).
    machine_factor: dict[str, Any] = field(default_factory=dict)
    # The models ran on the CPU although the bundle targets a GPU and a GPU is here (runtime.gpu.device_mismatch).
    device_warnings: list[str] = field(default_factory=list)
    # Per lane (runtime.execute.lanes): name, kind, device_id, threads, busy_s, busy_share (of the run's seconds), rows,
    # steps [{kind (probe / run / partial), member, variant, rows, start_s, end_s}], retired {member: reason}.
    lanes: list[dict[str, Any]] = field(default_factory=list)
    lane_rule: str = ""  # why this many lanes
    peak_gpu_by_device: dict[int, int] = field(default_factory=dict)  # GPU memory peak of each lane's device
    # The data path (runtime.data.pipeline.StageTimes): seconds per stage - read_s, decode_s, preprocess_s (prepared
    # ahead, summed over worker threads), infer_s, write_s, wait_s (inference waiting for data) and hidden_s
    # (preparation not waited for); images_decoded, chunks_prepared, depth, workers, decoder, table, spool.
    stages: dict[str, Any] = field(default_factory=dict)
    # The features hook's run: {"hook", "seconds" (in the hook), "rows_failed"}; empty without one.
    features: dict[str, Any] = field(default_factory=dict)
    # The postprocess hook at the final write: {"hook", "seconds" (in the hook, every write), "rows_failed"}.
    postprocess: dict[str, Any] = field(default_factory=dict)
    # A generative bundle's run (runtime.generate.GenerationReport.to_dict(), its printed table under "table"); empty
    # for an ensemble.
    generation: dict[str, Any] = field(default_factory=dict)

    def member(self, name: str) -> MemberReport:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for m, src in zip(d["members"], self.members):
            m["rows_per_s"] = src.rows_per_s
        return d

    def write_json(self, path: str | os.PathLike) -> None:
        """Write the JSON report atomically."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2), fsync=False, what="the run report",
                     remedy="Give --report a path on a disk with room, or free some space there.")

    def brief(self) -> str:
        """What ``ninefit run --quiet`` prints: each member not done (its status and reason), then the lines of
        :meth:`table` that give the result or flag trouble: rows covered and the submission's path, the limit
        and slack, non-finite values, failing hooks, damaged files, a Kaggle failure, a CPU fallback."""
        lines = [f"{m.name}: {m.status}" + (f": {m.reason}" if m.reason else "") for m in self.members
                 if m.status != "done"]
        damage = False
        for line in self.table().splitlines():
            damage = line.startswith("DAMAGED") or (damage and line.startswith("  "))
            if (damage or " rows covered by a model" in line or line.startswith(("limit ", "ON KAGGLE", "WARNING"))
                    or (not line.startswith(" ") and quiet_keeps(line))):
                lines.append(line)
        return "\n".join(lines)

    def table(self) -> str:
        """A readable summary: one line per member, then the totals."""
        lines = [f"{'member':<16} {'variant':<12} {'status':<9} {'rows':>8} {'seconds':>9} {'rows/s':>10}  reason"]
        for m in self.members:
            variant = "+".join(m.variants) or m.variant or "-"
            lines.append(
                f"{m.name:<16} {variant:<12} {m.status:<9} {m.rows:>8} {m.seconds:>9.2f} {m.rows_per_s:>10,.0f}  {m.reason}"
            )
        for m in self.members:
            if m.missing_columns:
                cols = ", ".join(f"{c} ({n} row{'s' if n > 1 else ''})" for c, n in list(m.missing_columns.items())[:8])
                more = f" and {len(m.missing_columns) - 8} more column(s)" if len(m.missing_columns) > 8 else ""
                what = (f"{m.rows_skipped_input} row(s) skipped" if m.missing_policy == "skip"
                        else "given to the model (missing = model)" if m.missing_policy == "model"
                        else f"filled (missing = {m.missing_policy})")
                lines.append(f"{m.name}: non-finite inputs in {cols}{more}: {what}")
            if m.rows_nonfinite_output:
                lines.append(f"{m.name}: non-finite outputs in {m.rows_nonfinite_output} row(s): those rows left out")
            if m.rows_unfed:
                lines.append(f"{m.name}: {m.rows_unfed} row(s) ran without their features (the features hook failed "
                             "on them): those rows left out")
        for name, hook in (("features", self.features), ("postprocess", self.postprocess)):
            if hook.get("rows_failed"):
                loud = "WARNING, " if hook["rows_failed"] * 2 > self.rows else ""
                lines.append(f"{loud}{name} hook {hook['hook']!r} failed on {hook['rows_failed']} of {self.rows} "
                             "row(s): they hold the fallback's values (the events say why)")
        lines.append(
            f"{self.covered_rows}/{self.rows} rows covered by a model; ensemble weight delivered "
            f"{100 * self.weight_delivered:.1f}%; {self.seconds:.2f}s in all -> {self.submission}"
        )
        if self.time_limit_s is not None:
            lines.append(
                f"limit {format_seconds(self.time_limit_s)} (margin {format_seconds(self.margin_s)}, reserve "
                f"{format_seconds(self.reserve_s)}); "
                f"finished at {self.finished_at_s:.1f}s since start, slack {self.slack_s:.1f}s"
            )
        for m in self.members:
            if m.text:
                lines.append(text_line(m.name, m.text))
        mem = f"peak RAM {format_gib(self.peak_rss_bytes)} (process)"
        if self.peak_gpu_bytes is not None:
            mem += f", peak GPU memory {format_gib(self.peak_gpu_bytes)} of {format_gib(self.gpu_total_bytes)}"
        if len(self.peak_gpu_by_device) > 1:
            mem += " (" + ", ".join(f"GPU {d}: {format_gib(b)}" for d, b in sorted(self.peak_gpu_by_device.items())) + ")"
        if self.chunks_resumed:
            mem += f"; {self.chunks_resumed} chunk(s) resumed from {self.work_dir}"
        lines.append(mem)
        if len(self.lanes) > 1 or "intra-op thread" in self.lane_rule:  # a CPU target's threads are said
            lines.append(f"{len(self.lanes)} lane{'s' if len(self.lanes) > 1 else ''} ({self.lane_rule}):")
            lines += [lane_line(lane) for lane in self.lanes]
        if self.stages:
            lines.append(stage_line(self.stages))
        if any(m.decisions for m in self.members):
            lines.append("decisions (clock s: decision variant, s/row used, seconds left to the limit):")
            for m in self.members:
                for d in m.decisions:
                    spr = "?" if d["s_per_row"] is None else f"{d['s_per_row'] * 1e3:.3g} ms/row"
                    lines.append(f"  {m.name:<14} {d['at_s']:>8.1f}  {d['decision']} {d['variant'] or ''}".rstrip()
                                 + f", {spr}, " + (f"{d['seconds_left']:.1f}s left" if d["seconds_left"] < 1e8 else "no limit")
                                 + (f": {d['reason']}" if d["reason"] else ""))
        if self.machine_factor.get("caveat"):
            ratios = ", ".join(f"{m} x{r:.2f}" for m, r in self.machine_factor.get("ratios", {}).items())
            lines.append(f"machine factor {self.machine_factor['value']:.2f} (first batches: {ratios}) is a guess, "
                         f"{self.machine_factor['caveat']}: the costs of rungs not measured here rest on it")
        if self.damage:
            lines.append(f"DAMAGED BUNDLE: {len(self.damage)} file(s) failed their checksum; the run went on without "
                         "what they belong to:")
            lines += [f"  {d['file']}: {d['problem']} -> {d['effect']}" for d in self.damage]
            if self.members and all(m.reason.startswith(DAMAGED_REASON) for m in self.members):
                lines.append("  no member could run: every member's files are damaged, so the submission holds the "
                             "fallback's values (the declared fallback, else the sample submission's). Re-upload the "
                             "bundle exactly as `ninefit package` wrote it.")
        used = [f"{m.name} on {m.backend_used}" + (f" ({format_gib(m.gpu_peak_bytes)} GPU peak)" if m.gpu_peak_bytes else "")
                for m in self.members if m.backend_used]
        if used:
            lines.append("backends: " + ", ".join(used))
        if self.failure:
            lines.append(f"ON KAGGLE THIS RUN WOULD FAIL: {self.failure} - {self.failure_reason}")
        for warning in self.device_warnings:
            lines.append(f"WARNING, RAN ON THE CPU: {warning}")
        return "\n".join(lines)


def lane_line(lane: dict[str, Any]) -> str:
    """One lane of the run: how busy it was, and what ran on it when (members in the order they ran)."""
    ran: dict[str, int] = {}
    for s in lane["steps"]:
        key = f"{s['member']}/{s['variant']}"
        ran[key] = ran.get(key, 0) + s["rows"]
    when = ", ".join(f"{s['member']}/{s['variant']} {s['rows']} rows {s['start_s']:.1f}-{s['end_s']:.1f}s"
                     + (" (probe)" if s["kind"] == "probe" else "") for s in lane["steps"][:6])
    more = f" ... (+{len(lane['steps']) - 6} steps)" if len(lane["steps"]) > 6 else ""
    retired = "; retired: " + ", ".join(lane["retired"]) if lane.get("retired") else ""
    return (f"  lane {lane['name']}: busy {lane['busy_s']:.1f}s ({100 * lane['busy_share']:.0f}%), {lane['rows']} rows: "
            f"{when}{more}{retired}")


def stage_line(stages: dict[str, Any]) -> str:
    """One line on the data path: seconds per stage and how much of the preparation was hidden."""
    parts = ", ".join(f"{k[:-2]} {stages.get(k, 0.0):.2f}s" for k in ("read_s", "decode_s", "preprocess_s", "infer_s",
                                                                        "write_s"))
    line = (f"stages: {parts}; waited {stages.get('wait_s', 0.0):.2f}s for data, {stages.get('hidden_s', 0.0):.2f}s "
            f"hidden by prefetch (depth {stages.get('depth')}, {stages.get('workers')} worker(s))")
    if stages.get("images_decoded"):
        line += f"; {stages['images_decoded']} image(s) decoded ({stages.get('decoder')})"
    if stages.get("spool"):
        line += f"; decoded-image spool {stages['spool']}"
    return line


def text_line(name: str, text: dict[str, Any]) -> str:
    """One line on a text member: the test's token lengths and this run's padding waste."""
    lengths = text.get("lengths") or {}
    per_row = lengths.get("tokens_per_row") or {}
    line = f"{name}: text"
    if per_row:
        hist = ", ".join(f"{k}: {v}" for k, v in (lengths.get("histogram") or {}).items())
        line += (f", tokens per row min {per_row['min']} / median {per_row['p50']:.0f} / mean {per_row['mean']:.0f} / "
                 f"p90 {per_row['p90']:.0f} / max {per_row['max']} ({hist}); {lengths['windows']} windows, "
                 f"{lengths['rows_with_windows']} row(s) split")
    if text.get("real_tokens"):
        line += (f"; padding waste {text['padding_waste']:.2f} ({text['padded_tokens']:,} padded / "
                 f"{text['real_tokens']:,} real tokens in {text['batches']} batches)")
    return line


def kaggle_failure(
    report: RunReport, *, submission_exists: bool, exception: BaseException | None = None,
    disk_bytes: int = 0,
) -> tuple[str, str]:
    """The Kaggle failure this run would have been, with why; ``("", "")`` when none.

    Checked in the order a user would meet them: the notebook raising, being
    killed at the limit, exceeding memory or disk, then leaving no CSV.
    """
    if exception is not None:
        return THREW_EXCEPTION, f"{type(exception).__name__}: {exception}"[:500]
    if report.time_limit_s is not None and report.finished_at_s > report.time_limit_s:
        return TIMEOUT, (
            f"finished {report.finished_at_s:.1f}s after the notebook started; the limit is "
            f"{format_seconds(report.time_limit_s)}"
        )
    if report.peak_rss_bytes > KAGGLE_RAM_BYTES:
        return EXCEEDED_COMPUTE, f"peak RAM {format_gib(report.peak_rss_bytes)} is more than a Kaggle notebook's ~30 GB"
    if disk_bytes > KAGGLE_DISK_BYTES:
        return EXCEEDED_COMPUTE, f"{format_gib(disk_bytes)} written to the output folder; Kaggle allows ~20 GB"
    if not submission_exists:
        return CSV_NOT_FOUND, f"{report.submission} was not written"
    return "", ""


__all__ = [
    "CSV_NOT_FOUND",
    "EXCEEDED_COMPUTE",
    "KAGGLE_DISK_BYTES",
    "KAGGLE_RAM_BYTES",
    "MEMBER_STATUSES",
    "THREW_EXCEPTION",
    "TIMEOUT",
    "MemberReport",
    "RunReport",
    "kaggle_failure",
    "lane_line",
    "stage_line",
    "text_line",
]
