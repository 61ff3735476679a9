"""The submission file of a run: combined from the checkpointed chunks, formatted, written atomically.

:class:`SubmissionWriter` combines the members' checkpointed chunks (members in
manifest order, chunks in row order, each chunk from its best rung) and writes
the whole submission each time, so it depends on which rows each member
covered and never on timing: a resumed run writes the same bytes as an
uninterrupted one. Rows no member covered take the fallback's values
(:func:`load_fallback`); :func:`make_formatter` builds the competition's format.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from runtime.bundle import Bundle
from runtime.data.testdata import TestData
from runtime.execute.checkpoint import ChunkStore
from runtime.manifest import Manifest
from runtime.output.ensemble import Accumulator
from runtime.output.formats import Formatter, Layout, width
from runtime.output.submission import SampleSubmission, read_sample, write_atomic
from runtime.progress import log


def member_width(manifest: Manifest) -> int:
    """Width of the combined vector: one per submission column, class, target or mask pixel (``formats.width``)."""
    return width(manifest.submission)


def make_formatter(bundle: Bundle, sample: SampleSubmission, test: TestData, layout: Layout,
                   fallback: SampleSubmission, strict: bool = False, *, hook: bool = True,
                   time_left: Callable[[], float | None] | None = None) -> Formatter:
    """The submission's formatter; with ``postprocess`` the bundle's hook is imported here (a failing import raises).

    ``hook=False`` leaves the hook out (a formatter for the fallback alone, which
    calls no hook); ``time_left``: seconds a hook call may still take.
    """
    sub = bundle.manifest.submission
    fn = None
    if sub.mode == "postprocess" and hook:
        from runtime.hooks import HOOKS_DIR, load_hook

        fn = load_hook(sub.postprocess, bundle.path(HOOKS_DIR))
    return Formatter(sub, sample, test.ids, layout, fallback, hook=fn, strict=strict, time_left=time_left)


def load_fallback(bundle: Bundle, sample: SampleSubmission) -> SampleSubmission:
    """The row each test id gets when no member covers it.

    The declared fallback's row where it has the id, else the sample
    submission's: the packager checked the fallback against the public test
    ids only, and the hidden test set has others.
    """
    m = bundle.manifest
    if not m.fallback:
        return sample
    declared = read_sample(bundle.path(m.fallback), m.submission)
    rows = {rid: declared.rows.get(rid, row) for rid, row in sample.rows.items()}
    filled = sum(rid not in declared.rows for rid in sample.rows)
    if filled:
        log(f"fallback {m.fallback} has no row for {filled} of {len(sample.ids)} test id(s); "
            f"those take the sample submission's values")
    return SampleSubmission(ids=sample.ids, header=sample.header, rows=rows)


class SubmissionWriter:
    """Combines the checkpointed chunks and writes the submission atomically.

    Members are combined in manifest order and chunks in row order; a chunk
    held by several variants of a member is taken from the best one. Rows no
    member covered get the fallback's values. Writes are timed on ``clock``
    (the run's: the reserve is sized from them).
    """

    def __init__(self, out: Path, manifest: Manifest, store: ChunkStore, grids: Mapping[str, list[tuple[int, int]]],
                 test: TestData, sample: SampleSubmission, formatter: Formatter, *,
                 clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.out, self.manifest, self.store, self.grids = out, manifest, store, grids
        self.test, self.sample, self.formatter = test, sample, formatter
        self.width = member_width(manifest)
        self.events_seen = 0
        self.writes = 0
        self.covered = 0
        self.seconds = 0.0  # all writes together
        self.slowest = 0.0  # the slowest write

    def combine(self, skip: frozenset[str] = frozenset()) -> Accumulator:
        acc = Accumulator(self.test.n_rows, self.width, self.manifest.combiner)
        for member in self.manifest.members:
            if member.name in skip:
                continue
            held = [self.store.chunks(member.name, v.name) for v in member.variants]
            for a, b in self.grids[member.name]:
                for v, chunks in zip(member.variants, held):
                    values = self.store.load(member.name, v.name, a, b, self.width) if (a, b) in chunks else None
                    if values is not None:
                        acc.add(member.weight, a, values)
                        break
        return acc

    @property
    def unfed(self):
        """Rows whose features-hook chunk failed (or was abandoned): their predictions are never written."""
        features = self.test.features
        return features.failed if features is not None else None

    def write(self, skip: frozenset[str] = frozenset()) -> float:
        """Write the submission from what is checkpointed now; returns the seconds it took."""
        t0 = self.clock()
        acc = self.combine(skip)
        unfed = self.unfed
        covered = acc.covered if unfed is None else acc.covered & ~unfed
        write_atomic(self.out, self.sample.header, self.formatter.blocks(acc.result(consume=True), covered), blocks=True)
        self.writes += 1
        self.covered = int(covered.sum()) - self.formatter.failed_rows
        dt = self.clock() - t0
        self.seconds += dt
        self.slowest = max(self.slowest, dt)
        return dt

    def new_events(self) -> list[str]:
        """The postprocess hook's failures since the last call (each reported once)."""
        events = self.formatter.events[self.events_seen:]
        self.events_seen = len(self.formatter.events)
        return events


__all__ = ["SubmissionWriter", "load_fallback", "make_formatter", "member_width"]
