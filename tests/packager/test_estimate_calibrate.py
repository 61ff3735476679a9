"""The estimate calibrated from a real run's report: moved toward it, like with like, keyed by member graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.estimate.calibrate import CalibrationStore, calibrate, member_key
from packager.estimate.estimator import Costing, EstimateOptions, estimate_bundle
from runtime.errors import DataError
from runtime.manifest import Manifest

HOUR = 3600.0

# -- calibration ---------------------------------------------------------------------------


def _report(path: Path, members: list[dict]) -> Path:
    path.write_text(json.dumps({"bundle": "digits", "rows": members[0]["rows"], "members": members}))
    return path


@pytest.mark.timeout(180)
def test_calibration_moves_the_estimate_toward_the_measured_run(profiled, tmp_path):
    options = EstimateOptions(target="t4x2", rows=25_000)
    manifest = Manifest.load(profiled)
    before = estimate_bundle(profiled, options)
    inf = {i.member: i.estimate for i in before.items if i.stage == "inference"}
    load = {i.member: i.estimate for i in before.items if i.stage == "load"}
    # The real run on the target was 3x slower than estimated, and loading 2x.
    report = _report(tmp_path / "run_report.json", [
        {"name": m, "variant": "fp32", "rows": 25_000, "seconds": 3 * inf[m].seconds,
         "load_seconds": 2 * load[m].seconds, "status": "done"} for m in ("cnn", "mlp")])
    store = CalibrationStore.load(tmp_path / "cal.json")
    observations = calibrate(store, profiled, manifest, report, options)
    assert {(o.member, o.what) for o in observations} == {("cnn", "inference"), ("mlp", "inference"),
                                                         ("cnn", "load"), ("mlp", "load")}
    assert all(o.ratio == pytest.approx(3 if o.what == "inference" else 2, rel=1e-6) for o in observations)
    store.save()
    after = estimate_bundle(profiled, options, calibration=CalibrationStore.load(tmp_path / "cal.json"))
    for m in ("cnn", "mlp"):
        new = next(i for i in after.items if i.stage == "inference" and i.member == m)
        actual = 3 * inf[m].seconds
        assert abs(new.estimate.seconds - actual) < abs(inf[m].seconds - actual)
        assert new.estimate.seconds == pytest.approx(actual, rel=1e-6)
        assert "calibrated" in new.basis
        # the band narrows around the new figure
        assert new.estimate.high / new.estimate.low < inf[m].high / inf[m].low
    assert after.expected_s > before.expected_s and after.calibrated
    # Other targets are untouched.
    l4 = estimate_bundle(profiled, EstimateOptions(target="l4", rows=25_000),
                         calibration=CalibrationStore.load(tmp_path / "cal.json"))
    assert not l4.calibrated


@pytest.mark.timeout(180)
def test_calibration_compares_like_with_like_around_the_warm_up_batch(profiled, tmp_path):
    """The runtime books the first batch after a load as warmup_seconds, apart from seconds:
    it goes with the load (whose estimate holds the first call's extra cost), not the inference."""
    options = EstimateOptions(target="t4x2", rows=25_000)
    manifest = Manifest.load(profiled)
    costing = Costing(profiled, manifest, options)
    members, expected = [], {}
    for name in ("cnn", "mlp"):
        member = manifest.member(name)
        variant, batch = member.variants[0], costing.batch_for(member)
        steady = costing.inference(member, variant, batch, 25_000 - batch)[0].seconds
        first = costing.inference(member, variant, batch, batch)[0].seconds
        load = costing.load(member, variant, batch)[0].seconds
        members.append({"name": name, "variant": variant.name, "rows": 25_000, "rows_computed": 25_000,
                        "warmup_rows": batch, "batch_size": batch, "status": "done",
                        "seconds": 3 * steady, "warmup_seconds": 2 * first, "load_seconds": 2 * load})
        expected[name] = (25_000 - batch, 2 * (load + first))
    store = CalibrationStore(tmp_path / "cal.json")
    observations = calibrate(store, profiled, manifest, _report(tmp_path / "run_report.json", members), options)
    ratios = {(o.member, o.what): o.ratio for o in observations}
    assert ratios == {("cnn", "inference"): pytest.approx(3), ("mlp", "inference"): pytest.approx(3),
                      ("cnn", "load"): pytest.approx(2), ("mlp", "load"): pytest.approx(2)}
    for o in observations:
        if o.what == "inference":
            assert o.rows == expected[o.member][0]  # the rows `seconds` is for: warm-up rows left out
        else:
            assert o.actual_s == pytest.approx(expected[o.member][1])  # load_seconds + warmup_seconds


@pytest.mark.timeout(180)
def test_calibration_is_keyed_by_member_graph_and_not_counted_twice(profiled, tmp_path):
    options = EstimateOptions(target="cpu", rows=1000)
    manifest = Manifest.load(profiled)
    report = _report(tmp_path / "r.json", [{"name": "cnn", "variant": "fp16", "rows": 1000, "seconds": 1.0,
                                            "load_seconds": 0.0, "status": "done"},
                                           {"name": "mlp", "rows": 0, "seconds": 0.0, "status": "dropped"}])
    store = CalibrationStore(tmp_path / "cal.json")
    assert len(calibrate(store, profiled, manifest, report, options)) == 1
    assert calibrate(store, profiled, manifest, report, options) == []  # the same report again
    node = store.data["targets"]["cpu"]
    assert list(node["members"]) == [member_key(manifest, "cnn")]
    assert node["all"]["count"] == 1
    # mlp has no record of its own: the target-wide one applies to it.
    assert store.for_member("cpu", manifest, "mlp").count == 1


@pytest.mark.timeout(180)
def test_bad_reports_are_user_errors(profiled, tmp_path):
    manifest = Manifest.load(profiled)
    options = EstimateOptions(target="t4x2", rows=10)
    store = CalibrationStore(tmp_path / "cal.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(DataError, match="not JSON"):
        calibrate(store, profiled, manifest, tmp_path / "bad.json", options)
    with pytest.raises(DataError, match="not found"):
        calibrate(store, profiled, manifest, tmp_path / "missing.json", options)
    other = _report(tmp_path / "other.json", [{"name": "xgb", "rows": 5, "seconds": 1, "status": "done"}])
    with pytest.raises(DataError, match="nothing to calibrate"):
        calibrate(store, profiled, manifest, other, options)
    (tmp_path / "cal.json").write_text("[]")
    with pytest.raises(DataError, match="calibration file"):
        CalibrationStore.load(tmp_path / "cal.json")
