"""A generative bundle run through :func:`runtime.run.run` (what the notebook calls for every bundle): the file run
(:func:`runtime.generate.filerun.run_generation`) with the run's options, its report carried by a
:class:`runtime.output.report.RunReport` (``generation``), whose ``table()`` prints the generation's."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from runtime.generate.filerun import GenerateOptions, run_generation
from runtime.output.report import RunReport


class GenerativeRunReport(RunReport):
    """A run report whose table is the generation's (per item: samples, tokens, seconds, bank, vote, answer)."""

    def table(self) -> str:
        return str(self.generation.get("table", ""))


def run_generative(bundle_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, options: Any,
                   clock: Callable[[], float] | None = None) -> RunReport:
    """``options``: a :class:`runtime.run.RunOptions` (its backend names the engine: transformers or vllm)."""
    g = run_generation(bundle_dir, data, out, GenerateOptions(
        time_limit_s=options.time_limit_s, start_time=options.start_time, margin_s=options.margin_s,
        reserve_s=options.reserve_s, work_dir=options.work_dir, report_path=options.report_path, fresh=options.fresh,
        threads=options.threads, engine=options.backend if options.backend in ("transformers", "vllm") else None,
        progress=options.progress), clock=clock)
    return GenerativeRunReport(bundle=g.bundle, rows=g.rows, submission=g.submission, seconds=g.seconds,
                     covered_rows=g.covered_rows, time_limit_s=g.time_limit_s, margin_s=g.margin_s,
                     reserve_s=g.reserve_s, started_at_s=g.started_at_s, finished_at_s=g.finished_at_s,
                     slack_s=g.slack_s, work_dir=g.work_dir, report_path=g.report_path, damage=g.damage,
                     events=list(g.events), failure=g.failure, failure_reason=g.failure_reason,
                     generation={**g.to_dict(), "table": g.table()})


__all__ = ["GenerativeRunReport", "run_generative"]
