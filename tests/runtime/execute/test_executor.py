"""The executor on a fake clock: fake runners advance it by a cost per row, so
every deadline decision (probe, plan, degrade, stop, drop) is tested in milliseconds."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest

from runtime.backends.base import Runner
from runtime.data.testdata import TestData as Table
from runtime.errors import BackendError
from runtime.execute.checkpoint import ChunkStore, chunk_grid
from runtime.execute.executor import Executor, ExecutorSettings, Work
from runtime.execute.memory import MemoryMonitor
from runtime.manifest import DataSpec, InputSpec, Member, Variant
from runtime.output.report import MemberReport, RunReport
from runtime.schedule.budget import NO_LIMIT, Clock, default_margin, measured_margin
from runtime.schedule.planner import Budget
from tests.fixtures.clock import FakeClock

pytestmark = pytest.mark.timeout(30)

ROWS = 100
WIDTH = 2


class FakeRunner(Runner):
    """Advances the fake clock by ``cost(name, rows_so_far)`` per row; outputs the member's index."""

    def __init__(self, world: World, name: str):
        super().__init__(name)
        self.world = world

    def activate_impl(self) -> None:
        self.world.clock.advance(self.world.setup_s)

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, feed):
        x = feed["x"]
        n = len(x)
        w = self.world
        if self.name in w.fail:
            raise RuntimeError("injected failure")
        if n > w.oom.get(self.name, n):
            raise RuntimeError("CUDA out of memory (injected)")
        with w.lock:  # lanes share the counters (never the clock's sleep: LaneClock overlaps the lanes')
            seconds = n * w.cost(self.name)
            w.calls[self.name] += 1
            every, extra = w.spikes.get(self.name, (0, 0.0))
            if every and w.calls[self.name] % every == 0:
                seconds += extra  # jitter: every so many batches, one runs long
            w.rows[self.name] += n
        w.clock.advance(seconds)
        return {"out": np.repeat(x.reshape(n, 1), WIDTH, axis=1) + w.index(self.name)}


class World:
    """Members a, b, c (values 3, 2, 1) with fp32 and fp16 (value 0.9, half the cost) rungs.

    ``clock``: a :class:`tests.fixtures.clock.FakeClock` (one lane), or a LaneClock for lanes side by side.
    """

    def __init__(self, tmp_path, costs: dict[str, float], *, setup_s: float = 0.0, values=(3.0, 2.0, 1.0),
                 clock: FakeClock | None = None):
        self.clock = clock if clock is not None else FakeClock()
        self.lock = threading.Lock()
        self.costs = dict(costs)  # "a/fp32" -> s per row; "a/fp16" defaults to half
        self.setup_s = setup_s
        self.slowdown: dict[str, tuple[int, float]] = {}  # name -> (after rows, factor)
        self.fail: set[str] = set()
        self.oom: dict[str, int] = {}
        self.rows: Counter = Counter()
        self.calls: Counter = Counter()
        self.spikes: dict[str, tuple[int, float]] = {}  # name -> (every n-th batch, extra seconds)
        self.loads: list[str] = []
        self.writes = 0
        self.write_s = 0.0  # what each submission write takes
        x = InputSpec(name="x", dtype="float64", shape=("batch",), columns=("x",))
        self.members = tuple(
            Member(name=n, weight=w, inputs=(x,), output="out", batch_size=10, variants=(
                Variant(name="fp32", file=f"{n}.onnx"),
                Variant(name="fp16", file=f"{n}16.onnx", precision="fp16", value_factor=0.9),
            ))
            for n, w in zip("abc", values)
        )
        import pandas as pd

        frame = pd.DataFrame({"id": [str(i) for i in range(ROWS)], "x": np.arange(ROWS, dtype=float)})
        self.test = Table(frame["id"].tolist(), frame, DataSpec(format="table", test="t.csv", id_column="id"), tmp_path)
        self.store = ChunkStore(tmp_path / "work", "key")
        self.grids = {m.name: chunk_grid(ROWS, m.batch_size) for m in self.members}

    def index(self, name: str) -> int:
        return "abc".index(name[0])

    def cost(self, name: str) -> float:
        base = self.costs.get(name, self.costs.get(name.replace("fp16", "fp32"), 0.0) / 2)
        after, factor = self.slowdown.get(name, (None, 1.0))
        return base * (factor if after is not None and self.rows[name] >= after else 1.0)

    def load(self, member: Member, variant: Variant) -> Runner:
        self.loads.append(f"{member.name}/{variant.name}")
        return FakeRunner(self, f"{member.name}/{variant.name}")

    def executor(self, limit: float | None, *, margin: float = 5.0, profile=None, start: float = 0.0,
                 fixed_margin: bool = True) -> Executor:
        self.clock.t = start
        self.report = RunReport(bundle="b", rows=ROWS, submission="s.csv", time_limit_s=limit)
        self.report.members = [MemberReport(name=m.name, weight=m.weight, value=m.value) for m in self.members]

        def write() -> float:
            self.writes += 1
            self.clock.advance(self.write_s)
            return self.write_s

        budget = Budget(deadline=NO_LIMIT if limit is None else limit, margin_s=0.0 if limit is None else margin, reserve_s=0.5)
        return Executor(Work(self.members, self.grids, self.test, self.store, WIDTH, profile), [("lane0", self.load)],
                        clock=self.clock, budget=budget, report=self.report, monitor=MemoryMonitor(device_id=None),
                        write_submission=write,
                        settings=ExecutorSettings(limited=limit is not None, fixed_reserve=True, fixed_margin=fixed_margin,
                                                  progress=False))

    def statuses(self) -> dict[str, str]:
        return {m.name: m.status for m in self.report.members}


def profile_of(world: World, *names: str) -> dict:
    return {n: {"fp32": {"s_per_row": world.costs[f"{n}/fp32"], "setup_s": world.setup_s}} for n in names}


def test_everything_fits_and_runs_best_value_per_second_first(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.3, "b/fp32": 0.1, "c/fp32": 0.1})
    ex = w.executor(100.0, profile=profile_of(w, "a", "b", "c"))
    ex.run()
    assert w.statuses() == {"a": "done", "b": "done", "c": "done"}
    # Probes first, most valuable per second first: b (0.2 value/s), then c (0.1; a's 12 s probe, at twice
    # its unmeasured cost, does not fit the 10 % share), kept as results. Then the plan: b, then a and c
    # (0.1 value/s, tie: manifest order).
    assert w.loads == ["b/fp32", "c/fp32", "b/fp32", "a/fp32", "c/fp32"]
    assert [d["decision"] for d in w.report.member("a").decisions] == ["no probe", "run"]
    assert w.report.member("b").decisions[0]["decision"] == "probe" and w.report.member("b").rows_computed == ROWS
    assert w.clock.t == pytest.approx(50.0)
    assert w.writes == 2  # after b and after a; after c, the last, the run's final write follows
    assert ex.delivered() == (pytest.approx(1.0), pytest.approx(1.0))


def test_a_finished_member_rewrites_the_submission_only_when_the_last_write_is_long_past(tmp_path):
    """Each write takes 1 s: the first (before any model) and then one after a member only once 10 s
    (WRITE_SPACING writes) have passed since the last one; the final write is the run's (not here)."""
    from runtime.schedule.budget import WRITE_SPACING

    w = World(tmp_path, {"a/fp32": 0.3, "b/fp32": 0.01, "c/fp32": 0.2})
    w.write_s = 1.0
    ex = w.executor(None, profile=profile_of(w, "a", "b", "c"))
    ex.after_write(w.write_s)  # the run's first write
    ex.run()
    assert WRITE_SPACING == 10.0 and w.statuses() == {"a": "done", "b": "done", "c": "done"}
    # b (1 s of rows) ends 1 s after the first write: not rewritten; the next (20 s or 30 s later) is;
    # the last is not (nothing is left: the run's final write follows).
    assert w.writes == 1, w.writes


def test_a_member_started_and_left_out_when_time_is_up_is_stopped_not_dropped(tmp_path):
    """Past the limit the planner leaves every member out ("no time left"): one that ran part of its
    rows is recorded as stopped part-way (as a member whose next chunk does not fit is), one never
    started as dropped, whichever comes first, the limit or the chunk check."""
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    ex = w.executor(10.0, profile=profile_of(w, "a", "b", "c"))  # limit 10 - 5 - 0.5
    st = ex.states["a"]
    st.covered[w.grids["a"][0]] = 0
    st.status, ex.workers[0].loaded, ex.workers[0].stepping = "running", ("a", "fp32"), "a"
    w.clock.t = 4.5
    ex.plan()
    assert decisions(w, "a")[-1] == "stop" and decisions(w, "b")[-1] == "drop"
    assert "no time left" in w.report.member("a").decisions[-1]["reason"]


def test_only_two_fit_the_third_is_never_started(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.3, "b/fp32": 0.3, "c/fp32": 0.3, "a/fp16": 0.3, "b/fp16": 0.3, "c/fp16": 0.3})
    ex = w.executor(70.0, profile=profile_of(w, "a", "b", "c"))
    ex.run()
    assert w.statuses() == {"a": "done", "b": "done", "c": "dropped"}
    assert "c/fp32" not in w.loads and "c/fp16" not in w.loads
    assert w.clock.t <= 70.0 - 5.0
    assert "would need" in w.report.member("c").reason


def test_no_limit_runs_everything_without_probing(tmp_path):
    w = World(tmp_path, {"a/fp32": 1.0, "b/fp32": 1.0, "c/fp32": 1.0})
    w.executor(None).run()
    assert w.statuses() == {"a": "done", "b": "done", "c": "done"}
    assert w.loads == ["a/fp32", "b/fp32", "c/fp32"]  # one load each: nothing to probe


def test_unprofiled_members_are_probed_then_planned(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.3, "b/fp32": 0.3, "c/fp32": 0.3}, setup_s=1.0)
    ex = w.executor(80.0)
    ex.run()
    assert [e for e in w.report.events if "measured" in e] and len([e for e in w.report.events if "measured" in e]) == 3
    st = w.statuses()
    assert st["a"] in ("done", "degraded") and st["b"] in ("done", "degraded")
    assert st["c"] in ("partial", "dropped", "degraded")
    assert w.clock.t <= 80.0 - 5.0
    # Probe rows are real predictions, kept: c covers at least its probe.
    assert w.report.member("c").rows >= 20


def test_slowdown_mid_run_degrades_to_the_cheaper_variant_in_time(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.2, "a/fp16": 0.05, "b/fp32": 0.1, "c/fp32": 0.1})
    w.slowdown["a/fp32"] = (30, 10.0)  # after 30 rows, fp32 runs at 2 s/row
    ex = w.executor(60.0, profile={**profile_of(w, "a", "b", "c"), "a": {"fp32": {"s_per_row": 0.2}, "fp16": {"s_per_row": 0.05}}})
    ex.run()
    a = w.report.member("a")
    assert a.status == "degraded", w.report.events
    assert a.variants == ["fp32", "fp16"] and "fp32 -> fp16" in a.reason
    assert w.clock.t <= 60.0 - 5.0
    assert any("degraded to fp16" in e for e in w.report.events)


def test_slowdown_without_a_cheaper_rung_stops_the_member_in_time(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.2, "a/fp16": 10.0, "b/fp32": 0.1, "c/fp32": 0.1})
    w.slowdown["a/fp32"] = (30, 10.0)
    ex = w.executor(60.0, profile={**profile_of(w, "a", "b", "c"), "a": {"fp32": {"s_per_row": 0.2}, "fp16": {"s_per_row": 10.0}}})
    ex.run()
    a = w.report.member("a")
    assert a.status == "partial" and 30 <= a.rows < ROWS, w.report.events
    assert w.clock.t <= 60.0 - 5.0
    assert w.statuses()["b"] == "done"


def test_a_member_that_raises_is_skipped_and_the_others_run(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    w.fail.add("b/fp32")
    ex = w.executor(100.0, profile=profile_of(w, "a", "b", "c"))
    ex.run()
    assert w.statuses() == {"a": "done", "b": "failed", "c": "done"}
    assert "injected failure" in w.report.member("b").reason
    assert ex.delivered()[0] == pytest.approx((3 + 1) / 6)


def test_out_of_memory_halves_the_batch_then_gives_up_at_one_row(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.01, "b/fp32": 0.01, "c/fp32": 0.01})
    w.oom = {"a/fp32": 3, "b/fp32": 0}
    w.executor(100.0, profile=profile_of(w, "a", "b", "c")).run()
    a, b = w.report.member("a"), w.report.member("b")
    assert (a.status, a.batch_size, a.oom_retries) == ("done", 2, 2)  # 10 -> 5 -> 2 works
    assert b.status == "failed" and "even at batch size 1" in b.reason
    assert w.statuses()["c"] == "done"


def test_finished_chunks_are_resumed_not_recomputed(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    for start, stop in chunk_grid(ROWS, 10)[:4]:
        w.store.save("a", "fp32", start, np.zeros((stop - start, WIDTH)))
    w.store.save("b", "fp16", 0, np.zeros((10, WIDTH)))
    w.executor(None).run()
    assert w.rows["a/fp32"] == ROWS - 40 and w.rows["b/fp32"] == ROWS - 10
    assert w.report.chunks_resumed == 5
    assert w.report.member("b").status == "degraded"  # one chunk came from fp16


def test_past_the_limit_nothing_starts(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    w.executor(100.0, profile=profile_of(w, "a", "b", "c"), start=96.0).run()
    assert w.loads == []
    assert set(w.statuses().values()) == {"dropped"}


def test_a_member_whose_first_chunk_cannot_fit_is_stopped_not_looped(tmp_path):
    # Profile says 0.01 s/row; live it is 4 s/row: the plan fits, the chunks do not.
    w = World(tmp_path, {"a/fp32": 4.0, "b/fp32": 4.0, "c/fp32": 4.0, "a/fp16": 4.0, "b/fp16": 4.0, "c/fp16": 4.0})
    prof = {n: {"fp32": {"s_per_row": 0.01}, "fp16": {"s_per_row": 0.01}} for n in "abc"}
    ex = w.executor(100.0, profile=prof)
    ex.run()
    assert w.clock.t <= 100.0 - 5.0 + 1e-9
    assert w.statuses() == {"a": "partial", "b": "dropped", "c": "dropped"}
    assert "next chunk" in w.report.member("a").reason
    # a's first batches ran 400x slower than profiled: b and c are costed so too.
    assert ex.costs.calibration() == pytest.approx(400.0)
    assert "next chunk (10 rows) would need 1m20s" in w.report.member("b").reason  # 10 x 4 s, twice (unmeasured)


def test_clock_counts_from_the_start_time():
    c = Clock(start_time=1000.0, wall=lambda: 1030.0, perf=iter([5.0, 7.5]).__next__)
    assert c() == pytest.approx(32.5)
    assert Clock(start_time=2000.0, wall=lambda: 1000.0, perf=lambda: 0.0)() == 0.0  # a start in the future: now


@pytest.mark.parametrize(("limit", "margin"), [(32400, 324.25), (3600, 36.25), (60, 0.85), (10, 0.35), (400, 4.25), (0.8, 0.2)])
def test_default_margin(limit, margin):
    assert default_margin(limit) == pytest.approx(margin)


def test_backend_error_types_are_kept_in_the_reason(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})

    def load(member, variant):
        if member.name == "c":
            raise BackendError("c: onnxruntime could not load c.onnx: bad file")
        return w.load.__func__(w, member, variant)

    w.load = load
    w.executor(None).run()
    assert w.report.member("c").status == "failed" and "could not load fp32" in w.report.member("c").reason


def test_members_failing_before_the_run_are_skipped(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    ex = w.executor(None)
    ex.states["b"].status, w.report.member("b").reason = "failed", "failed (test data): missing px3"
    ex.run()
    assert w.statuses() == {"a": "done", "b": "failed", "c": "done"}
    assert "b/fp32" not in w.loads and w.report.member("b").reason.endswith("missing px3")


def test_a_saved_chunk_that_does_not_load_is_recomputed(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    grid = chunk_grid(ROWS, 10)
    for start, stop in grid[:4]:
        w.store.save("a", "fp32", start, np.zeros((stop - start, WIDTH)))
    w.store.path("a", "fp32", *grid[1]).write_bytes(b"torn")  # named as done, unreadable
    w.store.save("a", "fp32", grid[2][0], np.zeros((10, WIDTH + 1)))  # named as done, wrong width
    w.executor(None).run()
    assert w.rows["a/fp32"] == ROWS - 20
    assert w.report.chunks_resumed == 2 and w.report.member("a").chunks_computed == len(grid) - 2
    assert all(w.store.load("a", "fp32", a, b, WIDTH) is not None for a, b in grid)


def test_warm_up_batches_are_booked_apart_from_inference(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1}, setup_s=2.0)
    w.executor(None).run()
    a = w.report.member("a")
    assert a.load_seconds == pytest.approx(2.0)
    assert (a.warmup_seconds, a.warmup_rows) == (pytest.approx(1.0), 10)  # the first batch of 10 rows
    assert a.seconds == pytest.approx(9.0) and a.rows_computed == ROWS
    assert a.rows_per_s == pytest.approx(10.0)
    assert w.report.to_dict()["members"][0]["warmup_seconds"] == pytest.approx(1.0)


def test_a_chunk_whose_save_fails_keeps_the_speed_honest(tmp_path):
    """Its batches were inferred and timed: the speed counts their rows, never going negative."""
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    save = w.store.save

    def failing(member, variant, start, values):
        if member == "a" and start >= 20:
            raise RuntimeError("injected: the chunk file could not be written")
        return save(member, variant, start, values)

    w.store.save = failing
    w.executor(None).run()
    a = w.report.member("a")
    assert a.status == "failed" and a.rows_computed == 20 and a.warmup_rows == 10
    assert a.rows_timed == 20 and a.rows_per_s == pytest.approx(10.0)  # 2 timed batches, the third's save failed
    assert "rows/s" in w.report.table() and "-" not in f"{a.rows_per_s:,.0f}"


# -- measured truth: probing, the machine factor, returning members, pruned rungs, the margin ----------


def decisions(w: World, name: str) -> list[str]:
    return [d["decision"] for d in w.report.member(name).decisions]


def test_every_member_is_probed_at_start_and_its_rows_are_kept(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1}, setup_s=0.5)
    profile = {n: {"fp32": {"s_per_row": 0.1, "setup_s": 0.5}} for n in "abc"}
    ex = w.executor(1000.0, profile=profile)
    ex.run()
    # Most valuable first (a, b, c: equal cost, values 3, 2, 1), each loaded, warmed up and timed on
    # two chunks (1/20 of its rows), all within the 10 % share; then the plan reloads them.
    assert w.loads[:3] == ["a/fp32", "b/fp32", "c/fp32"]
    assert [decisions(w, n)[0] for n in "abc"] == ["probe"] * 3
    probe_end = max(w.report.member(n).decisions[0]["at_s"] for n in "abc")
    assert probe_end == pytest.approx(3 * (0.5 + 2.0))
    assert all(w.report.member(n).decisions[0]["s_per_row"] == pytest.approx(0.1) for n in "abc")
    # Probe rows are results: every row is computed once.
    assert w.rows == Counter({"a/fp32": ROWS, "b/fp32": ROWS, "c/fp32": ROWS})
    assert w.statuses() == {"a": "done", "b": "done", "c": "done"}
    assert ex.costs.calibration() == pytest.approx(1.0)


def test_the_probe_share_bounds_probing_and_the_machine_factor_costs_the_rest(tmp_path):
    """The profile is 4x too fast. a's probe finds it; b and c, not probed (their probes would pass the
    10 % share), are costed at 4x their profile, so the plan does not start what cannot finish."""
    w = World(tmp_path, {"a/fp32": 0.4, "b/fp32": 0.4, "c/fp32": 0.4, "a/fp16": 0.4, "b/fp16": 0.4, "c/fp16": 0.4})
    profile = {n: {"fp32": {"s_per_row": 0.1}} for n in "abc"}
    ex = w.executor(100.0, profile=profile)
    ex.run()
    assert decisions(w, "a")[0] == "probe"
    assert ex.costs.calibration() == pytest.approx(4.0)
    for n in "bc":
        first = w.report.member(n).decisions[0]
        assert first["decision"] == "no probe" and "probe share" in first["reason"]
        assert first["s_per_row"] == pytest.approx(0.4)  # 0.1 profiled x machine factor 4
    # a: 8 s of probe + 32 s; b 40 s: 80 s of the 94.5 s; c gets the rest as a partial run.
    assert w.statuses()["a"] == "done" and w.statuses()["b"] == "done"
    assert w.statuses()["c"] in ("partial", "dropped")
    assert w.clock.t <= 100.0 - 5.0 - 0.5 + 1e-9


def test_a_dropped_member_returns_when_time_frees_up(tmp_path):
    """c's profile is 3x too slow and it is not probed (the 10 % share is spent on a): b is dropped to
    make room for it. Once c's first chunks show it running 3x ahead of plan, the run re-plans and
    b comes back."""
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1, "a/fp16": 0.1, "b/fp16": 0.1, "c/fp16": 0.1},
              values=(3.0, 2.0, 2.5))
    profile = {"a": {"fp32": {"s_per_row": 0.1}}, "b": {"fp32": {"s_per_row": 0.1}}, "c": {"fp32": {"s_per_row": 0.3}}}
    ex = w.executor(45.5, profile=profile)  # after a's 2 s probe, 38 s: a (8 s) and c (30 s) fill it exactly
    ex.run()
    assert [decisions(w, n)[0] for n in "abc"] == ["probe", "no probe", "no probe"]
    kinds = decisions(w, "b")
    assert kinds[1] == "drop" and kinds[2] == "run", w.report.member("b").decisions
    back = w.report.member("b").decisions[2]
    assert back["at_s"] == pytest.approx(12.0)  # a done at 10, c's warm-up and first timed chunk by 12
    assert any(e.startswith("b: back in the plan at 12.0s") for e in w.report.events)
    assert w.statuses() == {"a": "done", "b": "done", "c": "done"}
    assert w.clock.t == pytest.approx(30.0)


def test_a_best_rung_is_probed_to_found_the_machine_factor_whatever_the_share(tmp_path):
    """A profile 2.5x too slow, and a tight limit: the plan wants a on fp16, so a (first) probes fp16,
    which says nothing of the machine (a lower rung's error may be its own). b's probe then runs its
    best rung to found the machine factor, though the probe share is spent; c, costed from it, needs
    no probe of its own."""
    w = World(tmp_path, {"a/fp32": 0.2, "a/fp16": 0.04, "b/fp32": 0.1, "c/fp32": 0.1})
    profile = {n: {"fp32": {"s_per_row": 2.5 * f}, "fp16": {"s_per_row": 2.5 * h}}
               for n, f, h in (("a", 0.2, 0.04), ("b", 0.1, 0.05), ("c", 0.1, 0.05))}
    ex = w.executor(30.0, profile=profile)
    ex.run()
    first = {n: w.report.member(n).decisions[0] for n in "abc"}
    assert (first["a"]["decision"], first["a"]["variant"]) == ("probe", "fp16")
    assert (first["b"]["decision"], first["b"]["variant"]) == ("probe", "fp32")
    assert first["b"]["at_s"] > 0.1 * (30.0 - 5.0 - 0.5)  # past the probe share
    assert first["c"]["decision"] == "no probe" and "machine factor 0.40" in first["c"]["reason"]
    assert ex.costs.calibration() == pytest.approx(0.4)
    assert w.clock.t <= 30.0 - 5.0 - 0.5 + 1e-9


def test_a_rung_measured_not_cheaper_is_pruned(tmp_path):
    """a's fp16 is profiled 6x cheaper but runs as slow as fp32 here: once measured it is pruned,
    the plan re-made without it, and the deadline kept."""
    w = World(tmp_path, {"a/fp32": 0.3, "a/fp16": 0.3, "b/fp32": 0.1, "c/fp32": 0.1})
    profile = {"a": {"fp32": {"s_per_row": 0.3}, "fp16": {"s_per_row": 0.05}}, "b": {"fp32": {"s_per_row": 0.1}},
               "c": {"fp32": {"s_per_row": 0.1}}}
    ex = w.executor(40.0, profile=profile)
    ex.run()
    assert any(e.startswith("a: rung fp16 pruned") for e in w.report.events), w.report.events
    assert "prune" in decisions(w, "a")
    assert w.rows["a/fp16"] == 20  # warm-up + one timed chunk, then never again
    assert [v.name for v in ex.member_state(ex.states["a"]).variants] == ["fp32"]
    assert w.statuses()["b"] == "done" and w.statuses()["c"] == "done"
    assert w.clock.t <= 40.0 - 5.0 - 0.5 + 1e-9


def test_a_rung_measured_cheaper_is_kept(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.3, "a/fp16": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    profile = {"a": {"fp32": {"s_per_row": 0.3}, "fp16": {"s_per_row": 0.1}}, "b": {"fp32": {"s_per_row": 0.1}},
               "c": {"fp32": {"s_per_row": 0.1}}}
    ex = w.executor(40.0, profile=profile)
    ex.run()
    assert not any("pruned" in e for e in w.report.events)
    assert w.report.member("a").status == "degraded" and w.rows["a/fp16"] > 20


def test_the_margin_follows_the_measured_jitter(tmp_path):
    w = World(tmp_path, {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    profile = {n: {"fp32": {"s_per_row": 0.1}} for n in "abc"}
    ex = w.executor(100.0, margin=1.25, profile=profile, fixed_margin=False)
    ex.run()
    assert ex.overrun_s < 1e-9 and ex.budget.margin_s == pytest.approx(default_margin(100.0)) == 1.25

    w = World(tmp_path / "jitter", {"a/fp32": 0.1, "b/fp32": 0.1, "c/fp32": 0.1})
    w.spikes = {"a/fp32": (4, 3.0), "b/fp32": (4, 3.0)}  # every 4th batch takes 3 s longer
    ex = w.executor(100.0, margin=1.25, profile=profile, fixed_margin=False)
    ex.run()
    assert ex.overrun_s == pytest.approx(3.0)  # a spike after steady batches: 1 s predicted, 4 s taken
    assert ex.budget.margin_s == pytest.approx(measured_margin(100.0, 3.0)) == pytest.approx(6.0)
    assert w.report.member("a").decisions[0]["margin_s"] == pytest.approx(1.25)  # the probe: on the floor
    assert w.clock.t <= 100.0 - 0.5


def test_measured_margin_has_a_floor_and_a_ceiling():
    assert measured_margin(100.0, 0.0) == default_margin(100.0) == 1.25
    assert measured_margin(100.0, 0.5) == 1.25  # twice the overrun is under the floor
    assert measured_margin(100.0, 5.0) == 10.0
    assert measured_margin(100.0, 60.0) == 25.0  # a quarter of the limit at most
