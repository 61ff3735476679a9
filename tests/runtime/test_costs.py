"""The cost model: profile priors are calibrated to this machine, costs saved here are not."""

from __future__ import annotations

import pytest

from runtime.costs import CostModel
from runtime.manifest import InputSpec, Member, Variant

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
