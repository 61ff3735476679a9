"""Run a bundle on test data and write ``submission.csv``.

Order of work: verify the bundle (schema, checksums) before anything runs;
open the test data and match its ids against the sample submission; then
for each member load its runner, stream the rows in batches, and accumulate
its activated outputs; finally write the submission atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime import backends
from runtime.backends.base import BackendOptions, Runner
from runtime.bundle import Bundle, open_bundle
from runtime.data import TestData, apply_tta, open_test_data
from runtime.ensemble import Accumulator, activate
from runtime.errors import BackendError, BundleError
from runtime.manifest import Manifest, Member, Variant
from runtime.progress import Progress, log
from runtime.submission import SampleSubmission, format_rows, match_ids, read_sample, write_atomic


@dataclass(frozen=True)
class RunOptions:
    """How to run a bundle; ``None`` means the default."""

    backend: str | None = None  # None: the preferred available backend
    batch_size: int | None = None  # None: each member's packaged batch size
    threads: int | None = None
    device_id: int = 0
    work_dir: Path | None = None  # engine caches, checkpoints
    progress: bool = True
    report_path: Path | None = None  # run report JSON; None: next to the submission


@dataclass
class MemberReport:
    name: str
    variant: str = ""
    backend: str = ""
    rows: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    status: str = "pending"  # done / partial / degraded / dropped / failed
    reason: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunReport:
    bundle: str
    rows: int
    submission: str
    members: list[MemberReport] = field(default_factory=list)
    seconds: float = 0.0
    covered_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for m, src in zip(d["members"], self.members):
            m["rows_per_s"] = src.rows_per_s
        return d

    def table(self) -> str:
        lines = [f"{'member':<16} {'variant':<10} {'status':<9} {'rows':>8} {'seconds':>9} {'rows/s':>10}  reason"]
        for m in self.members:
            lines.append(
                f"{m.name:<16} {m.variant:<10} {m.status:<9} {m.rows:>8} {m.seconds:>9.2f} {m.rows_per_s:>10,.0f}  {m.reason}"
            )
        lines.append(f"{self.covered_rows}/{self.rows} rows covered by a model; {self.seconds:.2f}s in all -> {self.submission}")
        return "\n".join(lines)


def member_width(manifest: Manifest) -> int:
    """Width of the combined vector: one per submission column, or per class in argmax mode."""
    sub = manifest.submission
    return len(sub.classes) if sub.mode == "argmax" else len(sub.columns)


def load_runner(bundle: Bundle, member: Member, variant: Variant, options: RunOptions) -> Runner:
    """A (not yet active) runner for one variant of a member."""
    name = options.backend or backends.default_backend()
    backend = backends.get(name)
    batch = options.batch_size or member.batch_size
    bopts = BackendOptions(
        device_id=options.device_id, fp16=variant.precision == "fp16", threads=options.threads,
        cache_dir=(options.work_dir / "engines") if options.work_dir else None, max_batch=batch,
        input_shapes=tuple((i.name, tuple(int(d) for d in i.shape[1:] if isinstance(d, int))) for i in member.inputs),
    )
    return backend.load(bundle.path(variant.file), f"{member.name}/{variant.name}", bopts)


def predict_rows(
    runner: Runner, member: Member, variant: Variant, test: TestData, start: int, stop: int, batch_size: int
) -> np.ndarray:
    """Activated predictions of one member for rows ``[start, stop)``, TTA-averaged."""
    feed = test.feed(member, start, stop, image_size=variant.image_size)
    total = None
    for t in variant.tta:
        outputs = runner.infer(apply_tta(feed, t, member))
        if member.output not in outputs:
            raise BackendError(f"{member.name}: model has no output {member.output!r}; outputs: {', '.join(outputs)}")
        values = activate(outputs[member.output], member.activation)
        total = values if total is None else total + values
    return total / len(variant.tta)


def run_member(
    runner: Runner, member: Member, variant: Variant, test: TestData, acc: Accumulator,
    *, batch_size: int, progress: Progress,
) -> int:
    """Stream every row through one member into the accumulator; returns rows covered."""
    done = 0
    while done < test.n_rows:
        stop = min(done + batch_size, test.n_rows)
        values = predict_rows(runner, member, variant, test, done, stop, batch_size)
        if values.shape[1] != acc.total.shape[1]:
            raise BundleError(
                f"{member.name}: output {member.output!r} has width {values.shape[1]}, "
                f"but the submission needs {acc.total.shape[1]} values per row"
            )
        acc.add(member.weight, done, values)
        done = stop
        progress.update(done)
    return done


def load_fallback(bundle: Bundle, data_dir: Path, sample: SampleSubmission) -> SampleSubmission:
    """The declared fallback predictions, or the sample submission itself."""
    m = bundle.manifest
    if not m.fallback:
        return sample
    return read_sample(bundle.path(m.fallback), m.submission)


def run(bundle_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, options: RunOptions = RunOptions()) -> RunReport:
    """Run every member of a bundle over the test data and write the submission.

    Raises:
        NinefitError: a user-facing problem (bad bundle, bad data); nothing is written.
    """
    t0 = time.perf_counter()
    bundle = open_bundle(bundle_dir)
    m = bundle.manifest
    data_dir = Path(data)
    test = open_test_data(data_dir, m.data)
    sample_dir = data_dir if data_dir.is_dir() else data_dir.parent
    sample = read_sample(sample_dir / m.submission.sample, m.submission)
    order = match_ids(sample, test.ids, sample_name=m.submission.sample)
    fallback = load_fallback(bundle, sample_dir, sample)
    for member in m.members:
        test.check(member)
    acc = Accumulator(test.n_rows, member_width(m), m.combiner)
    report = RunReport(bundle=str(bundle.root), rows=test.n_rows, submission=str(out))
    log(f"bundle {m.name!r}: {len(m.members)} member(s), {test.n_rows} rows; backends here: {', '.join(backends.available())}", )
    for member in m.members:
        variant = member.variants[0]
        mr = MemberReport(name=member.name, variant=variant.name)
        report.members.append(mr)
        batch = options.batch_size or member.batch_size
        progress = Progress(member.name, test.n_rows, enabled=options.progress)
        try:
            tl = time.perf_counter()
            runner = load_runner(bundle, member, variant, options)
            with runner:
                mr.load_seconds = time.perf_counter() - tl
                mr.backend = runner.describe()
                log(f"{member.name}: {mr.backend}, batch {batch}")
                ts = time.perf_counter()
                mr.rows = run_member(runner, member, variant, test, acc, batch_size=batch, progress=progress)
                mr.seconds = time.perf_counter() - ts
            mr.status = "done"
            progress.close("done")
        except BackendError as exc:
            mr.status, mr.reason = "failed", str(exc)
            progress.close("failed")
            log(f"{member.name}: failed, skipped: {exc}")
    covered = acc.covered
    rows = format_rows(acc.result(), covered, order, test.ids, m.submission, fallback)
    write_atomic(out, sample.header, rows)
    report.covered_rows = int(covered.sum())
    report.seconds = time.perf_counter() - t0
    report_path = options.report_path or Path(out).with_name("run_report.json")
    Path(report_path).write_text(json.dumps(report.to_dict(), indent=2))
    return report


__all__ = ["MemberReport", "RunOptions", "RunReport", "load_runner", "predict_rows", "run", "run_member"]
