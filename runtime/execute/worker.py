"""A lane's worker: its runner, its batch sizes, and the work of one chunk on it.

Each lane (:mod:`runtime.execute.lanes`) is a :class:`LaneWorker`: it owns the
runner it has loaded, which member and rung that is, the member whose plan
step it runs, the members retired on it, its batch size and token budget per
member (out of memory on one lane halves that lane's only) and the log of what
it ran. Nothing here depends on which thread calls it: the executor passes
the worker it means.

The run's shared state changes under one lock, the :class:`Booking`: a lane
thread holds it while it books (claims chunks, plans, records decisions and
statuses) and lets go of it, by name, for the slow work that touches only its
own things: ``load`` (building a session), ``read`` (its chunk's inputs),
``infer`` (a batch), ``save`` (its chunk's file) and ``write`` (the
submission, under a lock of its own).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from runtime.backends.base import Runner
from runtime.data.pipeline import FeedPipeline
from runtime.data.testdata import TestData
from runtime.data.text import Chunk as TextChunk
from runtime.errors import BundleError, OutOfMemoryError
from runtime.execute.lanes import LaneLog
from runtime.execute.predict import predict_rows, predict_windows
from runtime.execute.state import MemberRun
from runtime.manifest import Member, Variant
from runtime.output.report import RunReport
from runtime.progress import log
from runtime.schedule.costs import CostModel
from runtime.status import Status

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: The slow work a lane does outside the booking lock, by name (:meth:`Booking.outside`).
OUTSIDE = ("load", "read", "infer", "save", "write")


class Booking:
    """The run's one lock over its shared state (re-entrant), and the named work done outside it.

    A lane thread holds it from the start of its step to the end
    (:meth:`held`), except inside :meth:`outside`, which lets the other lanes
    book and plan while this one does one of :data:`OUTSIDE`. With one lane
    nothing contends, and :meth:`outside` costs a release and an acquire.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._mine = threading.local()  # whether the calling thread holds it through held()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self._mine.held = True
            try:
                yield
            finally:
                self._mine.held = False

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def outside(self, what: str) -> Iterator[None]:
        """Do ``what`` (one of :data:`OUTSIDE`) without the lock, if this thread holds it through :meth:`held`."""
        assert what in OUTSIDE, what
        if not getattr(self._mine, "held", False):
            yield
            return
        self._mine.held = False
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._mine.held = True


@dataclass
class Shared:
    """What every lane's worker reads and books into: the run's data, costs, clock and report."""

    test: TestData
    feeds: FeedPipeline
    costs: CostModel
    clock: Callable[[], float]
    report: RunReport
    width: int
    booking: Booking
    states: Mapping[str, MemberRun]
    event: Callable[[str], None]
    device_check: Callable[[Runner], str | None] | None = None
    workers: Sequence[LaneWorker] = ()
    dali: threading.Lock = field(default_factory=threading.Lock)  # DALI is not known thread-safe: lanes decode in turn


@dataclass
class LaneWorker:
    """One lane: its loader, what it holds and what it ran.

    Attributes:
        index: Its place among the lanes (the planner's ``Step.lane``).
        name: ``gpu0``, ``cpu1``...
        load: ``(member, variant) -> Runner`` (not yet active), on the lane's device or thread share.
        shared: The run's shared state.
        runner: Its active runner, or None.
        loaded: ``(member, variant)`` of that runner.
        stepping: The member whose plan step runs (or last ran) on it.
        retired: Member -> why it failed on this lane (never planned here again).
        log: Its steps, for the report.
        batches: Member -> its batch size on this lane (halved on out of memory).
        tokens: Member -> its token budget per batch on this lane (text members with ``max_tokens``).
    """

    index: int
    name: str
    load: Callable[[Member, Variant], Runner]
    shared: Shared
    runner: Runner | None = None
    loaded: tuple[str, str] | None = None
    stepping: str | None = None
    retired: dict[str, str] = field(default_factory=dict)
    log: LaneLog = field(default_factory=LaneLog)
    batches: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)

    # -- per-lane sizes ---------------------------------------------------------------
    def batch(self, st: MemberRun) -> int:
        return self.batches.get(st.name, st.start_batch)

    def token_budget(self, st: MemberRun) -> int:
        return self.tokens.get(st.name, st.start_tokens)

    # -- the runner -------------------------------------------------------------------
    def ensure(self, st: MemberRun, v: Variant) -> Runner:
        """The active runner for ``v``: reused if loaded, else loaded and activated (timed).

        Raises:
            Exception: Whatever loading raised (the executor decides what it costs).
        """
        if self.loaded == (st.name, v.name) and self.runner is not None:
            return self.runner
        self.unload()
        sh = self.shared
        t0 = sh.clock()
        with sh.booking.outside("load"):
            runner = self.load(st.member, v)
            runner.activate()
        dt = sh.clock() - t0
        sh.costs.loaded(st.name, v.name, dt, gpu=runner.device_kind() == "gpu")
        if getattr(runner, "fell_back", False):  # its profile was measured on another backend
            sh.costs.rebase(st.name)
        st.report.load_seconds += dt
        st.report.backend = runner.describe()
        self.runner, self.loaded, st.status = runner, (st.name, v.name), Status.RUNNING
        where = f" on lane {self.name}" if len(sh.workers) > 1 else ""
        log(f"{st.name}/{v.name}: {st.report.backend}, batch {self.batch(st)}, loaded in {dt:.2f}s{where}")
        problem = sh.device_check(runner) if sh.device_check is not None else None
        if problem and not sh.report.device_warnings:  # once a run: the cause is the same for every member
            sh.report.device_warnings.append(f"{problem} (first seen loading {st.name}/{v.name})")
            sh.event(f"WARNING, RUNNING ON THE CPU: {sh.report.device_warnings[0]}")
        return runner

    def unload(self) -> None:
        """Close its runner; the member is pending again unless another lane still has it loaded."""
        if self.runner is None or self.loaded is None:  # (set together: both or neither)
            return
        name = self.loaded[0]
        try:
            self.runner.deactivate()
        except Exception as exc:  # a runner failing to close must not end the run
            log(f"{name}: error while unloading: {exc}")
        self.runner, self.loaded = None, None
        st = self.shared.states[name]
        if st.status == Status.RUNNING and not any(w.loaded and w.loaded[0] == name for w in self.shared.workers):
            st.status = Status.PENDING

    # -- one chunk --------------------------------------------------------------------
    def predict(self, st: MemberRun, v: Variant, runner: Runner, a: int, b: int) -> np.ndarray:
        """The member's predictions for rows ``[a, b)`` on this lane, batch by batch.

        Out of memory halves this lane's batch (a text member's token budget)
        and retries, down to one row. Non-finite outputs become NaN rows.

        Raises:
            Exception: The backend failed (out of memory at one row included).
        """
        if st.member.text is not None:
            return self._predict_text(st, v, runner, a, b)
        sh = self.shared
        parts, pos = [], a
        t0 = sh.clock()
        feeds = self._feeds(st, v, a, b)
        wait = sh.clock() - t0  # the data stages not hidden by overlap: part of the member's cost per row
        while pos < b:
            n = min(self.batch(st), b - pos)
            t0 = sh.clock()
            part = [{k: x[pos - a:pos - a + n] for k, x in f.items()} for f in feeds]
            try:
                with sh.booking.outside("infer"):
                    values = predict_rows(runner, st.member, v, sh.test, pos, pos + n, n, feeds=part)
            except OutOfMemoryError as exc:
                self._halve(st, exc, text=False, one_window=False)
                continue
            dt = sh.clock() - t0
            sh.feeds.book(infer_s=dt)
            dt, wait = dt + wait, 0.0
            self._check_width(st, values, n)
            self._nonfinite(st, v, values, pos)
            self._book(st, v, n, dt)
            parts.append(values)
            pos += n
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _halve(self, st: MemberRun, exc: OutOfMemoryError, *, text: bool, one_window: bool, length: int = 0) -> None:
        """Out of memory: halve this lane's token budget (text with one) or batch, or re-raise at the floor."""
        if text and self.token_budget(st):
            if one_window:  # one window over the budget: a smaller budget cannot help
                raise OutOfMemoryError(f"{exc} (even one window of {length} tokens)") from exc
            self.tokens[st.name] = max(1, self.token_budget(st) // 2)
            what = f"token budget halved to {self.token_budget(st)}"
        elif self.batch(st) <= 1:
            raise OutOfMemoryError(f"{exc} (even at batch size 1)") from exc
        else:
            self.batches[st.name] = max(1, self.batch(st) // 2)
            what = f"batch size halved to {self.batch(st)}"
        st.report.oom_retries += 1
        self.shared.event(f"{st.name}: out of memory, {what} and retried")

    def _feeds(self, st: MemberRun, v: Variant, a: int, b: int) -> list[dict[str, np.ndarray]]:
        """The member's prepared inputs for chunk ``[a, b)``: the one place a lane reads them.

        One reader for every lane (:class:`runtime.data.pipeline.FeedPipeline`: images
        decoded once per run, a chunk's table rows shared by the members reading
        them); the chunks this lane will take next are prepared meanwhile (those
        another lane computes now are not). DALI decodes for one lane at a time.
        """
        sh = self.shared
        ahead = [c for c in st.missing() if c[0] >= b and c not in st.inflight][:max(sh.feeds.depth, 1)]
        with sh.booking.outside("read"), (sh.dali if sh.feeds.loader == "dali" else contextlib.nullcontext()):
            return sh.feeds.get(st.member, v, a, b, ahead=ahead, lane=self.index)

    def _predict_text(self, st: MemberRun, v: Variant, runner: Runner, a: int, b: int) -> np.ndarray:
        """A text chunk: its windows sorted by length, each batch padded to its own longest."""
        sh = self.shared
        text = st.member.text
        assert text is not None, "called for text members only"
        rows = sh.test.text_rows(st.member)
        chunk = TextChunk.of(rows, a, b)
        values = np.empty((len(chunk.windows), self.width))
        # The planner counts rows: each batch is booked as its share of the chunk's padded tokens.
        total = max(1, chunk.padded_tokens(self.batch(st), self.token_budget(st)))
        stats = st.report.text if st.report.text is not None else {}
        pos = 0
        while pos < len(chunk.order):
            end = chunk.batch_end(pos, self.batch(st), self.token_budget(st))
            idx = chunk.order[pos:end]
            t0 = sh.clock()  # building the batch counts, as reading rows does for other members
            try:
                with sh.booking.outside("infer"):
                    out = predict_windows(runner, st.member, rows.feed(text, chunk.windows[idx]))
            except OutOfMemoryError as exc:
                self._halve(st, exc, text=True, one_window=end - pos <= 1, length=int(chunk.lengths[pos]))
                continue
            dt = sh.clock() - t0
            sh.feeds.book(infer_s=dt)
            self._check_width(st, out, end - pos)
            padded = (end - pos) * int(chunk.lengths[end - 1])
            self._book(st, v, (b - a) * padded / total, dt)
            stats["batches"] = stats.get("batches", 0) + 1
            stats["padded_tokens"] = stats.get("padded_tokens", 0) + padded
            stats["real_tokens"] = stats.get("real_tokens", 0) + int(chunk.lengths[pos:end].sum())
            values[idx] = out
            pos = end
        st.report.text = stats
        # A non-finite window makes its row's mean or max non-finite: that row alone is lost.
        with np.errstate(invalid="ignore"):
            out = chunk.reduce(rows, values, text.reduce)
        self._nonfinite(st, v, out, a)
        return out

    @property
    def width(self) -> int:
        return self.shared.width

    def _check_width(self, st: MemberRun, values: np.ndarray, n: int) -> None:
        if values.shape != (n, self.width):
            raise BundleError(f"{st.name}: output {st.member.output!r} has shape {values.shape[1:]}, "
                              f"but the submission needs {self.width} values per row")

    def _book(self, st: MemberRun, v: Variant, rows: float, dt: float) -> None:
        """Time one batch of ``rows`` rows took; the first after a load is kept out of the throughput, booked apart."""
        rate = self.shared.costs.rate(st.name, v.name)
        if rate.warm:
            st.report.seconds += dt
            st.report.rows_timed += rows
        else:
            st.report.warmup_seconds += dt
            st.report.warmup_rows += rows
        rate.add(rows, dt)

    def _nonfinite(self, st: MemberRun, v: Variant, values: np.ndarray, pos: int) -> None:
        """Rows of ``values`` (rows ``pos``...) with a non-finite output hold no prediction: set them
        to NaN, so they are left to the other members, and count and name the new ones."""
        bad = ~np.isfinite(values).all(axis=1)
        if not bad.any():
            return
        skipped = self.shared.test.skipped(st.member, pos, pos + len(values))
        new = bad if skipped is None else bad & ~skipped
        if new.any():
            if not st.report.rows_nonfinite_output:
                self.shared.event(f"{st.name}/{v.name}: non-finite outputs in row(s) "
                                  f"{', '.join(str(pos + i) for i in np.flatnonzero(new)[:5])}"
                                  f"{' ...' if new.sum() > 5 else ''}; those rows are left to the other members")
            st.report.rows_nonfinite_output += int(new.sum())
        values[bad] = np.nan


__all__ = ["OUTSIDE", "Booking", "LaneWorker", "Shared"]
