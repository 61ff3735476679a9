"""A generative bundle in the evaluation-API shape: one item per ``predict`` call, answered within the call's
response deadline and the notebook's limit (AIMO: 50 problems, one per call, 5 hours).

Each call gets the least of: the time bank's allowance (the limit less the margin, shared over the items still
expected: ``expected_items``, else the manifest's ``[serve] expected_batches``; banking and borrowing as in a file
run) and the response deadline less a margin for the answer's trip back. The first call loads the engine (Kaggle's
first call has no deadline). An item answered nothing gets the declared fallback answer; a call never raises for an
item the model could not answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.bundle import open_bundle
from runtime.errors import UsageError
from runtime.generate.answers import Extractor
from runtime.generate.budget import Allowance, GenCosts, TimeBank
from runtime.generate.engines import Engine, load_engine
from runtime.generate.items import make_item, prompt_text
from runtime.generate.solve import ItemReport, Sampling, solve_item
from runtime.hooks import HOOKS_DIR, load_hook
from runtime.schedule.budget import NO_LIMIT, Clock, default_margin

#: Kept of every call's response deadline for the answer's way back (seconds, and a share of the deadline).
CALL_MARGIN_S = 0.25
CALL_MARGIN_SHARE = 0.05


class GenerationPredictor:
    """``predict_row(row) -> answer`` (or ``predict(*frames)``), one item per call; ``reports`` holds each call's."""

    def __init__(self, bundle_dir: str | Path, *, response_timeout_s: float | None = None,
                 time_limit_s: float | None = None, expected_items: int | None = None,
                 start_time: float | None = None, clock: Callable[[], float] | None = None,
                 engine: Engine | None = None, threads: int | None = None):
        self.bundle = open_bundle(bundle_dir)
        m = self.bundle.manifest
        if m.generate is None:
            raise UsageError(f"{bundle_dir} is not a generative bundle (its manifest has no generate section)")
        self.spec = m.generate
        self.id_column = m.data.id_column
        serve = m.serve
        self.response_timeout_s = response_timeout_s if response_timeout_s is not None else (
            serve.response_timeout_s if serve is not None else None)
        self.clock = clock if clock is not None else Clock(start_time)
        items = expected_items or (serve.expected_batches if serve is not None else 0) or 1
        end = NO_LIMIT if time_limit_s is None else time_limit_s - default_margin(time_limit_s)
        self.bank = TimeBank(self.clock, end, items, cap=self.spec.cap, floor=self.spec.floor)
        self.engine, self.threads = engine, threads
        self.costs = GenCosts()
        self.sampling = Sampling.of(self.spec)
        root = self.bundle.root
        hook = self.spec.extractor_hook
        self.extract = Extractor(self.spec.extractor, load_hook(hook, root / HOOKS_DIR) if hook else None, hook)
        self.prompt_hook = load_hook(self.spec.prompt_hook, root / HOOKS_DIR) if self.spec.prompt_hook else None
        self.reports: list[dict[str, Any]] = []

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = load_engine(self.spec.engine, self.bundle.root / self.spec.folder, dtype=self.spec.dtype,
                                      threads=self.threads)
        return self.engine

    def predict_row(self, row: dict[str, Any]) -> str:
        """The answer of one item (a row of the test table: its id and prompt columns)."""
        start = self.clock()
        first = self.engine is None
        engine = self._engine()
        row = {str(k): "" if v is None else str(v) for k, v in row.items()}
        item_id = row.get(self.id_column, str(len(self.reports)))
        call_start = start if not first else self.clock()  # the first call has no deadline: its load is free
        share = self.bank.allowance()
        allowed = share.allowed_s
        if self.response_timeout_s is not None and not first:
            deadline = self.response_timeout_s * (1 - CALL_MARGIN_SHARE) - CALL_MARGIN_S
            allowed = min(allowed, deadline - (self.clock() - call_start))
        allowance = Allowance(self.clock(), share.share_s, max(0.0, allowed))
        n = len(self.reports)
        item = make_item(n, item_id, engine.encode(prompt_text(self.spec, row, self.prompt_hook)), self.spec,
                         self.spec.context_length or engine.context_length)
        if item.refused:
            self.bank.skip()
            report = ItemReport(id=item_id, answer=self.spec.fallback_answer, stop="refused", reason=item.refused,
                                fallback=True)
        else:
            report = solve_item(item_id, item.prompt_ids, engine, self.sampling, allowance, self.costs, self.extract,
                                self.clock, probe=n < self.spec.probe_items, seed=self.spec.seed + n)
            report.banked_s = self.bank.settle(allowance, report.seconds)
            report.truncated = item.truncated
        out = report.to_dict()
        out["call_s"] = self.clock() - start
        self.reports.append(out)
        return report.answer

    def predict(self, *frames: Any) -> Any:
        """Kaggle's shape: one-row frames (pandas or polars; their columns together make the row) -> a one-row frame
        of the first frame's library with the id column (where given) and the answer column."""
        row: dict[str, Any] = {}
        for frame in frames:
            records = frame.to_dicts() if hasattr(frame, "to_dicts") else frame.to_dict("records")
            if len(records) != 1:
                raise UsageError(f"a generative predict call takes one item; got a frame of {len(records)} rows")
            row.update(records[0])
        answer = self.predict_row(row)
        value: Any = int(answer) if answer.lstrip("-").isdigit() else answer
        data = {**({self.id_column: [row[self.id_column]]} if self.id_column in row else {}),
                self.spec.answer_column: [value]}
        module = type(frames[0]).__module__.split(".")[0] if frames else "pandas"
        if module == "polars":
            import polars as pl

            return pl.DataFrame(data)
        import pandas as pd

        return pd.DataFrame(data)




__all__ = ["CALL_MARGIN_S", "CALL_MARGIN_SHARE", "GenerationPredictor"]
