"""The cost model: profile priors are calibrated to this machine, costs saved here are not."""

from __future__ import annotations

import pytest

from runtime.manifest import InputSpec, Member, Variant
from runtime.schedule.costs import CostModel

pytestmark = pytest.mark.timeout(30)

X = InputSpec(name="x", dtype="float32", shape=("batch", 4), columns=("a", "b", "c", "d"))
MEMBERS = tuple(Member(name=n, weight=1.0, inputs=(X,), output="y", variants=(Variant(name="fp32", file=f"{n}.onnx"),))
                for n in ("a", "b"))
PROFILE = {"a": {"fp32": {"s_per_row": 0.01, "setup_s": 1.0}}, "b": {"fp32": {"s_per_row": 0.01, "setup_s": 1.0}}}


def measure(costs: CostModel, member: str, s_per_row: float, rows: int = 10) -> None:
    costs.loaded(member, "fp32", 0.5, gpu=False)
    costs.rate(member, "fp32").add(rows, 100.0)  # warm-up: left out
    costs.rate(member, "fp32").add(rows, rows * s_per_row)


def test_profile_priors_are_scaled_by_the_calibration():
    costs = CostModel(MEMBERS, PROFILE)
    measure(costs, "a", 0.04)  # this machine is 4x slower than the profile said
    assert costs.calibration() == pytest.approx(4.0)
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.04)


def test_costs_saved_by_an_earlier_run_here_are_not_calibrated_again():
    """A resumed run: b's saved cost was measured on this machine, so the profile-vs-here ratio does not apply."""
    saved = {"b": {"fp32": {"s_per_row": 0.05, "setup_s": 3.0}}}
    costs = CostModel(MEMBERS, PROFILE, saved)
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.05)
    measure(costs, "a", 0.04)
    assert costs.calibration() == pytest.approx(4.0)
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.05)  # not 0.2
    assert costs.setup_s("b", "fp32") == pytest.approx(3.0)  # saved wins over the profile's 1.0
    assert costs.setup_s("a", "fp32") == pytest.approx(0.5)  # measured in this run wins over both


def test_a_saved_cost_alone_does_not_calibrate_the_profile():
    saved = {"a": {"fp32": {"s_per_row": 0.04}}}
    costs = CostModel(MEMBERS, {"b": PROFILE["b"]}, saved)
    measure(costs, "a", 0.04)
    assert costs.calibration() == 1.0  # a has no profile entry: nothing to compare with
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.01)


LADDER = (Member(name="m", weight=1.0, inputs=(X,), output="y", variants=(
    Variant(name="fp32", file="m.onnx"), Variant(name="fp16", file="m16.onnx", precision="fp16", value_factor=0.99))),)


def timed(costs: CostModel, variant: str, s_per_row: float, member: str = "m") -> None:
    costs.loaded(member, variant, 0.1, gpu=False)
    costs.rate(member, variant).add(10, 10 * s_per_row)  # warm-up
    costs.rate(member, variant).add(10, 10 * s_per_row)


def test_a_rung_is_pruned_only_once_measured_not_cheaper():
    profile = {"m": {"fp32": {"s_per_row": 0.01}, "fp16": {"s_per_row": 0.004}}}  # fp16 claimed 2.5x faster
    costs = CostModel(LADDER, profile)
    assert costs.pruned_by("m", "fp16") is None  # not measured: the claim stands, for now
    assert costs.pruned_by("m", "fp32") is None  # the best rung never is
    timed(costs, "fp32", 0.01)
    timed(costs, "fp16", 0.0098)  # 2 % cheaper: not worth its value factor
    assert costs.pruned_by("m", "fp16") == "fp32"
    costs = CostModel(LADDER, profile)
    timed(costs, "fp32", 0.01)
    timed(costs, "fp16", 0.006)
    assert costs.pruned_by("m", "fp16") is None


def test_the_machine_factor_comes_from_best_rungs_and_a_lower_rungs_error_stays_its_own():
    profile = {"m": {"fp32": {"s_per_row": 0.01}, "fp16": {"s_per_row": 0.002}}, "a": PROFILE["a"]}
    members = LADDER + MEMBERS[:1]
    costs = CostModel(members, profile)
    timed(costs, "fp32", 0.02)  # this machine: 2x slower
    timed(costs, "fp16", 0.02)  # fp16 profiled on a GPU: 10x off, on this CPU
    assert costs.calibration() == pytest.approx(2.0)
    assert costs.s_per_row("a", "fp32") == pytest.approx(0.02)  # a, not measured: prior x machine factor


def test_a_lower_rung_measured_first_moves_its_own_member_until_a_best_rung_calibrates_the_machine():
    """A machine 2.5x slower than the profile, and the plan's rung (fp16) probed first: its ratio is the
    member's only evidence, so fp32's estimate moves with it (not the raw 8 ms prior) and fp16 stays
    (2.5x cheaper here too); it calibrates no other member. Once a best rung is measured, that alone
    is the machine factor, and decides the pruning."""
    profile = {"m": {"fp32": {"s_per_row": 0.008}, "fp16": {"s_per_row": 0.0032}}, "a": PROFILE["a"]}
    costs = CostModel(LADDER + MEMBERS[:1], profile)
    timed(costs, "fp16", 0.008)
    assert costs.calibration() == 1.0 and costs.s_per_row("a", "fp32") == pytest.approx(0.01)
    assert costs.s_per_row("m", "fp32") == pytest.approx(0.02)
    assert costs.pruned_by("m", "fp16") is None
    other = CostModel(LADDER + (Member(name="n", weight=1.0, inputs=(X,), output="y", variants=LADDER[0].variants),),
                      {**profile, "n": profile["m"]})
    timed(other, "fp16", 0.008)
    assert other.s_per_row("n", "fp16") == pytest.approx(0.008)  # the same rung elsewhere: off alike
    assert other.s_per_row("n", "fp32") == pytest.approx(0.008)  # a best rung: not calibrated by a lower one
    timed(costs, "fp32", 0.01, member="a")  # a best rung, as profiled: this machine is not slower after all
    assert costs.calibration() == pytest.approx(1.0)
    assert costs.s_per_row("m", "fp32") == pytest.approx(0.008)
    assert costs.pruned_by("m", "fp16") == "fp32"  # 8 ms against fp32's 8 ms: not cheaper


def test_an_unmeasured_rung_is_started_only_with_room_to_spare():
    costs = CostModel(LADDER, {"m": {"fp32": {"s_per_row": 0.01}, "fp16": {"s_per_row": 0.004}}})
    assert costs.cautious_s_per_row("m", "fp16") == pytest.approx(0.008)  # twice the estimate
    timed(costs, "fp16", 0.004)
    assert costs.cautious_s_per_row("m", "fp16") == pytest.approx(0.004)


def test_the_machine_factor_says_when_it_rests_on_noisy_measurements():
    """Back-to-back runs of one bundle printed machine factors of 11.81, 6.06, 0.17: each founded on one batch
    of a fraction of a millisecond. The factor now says what it rests on."""
    solid = CostModel(MEMBERS, PROFILE)
    measure(solid, "a", 0.04)  # 10 rows x 40 ms: a 0.4 s batch
    measure(solid, "b", 0.05)
    assert solid.calibration_caveat() == ""
    assert solid.factor_summary() == {"value": pytest.approx(4.5), "ratios": {"a": pytest.approx(4.0),
                                                                             "b": pytest.approx(5.0)}, "caveat": ""}
    short = CostModel(MEMBERS, PROFILE)
    measure(short, "a", 0.0001)  # 10 rows in 1 ms
    assert short.calibration_caveat() == "noisy: first batch under 20 ms (a 1 ms)"
    apart = CostModel(MEMBERS, PROFILE)
    measure(apart, "a", 0.04)
    measure(apart, "b", 0.4)  # x4 against x40: the members saw different machines
    assert "members' ratios from x4.00 to x40.00" in apart.calibration_caveat()
    drift = CostModel(MEMBERS, PROFILE)
    measure(drift, "a", 0.04)
    for _ in range(3):  # its later batches run 3x slower than its first
        drift.rate("a", "fp32").add(10, 1.2)
    assert "a's later batches give x12.00, its first x4.00" in drift.calibration_caveat()
    assert CostModel(MEMBERS, PROFILE).factor_summary() == {}  # nothing measured: no factor yet


def test_cpu_work_members_are_calibrated_apart_from_the_others():
    """A tree member (device "cpu") runs on the host CPU whatever the machine: a GPU member found 4x slower than
    its profile says nothing of the trees' cost, and the trees' ratio nothing of the GPU members'."""
    members = (*MEMBERS, Member(name="trees", weight=1.0, inputs=(X,), output="y", device="cpu",
                                variants=(Variant(name="fp32", file="trees.onnx"),)),
               Member(name="forest", weight=1.0, inputs=(X,), output="y", device="cpu",
                      variants=(Variant(name="fp32", file="forest.onnx"),)))
    profile = {**PROFILE, "trees": {"fp32": {"s_per_row": 0.002}}, "forest": {"fp32": {"s_per_row": 0.003}}}
    costs = CostModel(members, profile)
    measure(costs, "a", 0.04)  # the GPU member: 4x its profile
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.04)
    assert costs.s_per_row("forest", "fp32") == pytest.approx(0.003)  # not 4x: the CPU is not the GPU
    measure(costs, "trees", 0.001)  # the CPU here: twice as fast as the profile's
    assert costs.s_per_row("forest", "fp32") == pytest.approx(0.0015)
    assert costs.s_per_row("b", "fp32") == pytest.approx(0.04)
