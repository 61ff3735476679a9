"""The executor on two lanes: each lane a thread with runners of its own (the fake
runners of test_executor, one set per lane), faults kept to their lane, and the
chunks (so the submission) the same as one lane's.

The fake clock is a :class:`tests.fixtures.clock.LaneClock`: the lanes' batches
take their fake seconds side by side, as on two idle cores, and the order in
which the lanes' work happens on it does not depend on how busy this machine is."""

from __future__ import annotations

import threading

import pytest

from runtime.errors import NinefitError
from runtime.execute.checkpoint import ChunkStore
from runtime.execute.executor import Executor, ExecutorSettings, Work
from runtime.execute.lanes import choose_lanes, parse_devices
from runtime.execute.memory import MemoryMonitor
from runtime.output.report import MemberReport, RunReport, lane_line
from runtime.schedule.budget import NO_LIMIT
from runtime.schedule.planner import Budget
from tests.fixtures.clock import LaneClock
from tests.runtime.execute.test_executor import ROWS, WIDTH, FakeRunner, World, profile_of

pytestmark = pytest.mark.timeout(60)


class LaneRunner(FakeRunner):
    """A fake runner of one lane: it may crash or run out of memory there only."""

    def __init__(self, world: World, name: str, lane: str, crash: set[str], oom: dict[str, int]):
        super().__init__(world, name)
        self.lane, self.crash, self.oom = lane, crash, oom

    def infer_impl(self, feed):
        n = len(feed["x"])
        if self.name in self.crash:
            raise RuntimeError(f"injected crash on {self.lane}")
        if n > self.oom.get(self.name, n):
            raise RuntimeError("CUDA out of memory (injected)")
        out = super().infer_impl(feed)
        with self.world.lock:
            self.world.by_lane[self.lane] = self.world.by_lane.get(self.lane, 0) + n
        return out


def world(tmp_path, costs=None, **kwargs) -> World:
    """A :class:`World` on a clock where both lanes start at 0 and work side by side."""
    return World(tmp_path, costs or COSTS, clock=LaneClock(lanes=2), **kwargs)


def lanes_of(w: World, *, crash: dict[str, set[str]] | None = None, oom: dict[str, dict[str, int]] | None = None):
    w.by_lane = {}

    def loader(lane: str):
        def load(member, variant):
            w.loads.append(f"{lane}:{member.name}/{variant.name}")
            return LaneRunner(w, f"{member.name}/{variant.name}", lane, (crash or {}).get(lane, set()),
                              (oom or {}).get(lane, {}))
        return load
    return [(name, loader(name)) for name in ("l0", "l1")]


def executor(w: World, lanes, *, limit: float | None = None, profile=None, failed=None,
             write=lambda: 0.0) -> Executor:
    w.clock.t = 0.0
    w.report = RunReport(bundle="b", rows=ROWS, submission="s.csv", time_limit_s=limit)
    w.report.members = [MemberReport(name=m.name, weight=m.weight, value=m.value) for m in w.members]
    budget = Budget(deadline=NO_LIMIT if limit is None else limit, margin_s=0.0, reserve_s=0.5)
    return Executor(Work(w.members, w.grids, w.test, w.store, WIDTH, profile, failed or {}), lanes,
                    clock=w.clock, budget=budget, report=w.report, monitor=MemoryMonitor(device_id=None),
                    write_submission=write,
                    settings=ExecutorSettings(limited=limit is not None, fixed_reserve=True, fixed_margin=True,
                                              progress=False))


def chunks(store: ChunkStore) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in sorted(store.root.rglob("*.npy"))}


COSTS = {"a/fp32": 0.3, "b/fp32": 0.1, "c/fp32": 0.1}


def test_members_run_side_by_side_and_save_what_one_lane_saves(tmp_path):
    one = World(tmp_path / "one", COSTS)
    executor(one, lanes_of(one)[:1], profile=profile_of(one, "a", "b", "c")).run()
    two = world(tmp_path / "two")
    ex = executor(two, lanes_of(two), profile=profile_of(two, "a", "b", "c"))
    ex.run()
    assert {m.status for m in two.report.members} == {"done"}
    assert chunks(two.store) == chunks(one.store) and len(chunks(one.store)) == 30
    assert sum(two.by_lane.values()) == 3 * ROWS  # no row computed twice
    first = {lane.name: lane.log.steps[0] for lane in ex.workers}
    assert first["l0"]["member"] != first["l1"]["member"], first  # two members at once
    assert {s["member"] for lane in ex.workers for s in lane.log.steps} == {"a", "b", "c"}


def test_one_member_left_is_split_across_both_lanes_chunk_by_chunk(tmp_path):
    w = world(tmp_path)
    ex = executor(w, lanes_of(w), profile=profile_of(w, "a", "b", "c"), failed={"b": "gone", "c": "gone"})
    ex.run()
    assert w.report.member("a").status == "done"
    assert set(w.by_lane) == {"l0", "l1"} and sum(w.by_lane.values()) == ROWS, w.by_lane
    assert len(w.store.chunks("a", "fp32")) == 10


def test_a_running_members_tail_goes_to_a_freed_lane_though_a_finished_member_costs_a_write(tmp_path):
    """The submission write after a member (12 s here) is charged once, as the setup of a member not
    started; a member running on one lane costs another lane its load only, so the planner still
    splits its tail when a lane frees (charged the write, it would not: 12 s to save 5)."""
    from runtime.execute import planning
    from runtime.schedule import planner

    w = world(tmp_path)
    ex = executor(w, lanes_of(w), profile=profile_of(w, "a", "b", "c"))
    ex.after_write(12.0)
    ex.states["a"].status, ex.workers[0].loaded, ex.workers[0].stepping = "running", ("a", "fp32"), "a"
    a, b = ex.member_state(ex.states["a"]), ex.member_state(ex.states["b"])
    assert a.variants[0].setup_s == ex.costs.setup_s("a", "fp32") == 0.0
    assert b.variants[0].setup_s == 12.0
    p = planner.plan_lanes([a], 0.0, ex.budget, planning.planner_lanes(ex.workers, {"a": a}), quantum={"a": 10})
    assert {s.lane for s in p.steps} == {0, 1} and sum(s.rows for s in p.steps) == ROWS


def test_a_crash_on_one_lane_retires_the_member_there_and_the_other_lane_runs_it(tmp_path):
    w = world(tmp_path)
    ex = executor(w, lanes_of(w, crash={"l1": {"b/fp32", "a/fp32", "c/fp32"}}), profile=profile_of(w, "a", "b", "c"))
    ex.run()
    assert {m.status for m in w.report.members} == {"done"}, w.report.table()
    assert set(ex.workers[1].retired) and all("injected crash on l1" in r for r in ex.workers[1].retired.values())
    assert any("retired on lane l1, the other lane(s) go on" in e for e in w.report.events)
    assert w.by_lane == {"l0": 3 * ROWS}


def test_a_member_crashing_on_every_lane_fails_with_each_lanes_reason(tmp_path):
    w = world(tmp_path)
    ex = executor(w, lanes_of(w, crash={"l0": {"b/fp32"}, "l1": {"b/fp32"}}), profile=profile_of(w, "a", "b", "c"))
    ex.run()
    b = w.report.member("b")
    assert b.status == "failed" and "lane l0:" in b.reason and "lane l1:" in b.reason
    assert w.report.member("a").status == w.report.member("c").status == "done"


def test_out_of_memory_on_one_lane_halves_that_lanes_batch_only(tmp_path):
    w = world(tmp_path)
    ex = executor(w, lanes_of(w, oom={"l1": {"a/fp32": 3}}), profile=profile_of(w, "a", "b", "c"),
                  failed={"b": "gone", "c": "gone"})
    ex.run()
    st, a = ex.states["a"], w.report.member("a")
    assert a.status == "done" and a.oom_retries == 2
    assert ex.workers[1].batch(st) == 2 and ex.workers[0].batch(st) == 10  # l0 went on at 10 rows
    assert w.by_lane.get("l1", 0) > 0 and sum(w.by_lane.values()) == ROWS


def test_a_limited_run_on_two_lanes_fits_what_one_lane_cannot_and_logs_each_lane(tmp_path):
    """50 s of work and 34.5 s to do it in: one lane leaves some out; two, working side by side, fit it all."""
    one = World(tmp_path / "one", COSTS)
    executor(one, lanes_of(one)[:1], limit=35.0, profile=profile_of(one, "a", "b", "c")).run()
    assert "done" in one.statuses().values() and set(one.statuses().values()) != {"done"}, one.report.table()
    w = world(tmp_path / "two")
    ex = executor(w, lanes_of(w), limit=35.0, profile=profile_of(w, "a", "b", "c"))
    ex.run()
    assert {m.status for m in w.report.members} == {"done"}, w.report.table()
    assert w.clock.t <= 35.0 - 0.5
    for lane in ex.workers:  # each lane busy most of the run
        entry = lane.log.report(None, lane.name, w.clock.t, {})
        assert entry["rows"] == sum(s["rows"] for s in lane.log.steps) and entry["busy_share"] > 0.8, entry
        assert f"lane {lane.name}: busy" in lane_line(entry)


def test_the_lane_rule():
    specs, why = choose_lanes(gpus=0, cores=4)
    assert [s.name for s in specs] == ["cpu0", "cpu1", "cpu2", "cpu3"] and {s.threads for s in specs} == {1}
    specs, _ = choose_lanes(gpus=0, cores=8, threads=2)
    assert len(specs) == 4 and {s.threads for s in specs} == {2}
    specs, why = choose_lanes(gpus=0, cores=8, model_bytes=1 << 30, ram_free=8 << 30)
    assert len(specs) == 1 and "RAM" in why and specs[0].threads is None  # one lane: onnxruntime's own threads
    assert len(choose_lanes(gpus=0, cores=64)[0]) == 8
    assert len(choose_lanes(gpus=0, cores=4, max_chunks=2)[0]) == 2
    specs, _ = choose_lanes(gpus=0, cores=2, lanes=1)
    assert len(specs) == 1 and specs[0].threads is None
    specs, _ = choose_lanes(gpus=2, cores=4)
    assert [(s.kind, s.device_id) for s in specs] == [("gpu", 0), ("gpu", 1)]
    specs, _ = choose_lanes(gpus=1, cores=4, lanes=2)  # two sessions on one GPU
    assert [(s.name, s.device_id) for s in specs] == [("gpu0-0", 0), ("gpu0-1", 0)]
    assert [s.device_id for s in choose_lanes(gpus=2, cores=4, devices=(1,))[0]] == [1]
    with pytest.raises(NinefitError, match="has 2 GPU"):
        choose_lanes(gpus=2, cores=4, devices=(0, 2))
    with pytest.raises(NinefitError, match="no GPU"):
        choose_lanes(gpus=0, cores=4, devices=(0,))
    with pytest.raises(NinefitError, match="positive number of lanes"):
        choose_lanes(gpus=0, cores=4, lanes=0)
    assert parse_devices("0, 1") == (0, 1)
    for bad in ("", "0,x", "-1", "0,0"):
        with pytest.raises(NinefitError, match="--devices"):
            parse_devices(bad)


def test_an_unexpected_error_on_a_lane_stops_every_lane_and_is_raised(tmp_path):
    """A bug (not a member's failure): here the submission write a finished member makes on its lane raises."""
    w = world(tmp_path)

    def broken_write() -> float:
        raise ZeroDivisionError(f"a bug on {threading.current_thread().name}")

    ex = executor(w, lanes_of(w), profile=profile_of(w, "a", "b", "c"), write=broken_write)
    before = threading.active_count()
    with pytest.raises(ZeroDivisionError, match="a bug on ninefit-lane-l[01]"):
        ex.run()
    assert threading.active_count() == before  # no lane left running
    assert all(lane.runner is None for lane in ex.workers)  # every lane's sessions closed
    assert sum(w.by_lane.values()) < 3 * ROWS  # the other lane stopped after its chunk: the run did not go on


def test_each_lane_probes_a_member_at_the_start_and_none_is_planned_while_probed(tmp_path):
    w = world(tmp_path)
    ex = executor(w, lanes_of(w), limit=60.0, profile=profile_of(w, "a", "b", "c"))
    ex.run()
    probes = {lane.name: [s["member"] for s in lane.log.steps if s["kind"] == "probe"] for lane in ex.workers}
    probed = [m for names in probes.values() for m in names]
    assert sorted(probed) == ["b", "c"], probes  # each once; a's probe (12 s) would pass the 10 % probe share
    assert [d["decision"] for d in w.report.member("a").decisions][0] == "no probe"
    for lane in ex.workers:  # both lanes probed from the start: neither waited for the other
        assert (lane.log.steps[0]["kind"], lane.log.steps[0]["start_s"]) == ("probe", 0.0), lane.log.steps
    for m in w.report.members:  # no decision on a member while its costs were being measured
        kinds = [d["decision"] for d in m.decisions]
        if "probe" in kinds:
            assert kinds[0] == "probe", (m.name, kinds)
    assert {m.status for m in w.report.members} == {"done"}, w.report.table()
