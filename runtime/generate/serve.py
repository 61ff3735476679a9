"""A generative bundle in the evaluation-API shape: one item per ``predict`` call, answered within the call's
response deadline and the notebook's limit (AIMO: 50 problems, one per call, 5 hours).

Each call gets the least of: the time bank's allowance (the limit less the margin, shared over the items still
expected: ``expected_items``, else the manifest's ``[serve] expected_batches``; banking and borrowing as in a file
run) and the response deadline less a margin for the answer's trip back. The first call loads the engine (Kaggle's
first call has no deadline). An item answered nothing gets the declared fallback answer; a call never raises for an
item the model could not answer.

The gateway's own call is :meth:`GenerationPredictor.__call__`: ``predict``'s arguments named as the manifest's
``[serve]`` table says (:func:`runtime.serve.batch.read_batch`: a frame, or one Series per column as AIMO sends),
the rows of the table answered in turn, ``batch_items`` at a time sampled together, within the call's deadline
(each group gets its bank allowance, capped by its rows' part of the call's time left), the answer a frame of the id
column and the answer column (typed as the sample slice's column where the gateway sends one, else a whole number
where every answer is one), one record per call in the serving report (:class:`runtime.serve.report.ServeReport`)
with every item's report.
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
from runtime.generate.items import Item, make_item, prompt_text
from runtime.generate.solve import ItemReport, Sampling, solve_items
from runtime.hooks import HOOKS_DIR, load_hook
from runtime.schedule.budget import NO_LIMIT, Clock, default_margin
from runtime.serve.batch import Batch, read_batch
from runtime.serve.options import ServeOptions
from runtime.serve.report import CallRecord, ServeReport

#: Kept of every call's response deadline for the answer's way back (seconds, and a share of the deadline).
CALL_MARGIN_S = 0.25
CALL_MARGIN_SHARE = 0.05


class GenerationPredictor:
    """``predict_row(row) -> answer`` (or ``predict(*frames)``), one item per call; ``reports`` holds each call's."""

    def __init__(self, bundle_dir: str | Path, *, response_timeout_s: float | None = None,
                 time_limit_s: float | None = None, expected_items: int | None = None,
                 start_time: float | None = None, clock: Callable[[], float] | None = None,
                 engine: Engine | None = None, threads: int | None = None, report_path: str | Path | None = None):
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
        self.options = ServeOptions.from_spec(serve) if serve is not None else ServeOptions()
        items = expected_items or (serve.expected_rows or serve.expected_batches if serve is not None else 0) or 1
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
        self.calls = 0
        self._load_error: str | None = None
        self.report = ServeReport(Path(report_path)) if report_path is not None else None

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = load_engine(self.spec.engine, self.bundle.root / self.spec.folder, dtype=self.spec.dtype,
                                      threads=self.threads)
        return self.engine

    def _call_end(self, start: float, first: bool) -> float | None:
        """When a call started at ``start`` must have its answer (None: the first call, or no deadline)."""
        if self.response_timeout_s is None or first:
            return None
        return start + self.response_timeout_s * (1 - CALL_MARGIN_SHARE) - CALL_MARGIN_S

    def predict_row(self, row: dict[str, Any], *, call_end: float | None = None, rows_left: int = 1) -> str:
        """The answer of one item (a row of the test table: its id and prompt columns): :meth:`predict_rows` of one."""
        return self.predict_rows([row], call_end=call_end, rows_left=rows_left)[0]

    def predict_rows(self, rows: list[dict[str, Any]], *, call_end: float | None = None,
                     rows_left: int | None = None) -> list[str]:
        """The answers of items answered together (rows of the test table: their ids and prompt columns).
        ``call_end``: the answers are due by then (on the notebook's clock), shared with the ``rows_left`` rows of the
        call still to answer (these included; None: these alone); None: a call of these rows, due within the
        response deadline."""
        start = self.clock()
        first = self.engine is None
        engine = self._engine()
        if call_end is None:  # the first call has no deadline: its load is free
            call_end = self._call_end(start, first)
        context = self.spec.context_length or engine.context_length
        items: list[Item] = []
        for row in rows:
            row = {str(k): "" if v is None else str(v) for k, v in row.items()}
            n = len(self.reports) + len(items)
            items.append(make_item(n, row.get(self.id_column, str(n)),
                                   engine.encode(prompt_text(self.spec, row, self.prompt_hook)), self.spec, context))
        todo = [it for it in items if not it.refused]
        for _ in range(len(items) - len(todo)):
            self.bank.skip()  # a refused item takes no share
        solved: dict[int, ItemReport] = {}
        if todo:
            share = self.bank.allowance(len(todo))
            allowed = share.allowed_s
            if call_end is not None:
                allowed = min(allowed, (call_end - self.clock()) * len(todo) / max(len(todo), rows_left or len(rows)))
            allowance = Allowance(self.clock(), share.share_s, max(0.0, allowed))
            results = solve_items([(it.id, it.prompt_ids) for it in todo], engine, self.sampling, allowance,
                                  self.costs, self.extract, self.clock, probe=len(self.reports) < self.spec.probe_items,
                                  seed=self.spec.seed + todo[0].index)
            self.bank.settle(allowance, sum(r.seconds for r in results), len(todo))
            for it, r in zip(todo, results):
                r.banked_s, r.truncated = r.share_s - r.seconds, it.truncated
                solved[it.index] = r
        answers = []
        for it in items:
            report = solved.get(it.index) or ItemReport(id=it.id, answer=self.spec.fallback_answer, stop="refused",
                                                        reason=it.refused, fallback=True)
            out = report.to_dict()
            out["call_s"] = self.clock() - start
            self.reports.append(out)
            answers.append(report.answer)
        return answers

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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The gateway's call: ``predict``'s arguments (named by the manifest's ``[serve]`` table) -> every row of the
        table answered, within the call's deadline (none on the first call: the engine loads there), as a frame of
        the id column and the answer column (or the one value, ``scalar``); never raises for what the model does.

        Raises:
            ServeInputError: The call holds no table to answer.
        """
        t0, first = self.clock(), self.calls == 0
        batch = read_batch(self.calls, args, kwargs, self.options)
        record = CallRecord(batch=self.calls, rows=batch.rows, started_s=round(t0, 4),
                            deadline_s=None if first else self.response_timeout_s)
        if first:
            try:
                self._engine()
            except Exception as exc:  # noqa: BLE001 - every item then answers the fallback, the call still answers
                self._load_error = f"the engine did not load ({type(exc).__name__}: {exc})"
                record.events.append(f"{self._load_error}: every item takes the fallback answer")
            record.load_s = round(self.clock() - t0, 4)
        end = self._call_end(t0, first)
        record.end_s, record.share_s = end, None if end is None else round(end - t0, 4)
        rows = batch.frame.to_dict("records") if batch.rows else []
        done, answers = len(self.reports), []
        size = max(1, self.spec.batch_items)
        for k in range(0, len(rows), size):
            answers += self._answer_rows(rows[k:k + size], record, NO_LIMIT if end is None else end, len(rows) - k)
        items = self.reports[done:]
        record.fallback_rows = len(rows) - len(items) + sum(1 for r in items if r.get("fallback"))
        stops = {r.get("stop") for r in items}
        record.members = [{"member": self.spec.name, "variant": self.spec.engine, "rows": len(rows),
                           "status": "partial" if stops & {"cut", "no time"} or len(items) < len(rows) else "done",
                           "items": items}]
        result = self._answer(batch, answers)
        record.latency_s = round(self.clock() - t0, 4)
        if record.deadline_s is not None:
            record.slack_s = round(record.deadline_s - record.latency_s, 4)
        if self.report is not None:
            self.report.add(record)
        self.calls += 1
        return result

    def _answer_rows(self, rows: list[dict[str, Any]], record: CallRecord, call_end: float,
                     rows_left: int) -> list[str]:
        """Rows of a call answered together (the fallback answer where the engine is missing or the items failed)."""
        if self._load_error is not None:
            return [self.spec.fallback_answer] * len(rows)
        try:
            return self.predict_rows(rows, call_end=call_end, rows_left=rows_left)
        except Exception as exc:  # noqa: BLE001 - the items' failure never fails the call: the fallback answers them
            ids = ", ".join(str(row.get(self.id_column, "?")) for row in rows)
            record.events.append(f"item(s) {ids}: {type(exc).__name__}: {exc}; the fallback answers them")
            return [self.spec.fallback_answer] * len(rows)

    def _answer(self, batch: Batch, answers: list[str]) -> Any:
        """The call's answer: the id column (where the table has it) and the answer column, in the table's library
        (or ``[serve] output``), each value typed as the sample slice's column (else a whole number where it is)."""
        column, sample = self.spec.answer_column, batch.sample
        kind = ""
        if sample is not None and hasattr(sample, "columns") and column in sample.columns:
            kind = str(sample[column].dtype).lower()
        values = [_typed(a, kind, self.spec.fallback_answer) for a in answers]
        if self.options.scalar:
            return values[0] if values else _typed(self.spec.fallback_answer, kind, "0")
        data: dict[str, Any] = {}
        if self.options.include_id and self.id_column in batch.table.columns:
            data[self.id_column] = batch.column(self.id_column)
        data[column] = values
        if self.options.output == "polars" or (self.options.output == "auto" and batch.library == "polars"):
            import polars as pl

            return pl.DataFrame(data)
        import pandas as pd

        return pd.DataFrame(data)

    def close(self) -> None:
        """Nothing to close: the engine goes with the notebook (kept for the serving notebook's last line)."""


def _typed(answer: str, kind: str, fallback: str) -> Any:
    """An answer as the sample's column holds it (``kind``: its dtype's name; "": a whole number where it is one,
    else the text). A number the answer is not takes the fallback answer, else 0."""
    whole = answer.strip().lstrip("-").isdigit()
    if not kind:
        return int(answer) if whole else answer
    if "int" in kind:
        for text in (answer, fallback):
            if text.strip().lstrip("-").isdigit():
                return int(text)
        return 0
    if "float" in kind:
        for text in (answer, fallback):
            try:
                return float(text)
            except ValueError:
                continue
        return 0.0
    return answer


__all__ = ["CALL_MARGIN_S", "CALL_MARGIN_SHARE", "GenerationPredictor"]
