"""A generative bundle's file run: one answer per test row into ``submission.csv``, before the deadline.

Order of work: verify the bundle; read the test table and the journal of items
an earlier (killed) run answered; write the submission at once (those answers,
the fallback answer for every other row); load the engine (its time counts);
tokenise every prompt (a prompt too long for the context is refused or
truncated, as the spec says); then answer the items in order, each (or each
group of ``batch_items``, sampled together) within its allowance from the time
bank (:mod:`runtime.generate.budget`), appending each answer to the journal
before the next item starts and rewriting the submission
as often as its write time allows; finally the submission and the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.bundle import open_bundle, sha256_file
from runtime.errors import UsageError
from runtime.generate.answers import Extractor
from runtime.generate.budget import GenCosts, TimeBank
from runtime.generate.engines import Engine, load_engine
from runtime.generate.items import Item, Journal, data_key, make_item, prompt_text, read_rows, write_submission
from runtime.generate.report import GenerationReport
from runtime.generate.solve import ItemReport, Sampling, solve_items
from runtime.hooks import HOOKS_DIR, load_hook
from runtime.manifest import GenerateSpec, Manifest
from runtime.progress import format_seconds, log
from runtime.schedule.budget import Clock, make_budget

#: The submission is rewritten after an item once this many times its last write time has passed since then.
WRITE_SPACING = 10.0


@dataclass(frozen=True)
class GenerateOptions:
    """How to run a generative bundle; None means the default."""

    time_limit_s: float | None = None
    start_time: float | None = None  # epoch seconds the notebook started; None: now
    margin_s: float | None = None
    reserve_s: float | None = None
    work_dir: Path | None = None  # the journal; None: <out stem>.ninefit-work/ beside the submission
    report_path: Path | None = None  # None: <out stem>.run_report.json beside the submission
    fresh: bool = False  # forget the journal's answers first
    threads: int | None = None
    engine: str | None = None  # None: the spec's
    fixed_share: bool = False  # an equal fixed share per item, unused time lost (the baseline benchmarks compare)
    early_stop: bool = True  # stop an item's sampling once its vote is decided
    batch_items: int | None = None  # items answered together; None: the spec's
    progress: bool = True


def is_generative(bundle_dir: str | Path) -> bool:
    """Whether ``bundle_dir`` holds a generative bundle (its manifest has ``generate``); False if unreadable."""
    try:
        return Manifest.load(bundle_dir).generate is not None
    except Exception:
        return False


def run_generation(bundle_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                   options: GenerateOptions = GenerateOptions(), *, clock: Callable[[], float] | None = None,
                   engine: Engine | None = None) -> GenerationReport:
    """Answer every test row of a generative bundle before the deadline (see the module's docstring).

    ``clock``: seconds since the notebook started (tests pass a fake one); ``engine``: a loaded engine to use
    instead of loading the bundle's model (tests, benchmarks).

    Raises:
        NinefitError: a bad bundle, data or settings, before anything is written.
    """
    t0 = time.perf_counter()
    clock = clock if clock is not None else Clock(options.start_time)
    budget = make_budget(options.time_limit_s, options.margin_s, options.reserve_s, options.start_time, clock)
    bundle = open_bundle(bundle_dir, allow_damage=True)
    m = bundle.manifest
    spec = m.generate
    if spec is None:
        raise UsageError(f"{bundle_dir} is not a generative bundle (its manifest has no generate section)")
    out = Path(out)
    stem = out.with_name(out.stem)
    report_path = Path(options.report_path or f"{stem}.run_report.json")
    work = Path(options.work_dir or f"{stem}.ninefit-work")
    data_dir = Path(data)
    test_path = data_dir / m.data.test if data_dir.is_dir() else data_dir
    rows = read_rows(test_path, m.data.id_column, () if spec.prompt_hook else _template_columns(spec))
    ids = [r[m.data.id_column] for r in rows]
    key = data_key([m.name, *sorted(m.files.values()), sha256_file(test_path)])
    journal_path = work / "generate" / key / "answers.jsonl"
    if options.fresh and journal_path.is_file():
        journal_path.unlink()
        log(f"--fresh: discarded the answers journaled in {journal_path}")
    journal = Journal(journal_path)
    report = GenerationReport(bundle=str(bundle.root), rows=len(rows), submission=str(out), model=spec.name,
                              time_limit_s=options.time_limit_s, margin_s=budget.margin_s, started_at_s=clock(),
                              report_path=str(report_path), work_dir=str(journal_path.parent),
                              mode="fixed" if options.fixed_share else "bank",
                              damage=[{"file": f.path, "problem": f.problem, "effect": "the model cannot load"}
                                      for f in bundle.damage.files])
    answers = {i: str(e["answer"]) for i, e in journal.done.items() if i in set(ids)}
    report.resumed = len(answers)
    report.items = [journal.done[i]["report"] for i in ids if i in answers and "report" in journal.done[i]]
    sub = _Submission(out, m, spec, ids, answers, clock)
    sub.write()
    reserve = budget.reserve_s if options.reserve_s is not None else max(budget.reserve_s, 2 * sub.slowest)
    end_s = budget.deadline - budget.margin_s - reserve
    report.reserve_s = reserve
    if answers:
        log(f"resuming: {len(answers)} of {len(ids)} item(s) answered by an earlier run ({journal_path}); "
            "--fresh starts over")
    try:
        if report.damage:
            report.events.append("damaged model files: every row keeps the fallback answer "
                                 f"({', '.join(d['file'] for d in report.damage[:4])})")
        elif len(answers) < len(ids) and clock() < end_s:
            _answer(bundle.root, spec, rows, m.data.id_column, journal, sub, report, options, clock, end_s, engine)
    finally:
        sub.write()
        report.covered_rows = sum(1 for it in report.items if not it.get("fallback"))
        report.finished_at_s = clock()
        report.seconds = time.perf_counter() - t0
        if options.time_limit_s is not None:
            report.slack_s = options.time_limit_s - report.finished_at_s
            if report.finished_at_s > options.time_limit_s:
                report.failure, report.failure_reason = "Notebook Timeout", "the run ended past the time limit"
        report.write_json(report_path)
    return report


class _Submission:
    """The submission on disk, rewritten from the answers so far, no oftener than its write time allows."""

    def __init__(self, out: Path, m: Manifest, spec: GenerateSpec, ids: list[str], answers: dict[str, str],
                 clock: Callable[[], float]):
        self.out, self.ids, self.answers, self.clock = out, ids, answers, clock
        self.id_column, self.column, self.fallback = m.data.id_column, spec.answer_column, spec.fallback_answer
        self.slowest = 0.0
        self.last = -1e18

    def write(self) -> None:
        start = time.perf_counter()
        write_submission(self.out, self.id_column, self.column, self.ids, self.answers, self.fallback)
        self.slowest = max(self.slowest, time.perf_counter() - start)
        self.last = self.clock()

    def maybe_write(self) -> None:
        if self.clock() - self.last >= WRITE_SPACING * self.slowest:
            self.write()


def _template_columns(spec: GenerateSpec) -> tuple[str, ...]:
    import string

    names = {f for _, f, _, _ in string.Formatter().parse(spec.template) if f}
    return tuple(sorted({spec.prompt_column} | {n for n in names if n != "prompt"}))


def _items(spec: GenerateSpec, rows: list[dict[str, str]], id_column: str, root: Path, engine: Engine,
           done: set[str]) -> list[Item]:
    hook = load_hook(spec.prompt_hook, root / HOOKS_DIR) if spec.prompt_hook else None
    context = spec.context_length or engine.context_length
    return [make_item(n, r[id_column], engine.encode(prompt_text(spec, r, hook)), spec, context)
            for n, r in enumerate(rows) if r[id_column] not in done]


def _answer(root: Path, spec: GenerateSpec, rows: list[dict[str, str]], id_column: str, journal: Journal,
            sub: _Submission, report: GenerationReport, options: GenerateOptions, clock: Callable[[], float],
            end_s: float, engine: Engine | None) -> None:
    """Load the engine, then answer the items not answered yet, each within its allowance."""
    start = clock()
    if engine is None:
        engine = load_engine(options.engine or spec.engine, root / spec.folder, dtype=spec.dtype,
                             threads=options.threads)
    report.engine, report.load_s = engine.name, clock() - start
    extract = Extractor(spec.extractor, load_hook(spec.extractor_hook, root / HOOKS_DIR) if spec.extractor_hook
                        else None, spec.extractor_hook)
    items = _items(spec, rows, id_column, root, engine, set(sub.answers))
    pending = [it for it in items if not it.refused]
    bank = TimeBank(clock, end_s, len(pending), cap=spec.cap, floor=spec.floor, fixed=options.fixed_share)
    costs = GenCosts()
    sampling = Sampling.of(spec, early=options.early_stop and not options.fixed_share)
    log(f"{spec.name}: {len(items)} item(s) to answer on {engine.name} (loaded in {report.load_s:.2f}s); "
        f"{format_seconds(bank.left_s())} left, {bank.fair_s:.2f}s per item at first"
        + (f"; {len(items) - len(pending)} refused (too long)" if len(pending) < len(items) else ""))
    probes, size = 0, max(1, options.batch_items or spec.batch_items)
    group: list[Item] = []
    last = max((n for n, it in enumerate(items) if not it.refused), default=-1)  # the last item to sample
    for n, item in enumerate(items):
        if item.refused:
            _record(item, ItemReport(id=item.id, answer=spec.fallback_answer, prompt_tokens=len(item.prompt_ids),
                                     stop="refused", reason=item.refused, fallback=True), journal, sub, report, options)
            continue
        group.append(item)
        if len(group) < size and n < last:
            continue
        if clock() >= end_s:
            for it in group:
                bank.skip()
                report.items.append(ItemReport(id=it.id, answer=spec.fallback_answer, stop="no time", fallback=True,
                                               reason="the run's time was spent before this item").to_dict())
            group = []  # not journaled: a rerun with more time answers them
            continue
        allowance = bank.allowance(len(group))
        results = solve_items([(it.id, it.prompt_ids) for it in group], engine, sampling, allowance, costs, extract,
                              clock, probe=probes < spec.probe_items, seed=spec.seed + group[0].index)
        probes += len(group)
        bank.settle(allowance, sum(r.seconds for r in results), len(group))
        for it, result in zip(group, results):
            result.banked_s = result.share_s - result.seconds
            result.truncated = it.truncated
            _record(it, result, journal, sub, report, options)
        group = []
    report.costs = costs.to_dict()
    report.events += extract.errors


def _record(item: Item, result: ItemReport, journal: Journal, sub: _Submission, report: GenerationReport,
            options: GenerateOptions) -> None:
    """An item answered: journaled (flushed) before anything else, then into the submission and the report."""
    journal.add({"id": item.id, "answer": result.answer, "report": result.to_dict()})
    if not result.fallback:
        sub.answers[item.id] = result.answer
    report.items.append(result.to_dict())
    if options.progress:
        log(f"{item.id}: {result.answer}{' (fallback)' if result.fallback else ''} - {result.samples} sample(s), "
            f"{result.seconds:.2f}s of {result.allowed_s:.2f}s, {result.stop}"
            + (f", {result.together} together" if result.together > 1 else ""))
    sub.maybe_write()


__all__ = ["WRITE_SPACING", "GenerateOptions", "is_generative", "run_generation"]
