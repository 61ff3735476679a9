"""The lane planner on a fake clock (plain floats): member-parallel, row-split,
re-planning as lanes finish, a lane failing, and one lane being exactly :func:`plan`."""

from __future__ import annotations

import itertools
import random

import pytest

from runtime.schedule.planner import Budget, Lane, MemberState, Variant, plan, plan_lanes

pytestmark = pytest.mark.timeout(30)

T0 = 500.0
TWO = (Lane("cpu0"), Lane("cpu1"))


def one(name, value, seconds, rows=100, setup=0.0, **kw):
    return MemberState(name, value, (Variant("fp32", seconds / rows, setup_s=setup),), rows, **kw)


def budget(left):
    return Budget(deadline=T0 + left)


def lanes_of(p):
    return {(s.member, s.lane) for s in p.steps}


def check_lanes(p, now, limit, members):
    """Each lane's steps run back to back from ``now`` and end by the limit; no member gets more rows than it has."""
    for k in {s.lane for s in p.steps}:
        t = now
        for s in p.lane_steps(k):
            assert s.start == pytest.approx(t) and s.finish <= limit + 1e-6
            if not s.partial:
                assert s.finish == pytest.approx(s.start + s.expected_s)
            t = s.finish
    left = {m.name: m.rows_left for m in members}
    for s in p.steps:
        left[s.member] -= s.rows
    assert min(left.values()) >= 0
    assert p.projected_finish == pytest.approx(max([now, *(s.finish for s in p.steps)]))


def test_one_lane_is_the_single_lane_planner():
    rng = random.Random(3)
    for _ in range(50):
        members = [one(f"m{i}", rng.uniform(0.1, 3), rng.uniform(1, 60), setup=rng.uniform(0, 5)) for i in range(4)]
        b = budget(rng.uniform(5, 150))
        assert plan_lanes(members, T0, b, [Lane("cpu0")], fill=True) == plan(members, T0, b, fill=True)


def test_members_run_side_by_side_on_two_lanes():
    members = [one("a", 3, 40), one("b", 2, 40), one("c", 1, 40)]
    p = plan_lanes(members, T0, budget(100), TWO)
    check_lanes(p, T0, T0 + 100, members)
    assert {s.member for s in p.steps} == {"a", "b", "c"} and not p.dropped
    assert {s.lane for s in p.steps if s.member in ("a", "b")} == {0, 1}  # the two most valuable start at once
    assert all(s.start == T0 for s in p.steps if s.member in ("a", "b"))
    # 120 s of work on two lanes: the third member's rows are split, so both lanes end at 60 s, not 80 s.
    assert p.projected_finish == pytest.approx(T0 + 60)
    # One lane could not fit all three in 100 s: the second lane is what delivers the third.
    assert "c" in dict(plan(members, T0, budget(100)).dropped)


def test_one_big_member_is_split_across_lanes_in_whole_chunks():
    big = one("big", 1, 150, rows=100, setup=4.0)
    p = plan_lanes([big], T0, budget(100), TWO, quantum={"big": 10})
    check_lanes(p, T0, T0 + 100, [big])
    assert lanes_of(p) == {("big", 0), ("big", 1)}
    assert sum(s.rows for s in p.steps) == 100 and all(s.rows % 10 == 0 for s in p.steps)
    assert all(s.setup_s == 4.0 for s in p.steps)  # each lane loads it once
    assert p.projected_finish == pytest.approx(T0 + 4 + 75)  # 150 s of rows halved, one setup on each lane
    # On one lane it cannot run at all (154 s > 100 s).
    assert not plan([big], T0, budget(100)).steps


def test_a_running_member_keeps_its_lane_and_the_idle_lane_takes_its_remaining_rows():
    running = one("a", 3, 120, rows=120, setup=10.0, status="running", variant="fp32")
    lanes = (Lane("gpu0", loaded=("a", "fp32")), Lane("gpu1"))
    p = plan_lanes([running, one("b", 1, 10)], T0, budget(200), lanes, quantum={"a": 10})
    first = {k: p.lane_steps(k)[0] for k in (0, 1)}
    assert first[0].member == "a" and first[0].setup_s == 0.0  # sunk on its lane
    assert any(s.member == "a" and s.lane == 1 and s.setup_s == 10.0 for s in p.steps)  # split, paying setup there
    assert p.projected_finish < T0 + 120  # sooner than lane 0 alone


def test_replanning_as_a_lane_finishes_moves_the_rest_of_the_work_there():
    members = [one("a", 3, 60), one("b", 2, 20), one("c", 1, 20)]
    p = plan_lanes(members, T0, budget(100), TWO)
    ends = {k: p.lane_steps(k)[0].finish for k in (0, 1)}
    quick = min(ends, key=ends.get)
    # That lane finished its first step (on time); the other runs on. Re-plan at that moment:
    done = p.lane_steps(quick)[0]
    now = ends[quick]
    other = p.lane_steps(1 - quick)[0]
    state = []
    for m in members:
        if m.name == done.member:
            state.append(MemberState(m.name, m.value, m.variants, m.rows_total, m.rows_total, "done"))
        elif m.name == other.member:
            rows_done = int(m.rows_total * (now - T0) / other.expected_s)
            state.append(MemberState(m.name, m.value, m.variants, m.rows_total, rows_done, "running", "fp32"))
        else:
            state.append(m)
    lanes = [Lane("cpu0"), Lane("cpu1")]
    lanes[1 - quick] = Lane(lanes[1 - quick].name, loaded=(other.member, "fp32"))
    again = plan_lanes(state, now, budget(100), lanes)
    check_lanes(again, now, T0 + 100, state)
    assert again.lane_steps(quick), "the lane that finished gets work at once"
    assert again.lane_steps(1 - quick)[0].member == other.member  # the running one is not moved


def test_a_member_retired_on_one_lane_runs_on_the_other():
    lanes = (Lane("gpu0"), Lane("gpu1", retired=frozenset({"a"})))
    members = [one("a", 3, 60), one("b", 2, 60)]
    p = plan_lanes(members, T0, budget(100), lanes)
    assert lanes_of(p) == {("a", 0), ("b", 1)}
    # Too big for the one lane left to it: a is dropped, though two lanes would hold it.
    p = plan_lanes([one("a", 3, 150)], T0, budget(100), lanes)
    assert not p.steps and "1 lane(s)" in dict(p.dropped)["a"]
    p = plan_lanes([one("a", 3, 60)], T0, budget(100), (Lane("gpu0", retired=frozenset({"a"})),) * 1)
    assert dict(p.dropped)["a"] == "failed on every lane"


def test_a_failed_lane_leaves_everything_to_the_other():
    members = [one("a", 3, 30), one("b", 2, 30), one("c", 1, 30)]
    gone = frozenset({"a", "b", "c"})
    p = plan_lanes(members, T0, budget(100), (Lane("gpu0"), Lane("gpu1", retired=gone)))
    assert {s.lane for s in p.steps} == {0} and {s.member for s in p.steps} == {"a", "b", "c"}
    check_lanes(p, T0, T0 + 100, members)


def test_what_does_not_fit_fills_every_lane_to_the_limit():
    members = [one("a", 3, 250, setup=2.0), one("b", 1, 30)]
    p = plan_lanes(members, T0, budget(100), TWO, fill=True)
    check_lanes(p, T0, T0 + 100, members)
    partial = [s for s in p.steps if s.partial]
    assert {s.member for s in partial} == {"a"} and {s.lane for s in partial} == {0, 1}
    assert all(s.finish == pytest.approx(T0 + 100) for s in partial)
    assert sum(s.rows for s in partial) < 100


def test_setups_paid_twice_by_a_split_never_push_a_lane_past_the_limit():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 5)
        members = [one(f"m{i}", rng.uniform(0.1, 3), rng.uniform(1, 120), rows=rng.choice((10, 100)),
                       setup=rng.uniform(0, 20)) for i in range(n)]
        left = rng.uniform(10, 150)
        lanes = tuple(Lane(f"l{k}") for k in range(rng.randint(2, 3)))
        p = plan_lanes(members, T0, budget(left), lanes, fill=rng.random() < 0.5,
                       method=rng.choice(("auto", "exact", "greedy")))
        check_lanes(p, T0, T0 + left, members)
        assert p.value >= plan(members, T0, budget(left)).value - 1e-9  # more lanes never deliver less


def test_exact_and_greedy_agree_on_small_lane_plans():
    for values in itertools.product((1.0, 2.0), repeat=3):
        members = [one(f"m{i}", v, 40 + 10 * i) for i, v in enumerate(values)]
        exact = plan_lanes(members, T0, budget(60), TWO, method="exact")
        greedy = plan_lanes(members, T0, budget(60), TWO, method="greedy")
        assert greedy.value <= exact.value + 1e-9


def test_lane_plans_reject_a_lane_running_what_is_not_running():
    with pytest.raises(ValueError, match="not a running member"):
        plan_lanes([one("a", 1, 10)], T0, budget(100), (Lane("gpu0", loaded=("a", "fp32")), Lane("gpu1")))
    with pytest.raises(ValueError, match="at least one lane"):
        plan_lanes([one("a", 1, 10)], T0, budget(100), ())


def test_any_state_gets_a_plan_within_the_limit():
    """Random ensembles, running members and budgets, two and three lanes: always a plan, never past the limit.

    (A run once stopped here: the search's capacity, cut after each layout that overran, fell below
    what the running members alone cost, and no choice fitted.)"""
    rng = random.Random(11)
    for _trial in range(400):
        n_lanes = rng.choice((2, 3))
        members, lanes = [], []
        for i in range(rng.randint(1, 5)):
            rows = rng.randint(1, 400)
            variants = tuple(Variant(f"v{k}", rng.uniform(0.001, 1.0) / (k + 1), setup_s=rng.uniform(0, 20))
                             for k in range(rng.randint(1, 3)))
            running = rng.random() < 0.4 and len(lanes) < n_lanes
            v = rng.choice(variants).name if running else None
            members.append(MemberState(f"m{i}", rng.uniform(0.1, 3), variants, rows, rng.randint(0, rows - 1),
                                       "running" if running else "pending", v))
            if running:
                lanes.append(Lane(f"cpu{len(lanes)}", (f"m{i}", v)))
        lanes += [Lane(f"cpu{k}") for k in range(len(lanes), n_lanes)]
        left = rng.choice((0.5, 3.0, 30.0, 300.0))
        p = plan_lanes(members, T0, budget(left), lanes, fill=rng.random() < 0.5,
                       method=rng.choice(("auto", "exact", "greedy")))
        check_lanes(p, T0, T0 + left, members)
