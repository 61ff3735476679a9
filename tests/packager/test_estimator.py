"""The estimate: stages, verdicts, the best plan that fits, scaling to targets, confidence and bands (calibration:
test_estimate_calibrate.py; pre-flight checks: test_estimate_checks.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from packager.estimate.chart import write_chart
from packager.estimate.estimator import (
    STAGES,
    Costing,
    EstimateOptions,
    estimate_bundle,
    verdict,
)
from packager.estimate.measure.profile import store_profile
from packager.estimate.price.figures import load_figures
from packager.estimate.price.gpufit import shipped_fit
from packager.estimate.price.gpuprice import gpu_fitted
from packager.estimate.render import format_table
from runtime.errors import SpecError
from runtime.manifest import MANIFEST_NAME, Manifest
from tests.fixtures.estimates import check_codes, copy_bundle, edit_manifest, fake_profile

HOUR = 3600.0


@pytest.fixture
def priced(digits_bundle, tmp_path) -> Path:
    """The digits bundle with known costs: cnn fp32 1 ms/row, fp16 0.2 ms/row, mlp 0.1 ms/row (0.05 at 1024)."""
    bundle = copy_bundle(digits_bundle, tmp_path / "priced")
    store_profile(bundle, fake_profile({
        ("cnn", "fp32"): {256: 1e-3}, ("cnn", "fp16"): {256: 2e-4}, ("mlp", "fp32"): {256: 1e-4, 1024: 5e-5},
    }))
    return bundle


# -- verdicts ---------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_verdict_rule():
    assert verdict(expected_s=5, high_s=8, available_s=8) == "fits"
    assert verdict(expected_s=5, high_s=9, available_s=8) == "tight"
    assert verdict(expected_s=8, high_s=9, available_s=8) == "tight"
    assert verdict(expected_s=8.5, high_s=9, available_s=8) == "does not fit"


@pytest.mark.timeout(10)
def test_options_are_checked():
    with pytest.raises(SpecError, match="rows"):
        EstimateOptions(rows=0)
    with pytest.raises(SpecError, match="margin"):
        EstimateOptions(rows=10, time_limit_s=60, margin_s=60)
    # By default the margin the run itself keeps (runtime.schedule.budget.default_margin), so both judge alike.
    from runtime.schedule.budget import default_margin

    for limit in (100, 1800, 9 * HOUR):
        assert EstimateOptions(rows=10, time_limit_s=limit).margin == default_margin(limit)
    assert EstimateOptions(rows=10, time_limit_s=9 * HOUR).margin == pytest.approx(324.25)  # 0.25 s + 1 %
    assert EstimateOptions(rows=10, time_limit_s=100, margin_s=30).margin == 30
    with pytest.raises(SpecError, match="expected one of"):
        estimate_bundle(".", EstimateOptions(target="tpu", rows=10))


def _agreeing(profile: dict) -> None:
    """Make every repeat of a profile agree and the machine quiet (a test's profile is measured on a shared,
    busy machine): the noise check (packager.estimate.price.noise) then has nothing to say."""
    for variants in profile["members"].values():
        for rec in variants.values():
            for point in rec["batches"].values():
                point["windows"] = [point["s_per_row"]] * 3
    startup = profile.get("startup") or {}
    if startup.get("import_runs"):
        startup["import_runs"] = [startup["import_runs"][0]] * len(startup["import_runs"])
    run = (profile.get("checkpoint") or {}).get("run") or {}
    run["repeats_s"] = [[min(r)] * len(r) for r in run.get("repeats_s") or []]
    if run.get("process"):
        run["process"]["runs"] = [run["process"]["wall_s"]] * len(run["process"]["runs"])
    if run.get("lanes", {}).get("runs_s"):
        run["lanes"]["runs_s"] = [min(run["lanes"]["runs_s"])] * len(run["lanes"]["runs_s"])
    profile["load"] = {"seconds": 10.0, "cores": 2, "others_cpu_share": 0.0, "steal_share": 0.0}


@pytest.fixture
def quiet(profiled, tmp_path) -> Path:
    """``profiled`` as if measured on a quiet machine, its repeats agreeing."""
    bundle = copy_bundle(profiled, tmp_path / "quiet")
    edit_manifest(bundle, lambda data: _agreeing(data["profile"]))
    return bundle


@pytest.mark.timeout(180)
def test_local_estimate_covers_every_stage_and_fits(quiet):
    est = estimate_bundle(quiet, EstimateOptions(target="local", rows=25_000, time_limit_s=9 * HOUR))
    assert est.verdict == "fits" and est.plan is None
    assert {i.stage for i in est.items} == set(STAGES)
    assert {(i.stage, i.member) for i in est.items if i.member} >= {("load", "cnn"), ("inference", "mlp")}
    assert est.confidence == "high"
    assert all(i.estimate.low <= i.estimate.seconds <= i.estimate.high for i in est.items)
    assert est.low_s < est.expected_s < est.high_s
    assert est.items[0].estimate.seconds == 0  # install: nothing for --target local
    json.dumps(est.to_dict())


@pytest.mark.timeout(180)
def test_inference_scales_with_rows(profiled):
    # Whole batches (256) only: a partial last batch adds a one-off cost that does not scale.
    small = estimate_bundle(profiled, EstimateOptions(target="local", rows=40 * 256))
    big = estimate_bundle(profiled, EstimateOptions(target="local", rows=400 * 256))
    inf = lambda e: sum(i.estimate.seconds for i in e.items if i.stage == "inference")  # noqa: E731
    assert inf(big) == pytest.approx(10 * inf(small), rel=0.05)


@pytest.mark.timeout(180)
def test_kaggle_target_is_lower_confidence_with_a_wider_band(profiled):
    est = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000))
    local = estimate_bundle(profiled, EstimateOptions(target="local", rows=25_000))
    assert est.confidence == "low"
    # A CPU profile says nothing of a T4: inference is priced by the GPU model fitted to published figures, whose
    # band is the cross-validated miss of that fit (issue 27), not wider than a local estimate by construction.
    band = math.exp(2 * shipped_fit().bands.seen)
    inference = [i for i in est.items if i.stage == "inference"]
    assert inference and all(gpu_fitted(i.basis) for i in inference)
    assert est.high_s / est.low_s > band and local.high_s / local.low_s > 1
    load = [i for i in est.items if i.stage == "load"][0]
    assert any("GPU session" in n for n in load.estimate.notes)


@pytest.mark.timeout(180)
def test_two_gpus_are_two_lanes_as_the_run_uses_them(profiled):
    two = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000))
    one = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000, lanes=1))
    assert two.lanes == 2 and one.lanes == 1 and two.caveats == () and "caveat" not in format_table(two)
    # The same work per stage; the member stages overlap on two lanes, so the total is shorter. The submission's
    # intermediate writes (and the members' chunks added in at each) follow the members' finishing times: on two
    # lanes they come as often or less often.
    totals_two, totals_one = two.stage_totals(), one.stage_totals()
    for stage in ("writing", "ensembling"):
        assert totals_two.pop(stage)[0] <= totals_one.pop(stage)[0] + 1e-12
    assert totals_two == totals_one
    assert two.expected_s < one.expected_s and two.high_s < one.high_s
    fixed = sum(i.estimate.seconds for i in two.items if not i.member)
    members = one.expected_s - fixed
    assert two.expected_s - fixed >= members / 2 - 1e-9  # never better than a perfect split
    layout = two.lane_layout()
    assert {lane for lane, *_ in layout} == {0, 1}
    table = format_table(two)
    assert "on 2 lanes" in table and "lane 0:" in table and "lane 1:" in table
    assert two.to_dict()["lanes"] == 2 and two.to_dict()["lane_layout"]
    planned = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000), plan=True).plan
    assert planned.lane_count == 2 and {s["lane"] for s in planned.to_dict()["steps"]} <= {0, 1}
    assert "on lane" in format_table(estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000), plan=True))
    assert estimate_bundle(profiled, EstimateOptions(target="l4", rows=25_000)).lanes == 1  # one GPU: one lane
    with pytest.raises(SpecError, match="lanes"):
        EstimateOptions(target="t4x2", rows=10, lanes=0)


def test_cpu_lanes_are_priced_from_their_measured_speedup(profiled, tmp_path, monkeypatch):
    import packager.estimate.price.costing as costing

    measured = json.loads((profiled / MANIFEST_NAME).read_text())["profile"]["checkpoint"]["run"]
    if costing.usable_cores() > 1:  # the profile ran the check once more on the run's lanes, and kept the ratio
        assert measured["lanes"]["lanes"] >= 1 and measured["lanes"]["speedup"] > 0
    monkeypatch.setattr(costing, "usable_cores", lambda: 2)  # the run's rule here: two lanes of one core
    rows = 25_000

    def with_speedup(name, record):
        bundle = copy_bundle(profiled, tmp_path / name)
        edit_manifest(bundle, lambda d: d["profile"]["checkpoint"]["run"].update(lanes=record))
        return bundle

    def members_span(est):
        return est.expected_s - sum(i.estimate.seconds for i in est.items if not i.member)

    one = estimate_bundle(with_speedup("none", {"lanes": 1, "speedup": 1.0}), EstimateOptions(target="local", rows=rows))
    fast = estimate_bundle(with_speedup("fast", {"lanes": 2, "speedup": 1.5}), EstimateOptions(target="local", rows=rows))
    slow = estimate_bundle(with_speedup("slow", {"lanes": 2, "speedup": 0.8}), EstimateOptions(target="local", rows=rows))
    assert one.lanes == 1 and fast.lanes == 2 and slow.lanes == 2
    inference = lambda est: {i.member: i.estimate.seconds for i in est.items if i.stage == "inference"}  # noqa: E731
    for member, seconds in inference(fast).items():  # each lane's work: 2 lanes / 1.5x = 1.33x one lane's
        assert seconds == pytest.approx(inference(one)[member] * 2 / 1.5)
    assert any("2 CPU lanes measured 1.50x one lane" in n for i in fast.items if i.stage == "inference"
               for n in i.estimate.notes)
    # Laid out over the lanes, the members' part takes about one lane's over the measured speedup.
    assert members_span(fast) == pytest.approx(members_span(one) / 1.5, rel=0.15)
    assert fast.expected_s < one.expected_s < slow.expected_s  # lanes that slow the run down are priced so
    # --lanes 1, a Kaggle CPU target and a run too small for two lanes are one lane.
    bundle = with_speedup("lanes1", {"lanes": 2, "speedup": 1.5})
    assert estimate_bundle(bundle, EstimateOptions(target="local", rows=rows, lanes=1)).lanes == 1
    assert estimate_bundle(bundle, EstimateOptions(target="cpu", rows=rows)).lanes == 1
    assert estimate_bundle(bundle, EstimateOptions(target="local", rows=100)).lanes == 1  # one chunk to share
    # The run's RAM cap: free RAM for one lane's sessions only (half the free RAM, 3x the largest model), one lane.
    model = max(p.stat().st_size for p in bundle.rglob("*.onnx"))
    monkeypatch.setattr(costing, "free_ram", lambda: 2 * 3 * model + 1)
    assert estimate_bundle(bundle, EstimateOptions(target="local", rows=rows)).lanes == 1
    # Another count than the measured one: interpolated from 1 lane (1x) to the measured count.
    four = with_speedup("four", {"lanes": 4, "speedup": 2.5})
    assert Costing(four, Manifest.load(four), EstimateOptions(target="local", rows=rows, lanes=2)).lanes(rows) == (2, 1.5)
    assert Costing(four, Manifest.load(four), EstimateOptions(target="local", rows=rows, lanes=8)).lanes(rows) == (8, 2.5)


@pytest.mark.timeout(180)
def test_spec_sheet_estimate_without_profile(digits_bundle):
    est = estimate_bundle(digits_bundle, EstimateOptions(target="t4x2", rows=25_000))
    assert est.confidence == "low"
    assert est.high_s / est.low_s >= 10
    assert [c for c in est.checks if c.code == "profile" and c.level == "warning"]
    inference = [i for i in est.items if i.stage == "inference"]
    # On a GPU target, no profile: the GPU model fitted to published figures (issue 27), not a spec-sheet
    # efficiency; the digits models are in no table row, so the basis says it extrapolates, near which rows.
    assert inference and all(i.basis.startswith("fitted: extrapolated (no same-family row on T4) near ")
                             for i in inference)
    assert all(load_figures().figure(i.basis.split(" near ")[1].split(" ")[0]).gpu == "T4" for i in inference)


@pytest.mark.timeout(180)
def test_wheels_folder_prices_the_install(profiled, tmp_path):
    bundle = copy_bundle(profiled, tmp_path / "b")
    (bundle / "wheels").mkdir()
    (bundle / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"\0" * 50_000_000)
    item = estimate_bundle(bundle, EstimateOptions(target="t4x2", rows=100)).items[0]
    assert item.stage == "install" and item.estimate.seconds == pytest.approx(5 + 2.0)
    assert item.estimate.confidence == "low"


@pytest.mark.timeout(180)
def test_the_process_around_the_run_is_priced_stage_by_stage(priced, tmp_path):
    """Interpreter start, imports, verification and exit: what a user timing the command waits for."""
    bundle = copy_bundle(priced, tmp_path / "process")

    def split(d):
        d["profile"]["startup"].update(python_s=0.05, imports_s=0.6, exit_s=0.3, import_s=0.95)

    edit_manifest(bundle, split)
    est = estimate_bundle(bundle, EstimateOptions(target="local", rows=1000, time_limit_s=60))
    stages = {i.stage: i.estimate.seconds for i in est.items if not i.member}
    # A fresh process's first touches (the whole-process check run less its parts) are startup's.
    edit_manifest(bundle, lambda d: d["profile"]["startup"].update(cold_s=0.25))
    colder = {i.stage: i for i in estimate_bundle(bundle, EstimateOptions(target="local", rows=1000)).items}
    assert colder["startup"].estimate.seconds == pytest.approx(stages["startup"] + 0.25)
    assert any("first touches of a fresh process" in n for n in colder["startup"].estimate.notes)
    # Where the whole process took less than its parts measured apart, the difference comes off the imports.
    edit_manifest(bundle, lambda d: d["profile"]["startup"].update(cold_s=-0.1))
    warmer = {i.stage: i for i in estimate_bundle(bundle, EstimateOptions(target="local", rows=1000)).items}
    assert warmer["imports"].estimate.seconds == pytest.approx(0.5)
    assert warmer["startup"].estimate.seconds == pytest.approx(stages["startup"])
    assert any("less 0.10 s" in n for n in warmer["imports"].estimate.notes)
    assert stages["python"] == pytest.approx(0.05) and stages["imports"] == pytest.approx(0.6)
    assert stages["exit"] == pytest.approx(0.3) and "verify" in stages
    assert est.stage_totals()["exit"][0] == pytest.approx(0.3)
    # Verification grows with the bytes the manifest lists, at the measured hash rate (1 GB/s here).
    before = stages["verify"]
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    (bundle / "big.bin").write_bytes(b"\0" * 50_000_000)
    manifest["files"]["big.bin"] = "0" * 64
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    after = estimate_bundle(bundle, EstimateOptions(target="local", rows=1000, time_limit_s=60))
    verify = next(i for i in after.items if i.stage == "verify").estimate.seconds
    assert verify - before == pytest.approx(0.05, rel=0.01)
    table = format_table(after)
    for stage in ("python", "imports", "verify", "exit"):
        assert f"\n{stage} " in table
    # An older profile measured the three together: priced as one imports stage, nothing lost.
    old = estimate_bundle(priced, EstimateOptions(target="local", rows=1000, time_limit_s=60))
    assert next(i for i in old.items if i.stage == "imports").estimate.seconds == pytest.approx(0.5)
    assert not {"python", "exit"} & {i.stage for i in old.items}


# -- the best plan that fits --------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_in_runtime_factor_below_one_holds_only_where_it_was_measured(priced):
    """The check run found the runtime faster than the member windows (prefetch hid the data stages):
    on this CPU the inference is priced so; on another target the overlap is not assumed."""
    def inf(target):
        est = estimate_bundle(priced, EstimateOptions(target=target, rows=10_000))
        return {i.member: i.estimate.seconds for i in est.items if i.stage == "inference"}

    before = {t: inf(t) for t in ("local", "cpu")}
    for factor in (0.7, 1.3):
        edit_manifest(priced, lambda d: d["profile"]["checkpoint"].update(run={"inference_factor": factor}))
        after = {t: inf(t) for t in ("local", "cpu")}
        assert after["local"]["cnn"] == pytest.approx(factor * before["local"]["cnn"])
        assert after["cpu"]["cnn"] == pytest.approx(max(factor, 1.0) * before["cpu"]["cnn"])


@pytest.mark.timeout(180)
def test_plan_degrades_the_slow_member_first(priced):
    # Full: cnn fp32 100 s + mlp 10 s. 40 s (no margin): cnn fp16 (20 s) + mlp at its faster batch.
    est = estimate_bundle(priced, EstimateOptions(target="local", rows=100_000, time_limit_s=40, margin_s=0))
    assert est.verdict == "does not fit"
    plan = est.plan
    chosen = {m: (v, b) for m, v, b, _ in plan.steps}
    assert chosen == {"cnn": ("fp16", 256), "mlp": ("fp32", 1024)}
    assert plan.dropped == ()
    assert ("cnn", "fp32@256", "fp16@256") in plan.degraded
    assert plan.value == pytest.approx(0.6 * 0.99 + 0.4)
    assert plan.high_s <= 40
    # `ninefit run` has one --batch-size for all members: the plan says so when its sizes differ.
    (note,) = plan.notes
    assert "(mlp 1024, cnn 256)" in note and "set it with --batch-size only if all members agree" in note
    assert "note: batch sizes differ per member" in format_table(est)


@pytest.mark.timeout(180)
def test_plan_drops_the_least_valuable_member_when_degrading_is_not_enough(priced):
    # 18 s: cnn fp16 (~22 s at the high edge) cannot fit; mlp (~5.5 s at batch 1024) can.
    est = estimate_bundle(priced, EstimateOptions(target="local", rows=100_000, time_limit_s=18, margin_s=0))
    plan = est.plan
    assert [s[0] for s in plan.steps] == ["mlp"]
    assert [d[0] for d in plan.dropped] == ["cnn"]
    # 30 s: one of cnn fp16 (22 s, value 0.594) or both is impossible: cnn fp16 + mlp ~ 27.5 s fits.
    est = estimate_bundle(priced, EstimateOptions(target="local", rows=100_000, time_limit_s=30, margin_s=0))
    assert {s[0] for s in est.plan.steps} == {"cnn", "mlp"}


@pytest.mark.timeout(180)
def test_plan_prefers_value_over_count(priced, tmp_path):
    # With scores, mlp is worth more than cnn: under a budget fitting one, mlp stays.
    bundle = copy_bundle(priced, tmp_path / "scored")

    def scores(d):
        d["members"][0]["score"] = 0.1
        d["members"][1]["score"] = 0.9

    edit_manifest(bundle, scores)
    est = estimate_bundle(bundle, EstimateOptions(target="local", rows=100_000, time_limit_s=12, margin_s=0))
    assert [s[0] for s in est.plan.steps] == ["mlp"]


@pytest.mark.timeout(180)
def test_plan_is_shown_when_tight_and_on_request(priced):
    fits = estimate_bundle(priced, EstimateOptions(target="local", rows=1_000, time_limit_s=HOUR), plan=True)
    assert fits.verdict == "fits" and fits.plan is not None
    assert {s[1] for s in fits.plan.steps} == {"fp32"}


@pytest.mark.timeout(180)
def test_a_member_that_fits_no_gpu_memory_is_blocking_and_dropped_from_the_plan(priced, monkeypatch):
    import packager.estimate.price.costing as costing
    from packager.estimate.price.hardware import get_target

    est = estimate_bundle(priced, EstimateOptions(target="t4x2", rows=1000))
    assert est.verdict == "fits"
    tiny = replace(get_target("t4x2"), memory_bytes=1.0)  # no GPU memory for anything
    monkeypatch.setattr(costing, "get_target", lambda key: tiny)
    est = estimate_bundle(priced, EstimateOptions(target="t4x2", rows=1000))
    blocking = {c.member for c in est.blocking if c.code == "gpu-memory"}
    assert blocking == {"cnn", "mlp"} and est.verdict == "does not fit"
    assert {m for m, _ in est.plan.dropped} == {"cnn", "mlp"} and not est.plan.steps
    assert "even at batch 1" in est.plan.dropped[0][1]


@pytest.mark.timeout(180)
def test_profile_from_another_machine_warns_for_local(profiled, tmp_path):
    bundle = copy_bundle(profiled, tmp_path / "elsewhere")

    def move(d):
        d["profile"]["fingerprint"]["cpu_model"] = "Some Other CPU"

    edit_manifest(bundle, move)
    est = estimate_bundle(bundle, EstimateOptions(target="local", rows=1000))
    assert "profile" in check_codes(est) and est.confidence != "high"
    assert not Costing(bundle, Manifest.load(bundle), EstimateOptions(target="local", rows=1)).machine.same


# -- chart -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_chart_is_a_png(profiled, tmp_path):
    pytest.importorskip("matplotlib")
    est = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=25_000, time_limit_s=60))
    path = write_chart(est, tmp_path / "out" / "estimate.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(10)
def test_best_plan_alone_degrades_then_drops_by_value():
    from packager.estimate.fitplan import Candidate, best_plan
    from runtime.manifest import Member

    def member(name, weight):
        return Member(name=name, weight=weight, inputs=(), output="y", variants=())

    big, small = member("big", 0.7), member("small", 0.3)
    members = [(big, [Candidate("fp32", 64, 1.0, 100.0), Candidate("fp16", 64, 1.0, 40.0, 0.95)]),
               (small, [Candidate("fp32", 64, 1.0, 30.0), Candidate("fp32", 256, 1.0, 20.0)])]
    roomy = best_plan(members, 1000, 200.0, 0.0, 5.0)
    assert {s[0]: s[1:3] for s in roomy.steps} == {"big": ("fp32", 64), "small": ("fp32", 256)}
    assert roomy.degraded == (("small", "fp32@64", "fp32@256"),)
    assert "one --batch-size for all members" in roomy.notes[0] and roomy.to_dict()["notes"] == list(roomy.notes)
    squeezed = best_plan(members, 1000, 70.0, 0.0, 5.0)  # 42 + 22 + 5 fits; 101 + 22 + 5 does not
    assert {s[0]: s[1] for s in squeezed.steps} == {"big": "fp16", "small": "fp32"}
    alike = [(big, [Candidate("fp32", 64, 1.0, 100.0), Candidate("fp32", 256, 1.0, 50.0)]),
             (small, [Candidate("fp32", 64, 1.0, 30.0), Candidate("fp32", 256, 1.0, 20.0)])]
    assert best_plan(alike, 1000, 200.0, 0.0, 5.0).notes == (
        "batch sizes: run with `ninefit run --batch-size 256` (one batch size for all members, which this plan has)",)
    tiny = best_plan(members, 1000, 50.0, 0.0, 5.0)  # room for one: the more valuable one, degraded
    assert [s[0] for s in tiny.steps] == ["big"] and [d[0] for d in tiny.dropped] == ["small"]
    assert tiny.value == pytest.approx(0.7 * 0.95)
    assert tiny.notes == ()  # a cheaper variant at the packaged batch size: the runtime does that by itself
    none = best_plan(members, 1000, 50.0, 10.0, 45.0, "install")
    assert none.steps == () and "install need 45 s" in none.dropped[0][1]


@pytest.mark.timeout(10)
def test_times_are_printed_as_the_run_log_prints_them():
    from packager.estimate.render import fmt_s
    from runtime.progress import format_seconds

    for seconds in (0.41, 12.3, 245, 9 * HOUR):
        assert fmt_s(seconds) == format_seconds(seconds)
    assert fmt_s(-300) == "-5m00s"  # a negative margin left keeps its sign


# -- module structure ------------------------------------------------------------------------


# -- the data path: the run report's stages, overlap on a GPU, memory bounded by chunks ----------------
@pytest.mark.timeout(180)
def test_the_profile_splits_the_data_stages_as_the_run_report_does(profiled):
    profile = Manifest.load(profiled).profile
    stages = next(iter(profile.members["cnn"]["fp32"].batches.values())).stages
    assert set(stages.to_dict()) == {"read", "decode", "preprocess", "infer", "postprocess"}
    assert stages.read > 0 and stages.decode == 0.0  # a table: its rows are read, nothing is decoded


@pytest.mark.timeout(180)
def test_on_a_gpu_target_the_data_stages_hide_behind_inference(digits_bundle, tmp_path):
    def inference_s(data: float, post: float) -> float:
        bundle = copy_bundle(digits_bundle, tmp_path / f"b{data}")
        profile = fake_profile({("cnn", "fp32"): {256: 1e-3}, ("cnn", "fp16"): {256: 2e-4}, ("mlp", "fp32"): {256: 1e-4}})
        for member in profile["members"].values():
            for v in member.values():
                for point in v["batches"].values():
                    total = point["s_per_batch"]
                    point["stages"] = {"read": data * total, "decode": 0.0, "preprocess": 0.0,
                                       "infer": 0.6 * total, "postprocess": post * total}
        store_profile(bundle, profile)
        est = estimate_bundle(bundle, EstimateOptions(target="t4x2", rows=100_000))
        return est.stage_totals()["inference"][0]

    # The same host seconds: as data stages they are prepared ahead of the GPU, as postprocessing they are not.
    assert inference_s(0.3, 0.1) < inference_s(0.0, 0.4)


def test_ram_for_the_test_data_grows_with_the_ids_only(digits_bundle):
    from packager.estimate.preflight import table_memory

    m = Manifest.load(digits_bundle)
    small, big = table_memory(m, 100_000, 600.0, 150.0), table_memory(m, 1_000_000, 600.0, 150.0)
    ids = 900_000 * 150.0
    assert ids <= big - small <= 1.1 * ids  # the chunks in flight grow a little (chunks hold rows / MAX_CHUNKS)
    assert small < 100_000 * 600.0  # far below the whole table in memory


# -- a profile taken on a busy machine ---------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("noise", ["windows", "load", "process"])
def test_a_busy_profile_is_low_confidence_with_a_band_as_wide_as_its_disagreement(quiet, tmp_path, noise):
    """A --target local estimate said "confidence high" with a 10% band on a profile whose repeats never agreed
    (38.3 s estimated, 11 to 23 s measured)."""
    options = EstimateOptions(target="local", rows=25_000, time_limit_s=9 * HOUR, lanes=1)
    calm = estimate_bundle(quiet, options)
    assert calm.confidence == "high" and not [c for c in calm.checks if "busy machine" in c.message]
    busy = copy_bundle(quiet, tmp_path / "busy")

    def disturb(data: dict) -> None:
        profile = data["profile"]
        if noise == "windows":  # the cnn's windows at its batch size never agreed: x3 apart
            point = profile["members"]["cnn"]["fp32"]["batches"]["256"]
            point["windows"] = [point["s_per_row"], 3 * point["s_per_row"], 2 * point["s_per_row"]]
            point["stable"] = False
        elif noise == "load":  # the repeats agree, but other processes took 60% of the cores throughout
            profile["load"]["others_cpu_share"] = 0.6
        else:  # the interpreter-and-imports runs: x2 apart
            runs = profile["startup"]["import_runs"]
            profile["startup"]["import_runs"] = [runs[0], 2 * runs[0], *runs[2:]]

    edit_manifest(busy, disturb)
    est = estimate_bundle(busy, options)
    factor = {"windows": 3.0, "load": 1 / 0.4, "process": 2.0}[noise]
    stage = {"windows": ("inference", "cnn"), "load": ("inference", "mlp"), "process": ("imports", "")}[noise]
    item = next(i for i in est.items if (i.stage, i.member) == stage)
    assert item.estimate.confidence == "low"
    assert item.estimate.high >= item.estimate.seconds * factor * 0.999
    assert item.estimate.low <= item.estimate.seconds / factor * 1.001
    assert any("band widened" in n for n in item.estimate.notes)
    (warning,) = [c for c in est.checks if c.code == "profile" and "busy machine" in c.message]
    assert warning.level == "warning" and f"x{factor:.2f}" in warning.message and "ninefit profile" in warning.message
    assert est.high_s > calm.high_s and est.low_s < calm.low_s
    if noise != "process":  # the cnn's inference weighs on the total: the whole estimate is low confidence
        assert est.confidence == "low"
    text = format_table(est)
    assert "warning [profile] the profile was measured on a busy machine" in text
