"""The members of a serving run: runners loaded once and kept, each run on a batch on a thread it can leave.

A member runs a batch's rows in its own batches, checking the clock before
each: one predicted to end past the call's end is not started. The work runs
on a thread of its own; one still running when the call's time is up is left
behind (a backend cannot be stopped mid-batch): the answer takes the rows it
finished by then, the thread stops at its next batch, and the member sits out
the calls that come while it is still busy. Out of memory halves the batch; a
member that fails on :data:`RETIRE_AFTER` calls in a row is retired.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.backends.base import Runner
from runtime.bundle import Bundle
from runtime.errors import NinefitError, OutOfMemoryError
from runtime.execute.predict import RowSource, predict_rows
from runtime.execute.runners import load_runner
from runtime.manifest import Member, Variant
from runtime.schedule.costs import CostModel
from runtime.serve.options import ServeOptions
from runtime.status import Status

#: A member failing on this many calls in a row is retired for the rest of the run.
RETIRE_AFTER = 3


@dataclass
class Outcome:
    """What one member gave one call.

    Attributes:
        status: ``done`` (every row), ``partial`` (its time ran out between batches), ``abandoned`` (still
            running at the call's end: the rows it had finished), ``failed``, or ``skipped`` (not run).
    """

    member: str
    variant: str = ""
    rows: int = 0
    seconds: float = 0.0
    status: str = "skipped"
    reason: str = ""
    values: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"member": self.member, "variant": self.variant or None, "rows": self.rows,
                "seconds": round(self.seconds, 4), "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class _RunnerOptions:
    """What :func:`runtime.execute.runners.load_runner` takes (a serving run has one lane)."""

    backend: str | None
    batch_size: int | None
    threads: int | None
    device_id: int = 0
    work_dir: Path | None = None
    torch_compile: bool = False


@dataclass
class _Task:
    """One call's work for one member, handed to its worker thread."""

    variant: Variant
    runner: Runner
    test: RowSource
    rows: int
    end: float | None
    parts: list = field(default_factory=list)  # the batches' values, as they finish
    errors: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Slot:
    """One member's runners, worker thread and state in the run."""

    member: Member
    runners: dict[str, Runner] = field(default_factory=dict)
    batch: int = 0
    tasks: queue.Queue | None = None  # the worker's inbox (a worker per member, started on its first task)
    busy: _Task | None = None  # a call's work still running, left behind
    failures: int = 0  # calls in a row it failed on
    retired: str = ""


class MemberPool:
    """The members' runners for a serving run, and running one member on one batch (see the module docstring)."""

    def __init__(self, bundle: Bundle, options: ServeOptions, clock: Callable[[], float], costs: CostModel,
                 failed: dict[str, str]):
        self.bundle, self.options, self.clock, self.costs = bundle, options, clock, costs
        self.slots = {m.name: _Slot(m, batch=m.batch_size, retired=failed.get(m.name, ""))
                      for m in bundle.manifest.members}
        self._ropts = _RunnerOptions(options.backend, None, options.threads)

    def runner(self, member: Member, variant: Variant) -> Runner:
        """The active runner for ``variant``, loaded and activated on first use (timed as its setup)."""
        slot = self.slots[member.name]
        if variant.name not in slot.runners:
            t0 = self.clock()
            runner = load_runner(self.bundle, member, variant, self._ropts)
            runner.activate()
            self.costs.loaded(member.name, variant.name, self.clock() - t0, gpu=runner.device_kind() == "gpu")
            slot.runners[variant.name] = runner
        return slot.runners[variant.name]

    def available(self, name: str) -> str:
        """Why member ``name`` cannot run now ("" when it can)."""
        slot = self.slots[name]
        if slot.retired:
            return slot.retired
        if slot.busy is not None and not slot.busy.done.is_set():
            return "still running a batch it was left behind on"
        slot.busy = None
        return ""

    def run(self, member: Member, variant: Variant, test: RowSource, rows: int, end: float | None,
            until: float | None = None) -> Outcome:
        """Rows ``[0, rows)`` of ``test`` on ``variant``: no batch is started that would end past ``end``,
        and the work is left behind at ``until`` (default ``end``; None: never); what finished by then."""
        until = end if until is None else until
        slot = self.slots[member.name]
        out = Outcome(member.name, variant.name)
        t0 = self.clock()
        try:
            runner = self.runner(member, variant)
        except NinefitError as exc:
            return self._failed(slot, out, f"could not load {variant.name}: {exc}", t0)
        except Exception as exc:  # noqa: BLE001 - a member that cannot load costs its contribution only
            return self._failed(slot, out, f"could not load {variant.name}: {type(exc).__name__}: {exc}", t0)
        task = _Task(variant, runner, test, rows, end)
        if slot.tasks is None:
            slot.tasks = queue.Queue()
            threading.Thread(target=self._worker, args=(slot,), name=f"ninefit-serve-{member.name}",
                             daemon=True).start()
        slot.tasks.put(task)
        task.done.wait(None if until is None else max(0.0, until - self.clock()))
        out.seconds = self.clock() - t0
        done = list(task.parts)  # the batches finished by now (work left behind appends no more)
        if not task.done.is_set():
            task.cancel.set()
            slot.busy = task
            out.status, out.reason = "abandoned", "still running when the call's time was up: left behind"
        elif task.errors:
            error = task.errors[0]
            kind = "" if isinstance(error, NinefitError) else f"{type(error).__name__}: "
            return self._failed(slot, out, f"{kind}{error}", t0, partial=done)
        out.values = np.concatenate(done) if done else None
        out.rows = 0 if out.values is None else len(out.values)
        if out.status != "abandoned":
            out.status = "done" if out.rows == rows else "partial"
            if out.status == "partial":
                out.reason = "its next batch would have ended past the call's end"
        slot.failures = 0
        return out

    def measure(self, member: Member, variant: Variant, test: RowSource, rows: int) -> None:
        """Time one more batch where the member's rate has none after its warm-up (the first call's rows may
        be one batch: the warm-up): the later calls' plans need a measured cost. Its values are not used."""
        rate = self.costs.rate(member.name, variant.name)
        slot = self.slots[member.name]
        if rate.rows or not rows or variant.name not in slot.runners:
            return
        n = min(slot.batch, rows)
        t = time.perf_counter()
        predict_rows(slot.runners[variant.name], member, variant, test, 0, n, n)
        rate.add(n, time.perf_counter() - t)

    def _failed(self, slot: _Slot, out: Outcome, reason: str, t0: float, partial: list | None = None) -> Outcome:
        slot.failures += 1
        out.status, out.reason, out.seconds = "failed", reason[:600], self.clock() - t0
        if slot.failures >= RETIRE_AFTER:
            slot.retired = f"{Status.FAILED}: failed on {slot.failures} calls in a row, the last: {out.reason}"
            out.reason += f"; retired for the rest of the run (failed on {RETIRE_AFTER} calls in a row)"
        return out

    def _worker(self, slot: _Slot) -> None:
        """The member's thread: its tasks, one after another (each call's work for it)."""
        inbox = slot.tasks
        assert inbox is not None, "run() makes the inbox before it starts the worker"
        while True:
            task = inbox.get()
            if task is None:
                return
            try:
                self._work(slot, task)
            except BaseException as exc:  # noqa: BLE001 - said to the caller, never raised on this thread
                task.errors.append(exc)
            finally:
                task.done.set()

    def _work(self, slot: _Slot, task: _Task) -> None:
        """The member's batches of one task, each started only if predicted to end by the task's end."""
        member, variant = slot.member, task.variant
        rate = self.costs.rate(member.name, variant.name)
        pos = 0
        while pos < task.rows and not task.cancel.is_set():
            n = min(slot.batch, task.rows - pos)
            if pos and task.end is not None and self.clock() + n * self.costs.cautious_s_per_row(
                    member.name, variant.name) > task.end:
                return
            t = time.perf_counter()
            try:
                values = predict_rows(task.runner, member, variant, task.test, pos, pos + n, n)
            except OutOfMemoryError:
                if slot.batch <= 1:
                    raise
                slot.batch = max(1, slot.batch // 2)
                continue
            if task.cancel.is_set():
                return
            rate.add(n, time.perf_counter() - t)
            task.parts.append(values)
            pos += n

    def close(self) -> None:
        """Close every runner (the members' threads left behind are asked to stop first)."""
        for slot in self.slots.values():
            if slot.busy is not None:
                slot.busy.cancel.set()
            if slot.tasks is not None:
                slot.tasks.put(None)
            for runner in slot.runners.values():
                try:
                    runner.deactivate()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
            slot.runners.clear()


__all__ = ["RETIRE_AFTER", "MemberPool", "Outcome"]
