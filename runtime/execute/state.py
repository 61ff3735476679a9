"""What a run works on (:class:`Work`, :class:`ExecutorSettings`) and each member's progress in it
(:class:`MemberRun`): its chunks, which are done and on which rung, what it is doing now.

One :class:`MemberRun` per member, owned by the executor and changed only
under its booking lock (:class:`runtime.execute.worker.Booking`). Per-lane
things (a lane's batch size after an out-of-memory, its loaded runner) live on
the lane's worker, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.data.testdata import TestData
from runtime.execute.checkpoint import ChunkStore
from runtime.execute.predict import nan_rows
from runtime.manifest import Member
from runtime.output.report import MemberReport, RunReport
from runtime.progress import Progress
from runtime.status import Decision, Status

Chunk = tuple[int, int]


@dataclass(frozen=True)
class Work:
    """What a run has to do.

    Attributes:
        members: Manifest members, in manifest order.
        grids: Chunk grid of each member.
        test: The test data.
        store: Where chunks are saved (finished ones are resumed from it).
        width: Values per row the submission needs from each member.
        profile: ``{member: {variant: {"s_per_row", "setup_s"}}}`` priors.
        failed: Members known to fail before anything runs, with the reason.
    """

    members: tuple[Member, ...]
    grids: Mapping[str, list[tuple[int, int]]]
    test: TestData
    store: ChunkStore
    width: int
    profile: Mapping | None = None
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorSettings:
    """How to run it.

    Attributes:
        batch_size: Override of every member's batch size.
        limited: False: no time limit (nothing is probed or degraded).
        fixed_reserve: False: grow the reserve to twice the slowest write.
        fixed_margin: False: derive the margin from the measured jitter.
        progress: Show progress lines.
    """

    batch_size: int | None = None
    limited: bool = True
    fixed_reserve: bool = False
    fixed_margin: bool = False
    progress: bool = True


@dataclass
class MemberRun:
    """One member's work in the run.

    Attributes:
        member: The manifest's member.
        grid: Its chunks, in row order (:func:`runtime.execute.checkpoint.member_grid`).
        covered: Chunk -> index of the best variant holding it (resumed or computed).
        report: Its part of the run report.
        start_batch: Rows per batch at the start (the packaged batch size, or the run's override).
        start_tokens: Text members: padded tokens per batch at the start (0: ``start_batch`` windows).
        status: Where it stands (:class:`runtime.status.Status`; the report's words come at the end).
        drop_reason: Why it was left out or stopped, as the report says it.
        last_variant: The variant it last ran on.
        notes: What the report's reason adds (degradations, pruned rungs).
        decision: The last decision recorded, ``(kind, variant)``.
        pruned: Rungs measured not cheaper than a better one (each said once).
        stuck_at: ``Executor.chunks_run`` when its next chunk last did not fit.
        progress: Its progress line, kept across steps.
        skipped: Chunk -> its rows without a prediction (non-finite inputs or outputs).
        inflight: Chunks a lane is computing now.
        probing: A lane is probing it (or will): no decision is recorded for it until then.
    """

    member: Member
    grid: list[Chunk]
    covered: dict[Chunk, int]
    report: MemberReport
    start_batch: int
    start_tokens: int = 0
    status: Status = Status.PENDING
    drop_reason: str = ""
    last_variant: str = ""
    notes: list[str] = field(default_factory=list)
    decision: tuple[Decision | str, str] = ("", "")
    pruned: set[str] = field(default_factory=set)
    stuck_at: int = -1
    progress: Progress | None = None
    skipped: dict[Chunk, int] = field(default_factory=dict)
    inflight: set[Chunk] = field(default_factory=set)
    probing: bool = False

    @property
    def name(self) -> str:
        return self.member.name

    def close_progress(self, status: str) -> None:
        if self.progress is not None:
            self.progress.close(status)
            self.progress = None

    @property
    def rows_total(self) -> int:
        return self.grid[-1][1] if self.grid else 0

    @property
    def rows_done(self) -> int:
        return sum(b - a for a, b in self.covered)

    @property
    def rows_covered(self) -> int:
        """Rows with a prediction: those of finished chunks, less the skipped ones."""
        return self.rows_done - sum(self.skipped.get(c, 0) for c in self.covered)

    def missing(self) -> list[Chunk]:
        return [c for c in self.grid if c not in self.covered]

    def claim(self) -> Chunk | None:
        """The first chunk neither done nor being computed by a lane, now marked as being computed."""
        for c in self.grid:
            if c not in self.covered and c not in self.inflight:
                self.inflight.add(c)
                return c
        return None

    @classmethod
    def resume(cls, member: Member, grid: list[Chunk], store: ChunkStore, width: int, run: RunReport,
               start_batch: int, failed: str | None = None) -> MemberRun:
        """A member's progress at the start of a run: its chunks checkpointed earlier, each loaded and
        checked (not trusted by its name: one the submission would reject is removed and recomputed)."""
        covered: dict[Chunk, int] = {}
        skipped: dict[Chunk, int] = {}
        for vi, v in enumerate(member.variants):  # best variant wins
            for a, b in sorted(store.chunks(member.name, v.name) & set(grid) - set(covered)):
                values = store.load(member.name, v.name, a, b, width)
                if values is not None:
                    covered[a, b] = vi
                    skipped[a, b] = nan_rows(values)
        report = run.member(member.name)
        st = cls(member, list(grid), covered, report, start_batch, skipped=skipped,
                 start_tokens=member.text.max_tokens if member.text is not None else 0)
        report.chunks_resumed = len(covered)
        run.chunks_resumed += len(covered)
        if not st.missing():
            st.status = Status.DONE
        if failed:
            st.status, report.reason = Status.FAILED, failed
        return st


__all__ = ["Chunk", "ExecutorSettings", "MemberRun", "Work"]
