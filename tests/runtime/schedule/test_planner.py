"""Tests for the pure deadline planner (fake clock: plain floats)."""

from __future__ import annotations

import ast
import itertools
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.schedule import planner
from runtime.schedule.planner import (
    Budget,
    MemberState,
    Variant,
    estimate_s_per_row,
    expected_seconds,
    plan,
    should_replan,
    value_per_second,
)

pytestmark = pytest.mark.timeout(30)

T0 = 1000.0  # fake clock reading


def one(name, value, seconds, rows=100, **kw):
    """A member with a single variant costing ``seconds`` for all its rows."""
    return MemberState(name, value, (Variant("fp32", seconds / rows),), rows, **kw)


def laddered(name, value, rows=100, **kw):
    """fp32 at 1 s/row, fp16 at 0.5 s/row worth 97 %."""
    ladder = (Variant("fp32", 1.0), Variant("fp16", 0.5, value_factor=0.97))
    return MemberState(name, value, ladder, rows, **kw)


def budget(left, **kw):
    return Budget(deadline=T0 + left + kw.get("margin_s", 0) + kw.get("reserve_s", 0), **kw)


def chosen(p):
    return {s.member: s.variant for s in p.steps}


def check_consistent(p, now, limit):
    """Steps run back to back from ``now``, none past the limit, fields agree."""
    t = now
    for s in p.steps:
        assert s.start == pytest.approx(t)
        assert s.finish <= limit + 1e-9
        t = s.finish
    assert p.projected_finish == pytest.approx(t)
    assert p.slack_s == pytest.approx(limit - t)
    assert p.limit == pytest.approx(limit)


# -- ordering and dropping ---------------------------------------------------------


def test_everything_fits_best_variants_ordered_by_value_per_second():
    members = [one("slow", 1.0, 200), one("fast", 1.0, 50), one("mid", 3.0, 300)]
    p = plan(members, T0, budget(1000))
    assert [s.member for s in p.steps] == ["fast", "mid", "slow"]
    assert p.dropped == ()
    assert p.value == pytest.approx(5.0)
    assert p.projected_finish == pytest.approx(T0 + 550)
    assert p.slack_s == pytest.approx(450)
    check_consistent(p, T0, T0 + 1000)


@pytest.mark.parametrize(
    ("left", "kept", "dropped"),
    [
        (500, {"a", "b", "c"}, []),
        (300, {"a", "b"}, ["c"]),
        (200, {"a"}, ["b", "c"]),
        (90, set(), ["a", "b", "c"]),
    ],
)
def test_members_dropped_lowest_value_per_second_first(left, kept, dropped):
    # value per second: a 0.03, b 0.0133, c 0.005
    members = [one("c", 1.0, 200), one("a", 3.0, 100), one("b", 2.0, 150)]
    p = plan(members, T0, budget(left))
    assert set(chosen(p)) == kept
    assert sorted(name for name, _ in p.dropped) == dropped
    check_consistent(p, T0, T0 + left)


def test_drop_reasons_are_human():
    members = [one("big", 1.0, 412), one("a", 3.0, 50), one("b", 1.0, 50)]
    p = plan(members, T0, budget(95))
    reasons = dict(p.dropped)
    assert reasons["big"] == "would need 412 s, 95 s left"
    assert reasons["b"].startswith("value per second lowest; dropped to fit")
    assert "45 s free" in reasons["b"]


def test_degrades_before_dropping():
    members = [laddered("a", 3.0), laddered("b", 2.0), laddered("c", 1.0)]
    # All fp32 need 300 s; one member on fp16 saves 50 s: the lowest-value one degrades.
    p = plan(members, T0, budget(260))
    assert chosen(p) == {"a": "fp32", "b": "fp32", "c": "fp16"}
    assert p.dropped == ()
    assert p.value == pytest.approx(3 + 2 + 0.97)
    # Only 140 s: everything on fp16 (150 s) does not fit either, so c goes and a, b degrade.
    p = plan(members, T0, budget(140))
    assert chosen(p) == {"a": "fp16", "b": "fp16"}
    assert [name for name, _ in p.dropped] == ["c"]
    assert p.value == pytest.approx(0.97 * 5)


def test_setup_cost_counts_and_a_cheaper_rung_may_not_be_cheaper():
    ladder = (Variant("fp32", 1.0, setup_s=10), Variant("trt16", 0.2, setup_s=150, value_factor=0.99))
    m = MemberState("m", 1.0, ladder, 100)
    assert expected_seconds(m, ladder[0]) == pytest.approx(110)
    assert expected_seconds(m, ladder[1]) == pytest.approx(170)
    assert chosen(plan([m], T0, budget(120))) == {"m": "fp32"}
    assert chosen(plan([m], T0, budget(105))) == {}


# -- never start what cannot finish ------------------------------------------------


def test_never_starts_a_member_that_cannot_finish():
    p = plan([one("huge", 10.0, 412), one("small", 0.1, 20)], T0, budget(95))
    assert chosen(p) == {"small": "fp32"}
    assert dict(p.dropped)["huge"] == "would need 412 s, 95 s left"
    assert all(not s.partial for s in p.steps)


def test_partial_rows_of_pending_members_are_never_planned():
    p = plan([one("m", 1.0, 100, rows_done=0)], T0, budget(99))
    assert p.steps == ()
    # A member already half done keeps its rows and needs only the rest.
    p = plan([one("m", 1.0, 100, rows_done=50)], T0, budget(60))
    assert [(s.rows, s.expected_s) for s in p.steps] == [(50, pytest.approx(50))]
    assert p.value == pytest.approx(0.5)


# -- running members ----------------------------------------------------------------


def ladder_with_setup():
    return (Variant("fp32", 1.0, setup_s=60), Variant("fp16", 0.5, setup_s=30, value_factor=0.97))


def test_running_member_first_and_keeps_loaded_variant_without_setup():
    run = MemberState("run", 1.0, ladder_with_setup(), 100, rows_done=40, status="running", variant="fp16")
    best = one("best", 5.0, 10)  # far higher value per second
    p = plan([best, run], T0, budget(1000))
    assert [(s.member, s.variant) for s in p.steps] == [("run", "fp16"), ("best", "fp32")]
    first = p.steps[0]
    assert (first.rows, first.setup_s, first.expected_s) == (60, 0.0, pytest.approx(30))
    assert value_per_second(run) == pytest.approx(0.6 * 0.97 / 30)


def test_running_member_gets_partial_step_ending_at_limit():
    run = MemberState("run", 1.0, ladder_with_setup(), 100, rows_done=40, status="running", variant="fp32")
    other = one("other", 0.1, 10)
    p = plan([run, other], T0, budget(45.5))
    (step,) = p.steps
    assert (step.member, step.variant, step.partial) == ("run", "fp32", True)
    assert step.rows == 45 < run.rows_left
    assert step.finish == T0 + 45.5 and p.slack_s == 0.0
    assert p.value == pytest.approx(0.45)
    assert dict(p.dropped)["other"].startswith("no time left after the partial run of 'run'")
    # A partial step is time-boxed: the executor stops it at its finish.
    assert not should_replan(p, step, T0 + 40, rows_done=1)


def test_running_member_degrades_when_it_cannot_finish_as_loaded():
    ladder = (Variant("fp32", 1.0, setup_s=60), Variant("fp16", 0.5, setup_s=5, value_factor=0.97))
    run = MemberState("run", 1.0, ladder, 100, rows_done=40, status="running", variant="fp32")
    p = plan([run], T0, budget(45))
    (step,) = p.steps
    assert (step.variant, step.rows, step.setup_s, step.partial) == ("fp16", 60, 5.0, False)
    assert p.value == pytest.approx(0.6 * 0.97)


def test_running_member_that_cannot_finish_is_stopped_for_more_value():
    run = MemberState("run", 0.1, ladder_with_setup(), 100, rows_done=40, status="running", variant="fp32")
    p = plan([run, one("p", 5.0, 40)], T0, budget(45))
    assert chosen(p) == {"p": "fp32"}
    assert dict(p.dropped)["run"] == "would need 60 s, 45 s left" and p.stopped == {"run"}  # stopped part-way


def test_running_member_is_never_upgraded():
    run = MemberState("run", 1.0, ladder_with_setup(), 100, rows_done=0, status="running", variant="fp16")
    assert chosen(plan([run], T0, budget(10_000))) == {"run": "fp16"}


# -- states and time left -----------------------------------------------------------


def test_terminal_members_are_never_scheduled_nor_reported():
    members = [
        one("done", 1.0, 10, status="done"),
        one("failed", 1.0, 10, status="failed"),
        one("finished", 1.0, 10, rows_done=100),
        one("todo", 1.0, 10),
    ]
    p = plan(members, T0, budget(100))
    assert chosen(p) == {"todo": "fp32"} and p.dropped == ()


def test_a_dropped_member_returns_when_the_slack_allows_it():
    """"dropped" is a decision for now: the same member, dropped by an earlier plan, is planned again."""
    slow = one("bert", 1.0, 60)
    first = plan([one("cnn", 3.0, 50), slow], T0, budget(80))  # 110 s of work, 80 s left: bert goes
    assert chosen(first) == {"cnn": "fp32"} and dict(first.dropped)["bert"].startswith("value per second lowest")
    # The cnn finished in 10 s instead of 50 (its costs were re-measured): at T0 + 10, 70 s are left.
    gone = replace(slow, status="dropped")
    later = plan([one("cnn", 3.0, 50, status="done"), gone], T0 + 10, budget(80))
    assert chosen(later) == {"bert": "fp32"} and later.dropped == ()
    # Part-done before it was stopped: only its rows left are planned, setup paid again.
    stopped = MemberState("bert", 1.0, (Variant("fp32", 0.6, setup_s=5),), 100, rows_done=40, status="dropped")
    (step,) = plan([stopped], T0, budget(50)).steps
    assert (step.rows, step.expected_s, step.setup_s) == (60, pytest.approx(41), 5)


def test_fill_spends_the_time_left_on_a_partial_step():
    members = [one("a", 3.0, 50), one("b", 2.0, 80)]
    plain = plan(members, T0, budget(100))
    assert chosen(plain) == {"a": "fp32"} and plain.slack_s == pytest.approx(50)  # b never started
    filled = plan(members, T0, budget(100), fill=True)
    assert [(s.member, s.rows, s.partial) for s in filled.steps] == [("a", 100, False), ("b", 62, True)]
    assert filled.steps[-1].finish == T0 + 100 and filled.slack_s == 0.0
    assert filled.value == pytest.approx(3.0 + 2.0 * 0.62)
    assert filled.dropped == ()
    check_consistent(filled, T0, T0 + 100)
    # Nothing left to fill: the same plan.
    assert plan(members, T0, budget(200), fill=True).steps == plan(members, T0, budget(200)).steps


def test_deadline_passed_drops_everything():
    run = MemberState("run", 1.0, ladder_with_setup(), 100, rows_done=3, status="running", variant="fp32")
    members = [run, one("todo", 1.0, 10), one("done", 1.0, 10, status="done")]
    p = plan(members, T0 + 1, Budget(deadline=T0, margin_s=60))
    assert p.steps == () and p.value == 0.0
    assert p.dropped == (("run", "deadline passed"), ("todo", "deadline passed"))
    assert p.projected_finish == T0 + 1 and p.slack_s == pytest.approx(-61)


@pytest.mark.parametrize("now", [T0 + 85, T0 + 90, T0 + 100])
def test_no_time_left_inside_margin_gives_empty_plan(now):
    p = plan([one("todo", 1.0, 1)], now, Budget(deadline=T0 + 100, margin_s=10, reserve_s=5))
    assert p.steps == ()
    ((name, reason),) = p.dropped
    assert name == "todo" and reason.startswith("no time left")


def test_margin_and_reserve_shrink_the_limit():
    b = Budget(deadline=T0 + 100, margin_s=30, reserve_s=20)
    assert b.limit == T0 + 50
    p = plan([one("a", 1.0, 40), one("b", 0.5, 40)], T0, b)
    assert chosen(p) == {"a": "fp32"}
    check_consistent(p, T0, b.limit)


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Variant("v", -1.0), "s_per_row"),
        (lambda: Variant("v", 1.0, setup_s=-5), "setup_s"),
        (lambda: Variant("v", math.nan), "s_per_row"),
        (lambda: Variant("v", 1.0, value_factor=0.0), "value_factor"),
        (lambda: Variant("v", 1.0, value_factor=1.5), "value_factor"),
        (lambda: MemberState("m", 1.0, (), 10), "no variants"),
        (lambda: MemberState("m", 1.0, (Variant("v", 1.0),), 10, rows_done=11), "rows_done"),
        (lambda: MemberState("m", -1.0, (Variant("v", 1.0),), 10), "value"),
        (lambda: MemberState("m", 1.0, (Variant("v", 1.0),), 10, status="paused"), "status"),
        (lambda: MemberState("m", 1.0, (Variant("v", 1.0),), 10, variant="fp8"), "fp8"),
        (lambda: MemberState("m", 1.0, (Variant("v", 1.0), Variant("v", 2.0)), 10), "duplicate"),
        (lambda: Budget(T0, margin_s=-1), "margin_s"),
        (lambda: plan([one("a", 1, 1), one("a", 1, 1)], T0, budget(10)), "duplicate member"),
        (lambda: plan([one("a", 1, 1, status="running"), one("b", 1, 1, status="running")], T0, budget(10)), "one at"),
        (lambda: plan([], math.inf, budget(10)), "now"),
        (lambda: plan([], T0, budget(10), method="magic"), "method"),
    ],
)
def test_invalid_inputs_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- search quality -----------------------------------------------------------------


def random_members(rng, n):
    members = []
    for i in range(n):
        ladder, spr, factor = [], rng.uniform(0.5, 3.0), 1.0
        for k in range(rng.randint(1, 3)):
            ladder.append(Variant(f"v{k}", spr, setup_s=rng.uniform(0, 30), value_factor=factor))
            spr, factor = spr * rng.uniform(0.3, 0.9), factor * rng.uniform(0.9, 1.0)
        members.append(MemberState(f"m{i}", rng.uniform(0.1, 5.0), tuple(ladder), rng.randint(10, 100)))
    return members


def brute_force_value(members, left):
    best = 0.0
    for combo in itertools.product(*[(None, *m.variants) for m in members]):
        cost = sum(expected_seconds(m, v) for m, v in zip(members, combo) if v)
        if cost <= left:
            best = max(best, sum(m.value * v.value_factor for m, v in zip(members, combo) if v))
    return best


@pytest.mark.parametrize("seed", range(30))
def test_exact_search_matches_brute_force(seed):
    rng = random.Random(seed)
    members = random_members(rng, rng.randint(1, 6))
    left = rng.uniform(20, 400)
    p = plan(members, T0, budget(left), method="exact")
    assert p.value == pytest.approx(brute_force_value(members, left), abs=1e-9)
    factors = {(m.name, v.name): v.value_factor for m in members for v in m.variants}
    assert p.value == pytest.approx(sum(m.value * factors[m.name, chosen(p)[m.name]] for m in members if m.name in chosen(p)))
    check_consistent(p, T0, T0 + left)
    assert {s.member for s in p.steps} | {n for n, _ in p.dropped} == {m.name for m in members}


@pytest.mark.parametrize("seed", range(30))
def test_greedy_fallback_is_feasible_and_never_beats_exact(seed):
    rng = random.Random(seed)
    members = random_members(rng, rng.randint(1, 8))
    left = rng.uniform(20, 400)
    g = plan(members, T0, budget(left), method="greedy")
    check_consistent(g, T0, T0 + left)
    assert g.value <= plan(members, T0, budget(left), method="exact").value + 1e-9


def test_greedy_degrades_before_dropping_too():
    members = [laddered("a", 3.0), laddered("b", 2.0), laddered("c", 1.0)]
    p = plan(members, T0, budget(260), method="greedy")
    assert chosen(p) == {"a": "fp32", "b": "fp32", "c": "fp16"}


@pytest.mark.timeout(30)
def test_auto_stays_fast_for_large_ensembles():
    """Forty members of five options each: an exact search over their 5**40 combinations would never end, and
    the test's timeout would stop it; "auto" takes the greedy search there and plans in milliseconds. No
    time is asserted: how fast is a benchmark's question, on a machine that may be busy."""
    rng = random.Random(7)
    ladder = tuple(Variant(f"v{k}", 1.0 / (k + 1), setup_s=5.0, value_factor=1 - 0.02 * k) for k in range(4))
    twelve = [MemberState(f"m{i}", rng.uniform(0.5, 2), ladder, 100) for i in range(12)]
    forty = [MemberState(f"m{i}", rng.uniform(0.5, 2), ladder, 100) for i in range(40)]
    for members in (twelve, forty):
        p = plan(members, T0, budget(32.0 * len(members)))
        check_consistent(p, T0, T0 + 32.0 * len(members))
        assert p.dropped == ()  # everything fits on a cheaper rung
    assert plan(forty, T0, budget(32.0 * 40)) == plan(forty, T0, budget(32.0 * 40), method="greedy")


# -- drift ---------------------------------------------------------------------------


def two_step_plan():
    a = MemberState("a", 2.0, (Variant("fp32", 1.0, setup_s=10),), 100)
    b = one("b", 0.4, 40)
    p = plan([a, b], T0, budget(200))
    assert [s.member for s in p.steps] == ["a", "b"] and p.slack_s == pytest.approx(50)
    return p, p.steps[0]


def test_should_replan_when_a_member_slows_down():
    p, step = two_step_plan()  # a: setup until T0+10, then 1 s/row, finish T0+110
    now = T0 + 60
    assert not should_replan(p, step, now, rows_done=50)  # on pace
    assert not should_replan(p, step, now, rows_done=48)  # 4 % slow: within tolerance
    assert should_replan(p, step, now, rows_done=48, tolerance=0.0)
    assert should_replan(p, step, now, rows_done=30)  # 67 % slow
    assert should_replan(p, step, now, rows_done=50, s_per_row=1.5)
    assert not should_replan(p, step, now, rows_done=50, s_per_row=0.9)


def test_should_replan_before_the_first_rows():
    p, step = two_step_plan()
    assert not should_replan(p, step, T0 + 5, rows_done=0)  # still in setup
    assert should_replan(p, step, T0 + 30, rows_done=0)  # setup overran by 20 s


def test_should_replan_never_allows_more_than_the_slack():
    p, step = two_step_plan()
    # A huge tolerance is still capped by the 50 s of slack.
    assert not should_replan(p, step, T0 + 60, rows_done=50, tolerance=10, s_per_row=1.9)
    assert should_replan(p, step, T0 + 60, rows_done=50, tolerance=10, s_per_row=2.1)


def test_should_replan_rejects_bad_arguments():
    p, step = two_step_plan()
    with pytest.raises(ValueError, match="not part of the plan"):
        should_replan(p, replace(step, rows=7), T0, 0)
    with pytest.raises(ValueError, match="rows_done"):
        should_replan(p, step, T0, 101)


def test_executor_loop_replans_and_still_meets_the_limit():
    """A member runs 1.6x slower than profiled; the replan degrades the rest to fit."""
    members = {m.name: m for m in (laddered("a", 3.0), laddered("b", 2.0), laddered("c", 1.0))}
    b = budget(300)
    p = plan(list(members.values()), T0, b)
    assert chosen(p) == {"a": "fp32", "b": "fp32", "c": "fp32"} and p.slack_s == 0
    step, now, done = p.steps[0], T0, 0
    while not should_replan(p, step, now, done):
        now, done = now + 16.0, done + 10  # true cost 1.6 s/row
    assert done < step.rows
    rate = estimate_s_per_row(done, now - step.start, prior=1.0, prior_rows=10)
    slow = (Variant("fp32", rate), Variant("fp16", 0.5, value_factor=0.97))
    members["a"] = replace(members["a"], variants=slow, rows_done=done, status="running", variant="fp32")
    p2 = plan(list(members.values()), now, b)
    assert p2.steps[0].member == "a" and p2.steps[0].variant == "fp32"
    assert p2.projected_finish <= b.limit
    assert p2.value < p.value


# -- estimates and helpers -----------------------------------------------------------


def test_estimate_s_per_row_blends_prior_and_live():
    assert estimate_s_per_row(0, 0.0, prior=0.02) == 0.02
    assert estimate_s_per_row(100, 3.0, prior=None) == pytest.approx(0.03)
    est = [estimate_s_per_row(n, 0.03 * n, prior=0.02, prior_rows=64) for n in (16, 64, 256, 4096)]
    assert est == sorted(est) and 0.02 < est[0] < est[-1] < 0.03
    assert est[1] == pytest.approx(0.025)  # as many live rows as the prior is worth: halfway
    assert est[-1] == pytest.approx(0.03, rel=0.01)


@pytest.mark.parametrize(
    "args",
    [(0, 0.0, None), (-1, 1.0, 0.1), (10, -1.0, 0.1), (10, 1.0, -0.1), (10, 1.0, math.inf)],
)
def test_estimate_s_per_row_rejects_bad_input(args):
    with pytest.raises(ValueError):
        estimate_s_per_row(*args)


def test_value_per_second():
    m = MemberState("m", 2.0, (Variant("fp32", 1.0, setup_s=50), Variant("fp16", 0.5, value_factor=0.9)), 100, 50)
    assert value_per_second(m) == pytest.approx(1.0 / 100)
    assert value_per_second(m, m.variants[1]) == pytest.approx(0.9 / 25)
    assert value_per_second(replace(m, variants=(Variant("free", 0.0),))) == math.inf


def test_planner_is_pure_standard_library():
    files = sorted(Path(planner.__file__).parent.glob("*.py"))
    assert len(files) == 5  # the package and its four parts
    for path in files:
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        own = {m for m in imported if m.startswith("runtime.schedule.planner.")}
        # the standard library, and the run's vocabulary (runtime.status: enums, no I/O)
        assert imported - own <= {"__future__", "bisect", "math", "numbers", "collections.abc", "dataclasses",
                                  "runtime.status"}, path
        assert "time" not in imported


def test_exported_names():
    assert set(planner.__all__) == {
        "STATUSES", "Budget", "Lane", "MemberState", "Plan", "Step", "Variant", "estimate_s_per_row",
        "expected_seconds", "plan", "plan_lanes", "projected_finish", "should_replan", "value_per_second",
    }
