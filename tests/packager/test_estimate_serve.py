"""``ninefit estimate`` for a bundle that serves Kaggle's evaluation API: startup, the first call, each batch
against its response deadline, the whole against the limit and the paced shares; on set costs (a profile
"measured here" with given seconds per row), so the decisions do not hang on this machine's speed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.build import package
from packager.cli import main
from packager.estimate.estimator import EstimateOptions
from packager.estimate.measure.profile import store_profile
from packager.estimate.serve import declared_batches, estimate_serve, format_serve
from runtime.errors import UsageError
from runtime.manifest import MANIFEST_NAME, Manifest, ServeSpec
from runtime.serve.budget import MARGIN_FLOOR_S, MARGIN_SHARE
from tests.fixtures.estimates import fake_profile

pytestmark = pytest.mark.timeout(300)  # the digits fixture trains two models on first use

HOUR = 3600.0
SERVE = """
[serve]
response_timeout_s = 60
expected_rows = 5400
batch_rows = 100
"""
#: cnn fp32 1 ms a row, its fp16 rung 0.2 ms, mlp 0.1 ms (at batch 256, proportional below it).
COSTS = {("cnn", "fp32"): {256: 1e-3}, ("cnn", "fp16"): {256: 2e-4}, ("mlp", "fp32"): {256: 1e-4}}


@pytest.fixture(scope="module")
def served(digits_dir, tmp_path_factory) -> Path:
    """The digits example packaged with a [serve] table appended to its spec (read-only: copy first)."""
    root = tmp_path_factory.mktemp("served")
    spec = root / "spec"
    shutil.copytree(digits_dir, spec, ignore=shutil.ignore_patterns("work"))
    (spec / "ninefit.toml").write_text((spec / "ninefit.toml").read_text() + SERVE)
    package(spec / "ninefit.toml", root / "digits")
    return root / "digits"


def _bundle(served: Path, tmp_path: Path, costs=COSTS, **serve) -> Path:
    """A copy of the served bundle with set costs and ``serve``'s keys changed in its manifest."""
    bundle = tmp_path / "served"
    shutil.copytree(served, bundle)
    store_profile(bundle, fake_profile(costs))
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    data["serve"].update(serve)
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))
    return bundle


def _estimate(bundle: Path, limit: float = 9 * HOUR, **kwargs):
    rows = kwargs.pop("rows", None)
    manifest = Manifest.load(bundle)
    batches = declared_batches(manifest.serve, manifest, rows, kwargs.pop("data", None))
    options = EstimateOptions(target="local", rows=batches.rows, time_limit_s=limit, **kwargs)
    return estimate_serve(bundle, options, batches=batches)


def test_a_generous_deadline_fits_with_every_member_on_every_batch(served, tmp_path):
    bundle = _bundle(served, tmp_path)
    est = _estimate(bundle)
    assert est.verdict == "fits" and not est.blocking
    assert est.batches.shapes == ((100, 54),) and est.rows == 5400
    (fit,) = est.fits
    assert [(m, v) for m, v, _ in fit.runs] == [("cnn", "fp32"), ("mlp", "fp32")] and fit.left_out == ()
    # The runtime's own margin before a response deadline (runtime.serve.budget), for a 60 s deadline.
    assert est.call_margin_s == pytest.approx(min(MARGIN_FLOOR_S, 0.25 * 60) + MARGIN_SHARE * 60)
    # The first call loads every member's best rung and runs the typical batch through each, with no deadline.
    assert {(i.stage, i.member) for i in est.first_call if i.member} == {
        ("load", "cnn"), ("load", "mlp"), ("inference", "cnn"), ("inference", "mlp")}
    assert [i.stage for i in est.startup] == ["install", "imports", "server"]  # an older profile: one import_s
    # The later calls: 53 batches of each member's work, on the per-member costs of the file-run estimate.
    later = {i.member: i.estimate.seconds for i in est.later if i.stage == "inference"}
    assert later["cnn"] == pytest.approx(53 * 100 * 1e-3, rel=0.01) and later["mlp"] == pytest.approx(0.53, rel=0.01)
    assert est.shares is None and est.answered is None
    text = format_serve(est)
    assert "verdict: FITS (every batch is answered within its response deadline" in text
    assert "5,400 rows in 54 batches of 100 rows" in text and "left out" not in text.split("verdict:")[1]
    largest = {(m, v): n for m, v, n in est.largest}
    assert 100 < largest[("cnn", "fp32")] < largest[("cnn", "fp16")] and largest[("cnn", "fp32")] < largest[("mlp", "fp32")]


def test_a_deadline_too_short_for_the_slowest_member_leaves_it_out_and_still_fits(served, tmp_path):
    # cnn needs 5 s (fp32) or 2 s (fp16) of a 1,000-row batch; the 1 s deadline leaves the members about 0.7 s.
    costs = {("cnn", "fp32"): {256: 5e-3}, ("cnn", "fp16"): {256: 2e-3}, ("mlp", "fp32"): {256: 1e-4}}
    bundle = _bundle(served, tmp_path, costs, response_timeout_s=1.0, batch_rows=1000, expected_rows=54_000)
    est = _estimate(bundle)
    assert est.call_margin_s == pytest.approx(MARGIN_FLOOR_S + MARGIN_SHARE * 1.0)
    (fit,) = est.fits
    assert [m for m, _, _ in fit.runs] == ["mlp"] and [m for m, _ in fit.left_out] == ["cnn"]
    assert est.verdict == "fits"
    assert "cnn is left out of every batch" in est.reason and "1,000-row batch needs" in est.reason
    largest = {(m, v): n for m, v, n in est.largest}
    assert 0 < largest[("cnn", "fp32")] < largest[("cnn", "fp16")] < 1000 < largest[("mlp", "fp32")]
    assert f"fits at most {largest[('cnn', 'fp32')]:,} rows on fp32" in est.reason
    # Its later calls run mlp alone; the first call (no deadline) still loads and runs cnn.
    assert {i.member for i in est.later if i.stage == "inference"} == {"mlp"}
    assert ("inference", "cnn") in {(i.stage, i.member) for i in est.first_call}
    text = format_serve(est)
    assert "verdict: FITS" in text and "left out: cnn" in text


def test_a_limit_too_short_for_the_whole_shows_the_paced_shares(served, tmp_path):
    bundle = _bundle(served, tmp_path, expected_rows=54_000)  # 540 batches of 100 rows: 59 s of members' work
    est = _estimate(bundle, limit=20.0, margin_s=0.0)
    assert est.verdict == "does not fit" and not est.blocking
    shares = {m: (v, f) for m, v, f in est.shares}
    assert shares["mlp"] == ("fp32", 1.0)  # the most value per second: every row
    rung, fraction = shares["cnn"]
    assert rung == "fp16" and 0 < fraction < 1  # the marginal member: its cheaper rung on part of each batch
    assert est.value == pytest.approx(0.4 + 0.6 * 0.99 * fraction)  # weights 0.6 / 0.4, fp16 worth 0.99
    assert f"delivers {est.delivered:.0%} of the ensemble's value" in est.reason
    assert f"cnn fp16 on {fraction:.0%} of the rows" in est.reason and "mlp fp32 on every row" in est.reason
    text = format_serve(est)
    assert "verdict: DOES NOT FIT" in text and "paced plan" in text
    assert f"run   cnn            fp16     on {fraction:.0%} of each batch's rows" in text
    assert "run   mlp            fp32     on every row" in text


def test_a_run_that_cannot_pace_says_how_many_batches_get_their_members(served, tmp_path):
    bundle = _bundle(served, tmp_path, expected_rows=0)  # the run does not know the rows to come
    est = _estimate(bundle, limit=20.0, margin_s=0.0, rows=54_000)
    assert est.verdict == "does not fit" and est.shares is None
    assert 1 < est.answered < est.batches.count == 540
    assert "cannot pace" in est.reason and f"about {est.answered:,} of 540 batches" in est.reason
    assert any("neither expected_rows nor expected_batches" in c for c in est.caveats)


def test_a_startup_over_its_limit_does_not_fit_and_names_startup(served, tmp_path):
    bundle = _bundle(served, tmp_path, startup_limit_s=1.0)  # imports 0.5 s and the server's 1.5 s
    est = _estimate(bundle)
    assert est.verdict == "does not fit"
    assert [c.code for c in est.blocking] == ["startup"]
    assert "[startup] the server takes calls about" in est.reason and "over the startup limit of 1.0s" in est.reason
    assert "verdict: DOES NOT FIT ([startup]" in format_serve(est)


def test_a_call_whose_own_cost_outlasts_its_deadline_does_not_fit(served, tmp_path):
    bundle = _bundle(served, tmp_path, response_timeout_s=0.002)
    est = _estimate(bundle)
    (fit,) = est.fits
    assert fit.overhead.seconds >= est.response_timeout_s - est.call_margin_s  # reading, answering: over 2 ms
    assert est.verdict == "does not fit" and [c.code for c in est.blocking] == ["response-deadline"]
    assert "it cannot be answered in time" in est.reason


def test_batch_by_groups_on_the_public_test_scaled_to_the_hidden_size(served, digits_dir, tmp_path):
    import pandas as pd

    public = tmp_path / "public"
    public.mkdir()
    test = pd.read_csv(digits_dir / "data" / "test.csv")
    assert len(test) == 540
    test["date_id"] = [0] * 40 + [1] * 200 + [2] * 300
    test.to_csv(public / "test.csv", index=False)
    serve = ServeSpec(batch_by="date_id", expected_rows=5400, expected_batches=30)  # 180 rows a batch: as public
    manifest = Manifest.load(served)
    assert declared_batches(serve, manifest, data=public).shapes == ((40, 10), (200, 10), (300, 10))
    twice = ServeSpec(batch_by="date_id", expected_rows=5400, expected_batches=15)  # 360 a batch: groups x2
    assert declared_batches(twice, manifest, data=public / "test.csv").shapes == ((80, 5), (400, 5), (600, 5))
    with pytest.raises(UsageError, match="--data"):
        declared_batches(ServeSpec(batch_by="date_id", expected_rows=5400), manifest)
    even = declared_batches(ServeSpec(batch_by="date_id", expected_rows=5400, expected_batches=30), manifest)
    assert even.shapes == ((180, 30),) and "were not read" in even.notes[0]
    with pytest.raises(UsageError, match="not a column"):
        declared_batches(ServeSpec(batch_by="day", expected_batches=3), manifest, data=public)
    with pytest.raises(UsageError, match="--rows"):
        declared_batches(ServeSpec(), manifest)
    # Priced per size: the deadline checked for each, the largest batch the tightest.
    bundle = _bundle(served, tmp_path, batch_by="date_id", expected_rows=5400, expected_batches=15,
                     batch_rows=1, response_timeout_s=0.15)
    est = _estimate(bundle, data=public)
    assert [(f.rows, f.count) for f in est.fits] == [(80, 5), (400, 5), (600, 5)]
    runs = {f.rows: [m for m, _, _ in f.runs] for f in est.fits}
    # About 0.1 s for the members: cnn runs on 80 rows (0.09 s at fp32), not on 600 (0.13 s even at fp16).
    assert "cnn" in runs[80] and "cnn" not in runs[600] and "mlp" in runs[600]
    assert "cnn is left out of" in est.reason and "of 15 batches (those of " in est.reason


# -- the command ------------------------------------------------------------------------


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["estimate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prices_a_bundle_that_serves(served, tmp_path, capsys):
    bundle = _bundle(served, tmp_path)
    cal = ["--calibration", str(tmp_path / "calibration.json"), "--target", "local"]
    code, out, err = _cli(capsys, str(bundle), *cal)  # the rows from [serve] expected_rows
    assert code == 0, err
    assert "serving Kaggle's evaluation API" in out and "verdict: FITS" in out
    code, out, err = _cli(capsys, str(bundle), *cal, "--json", "--time-limit", "20s", "--margin", "0s",
                          "--rows", "54000")
    assert code == 4, err  # does not fit: the exit status of the file-run estimate
    data = json.loads(out)
    assert data["shape"] == "serve" and data["verdict"] == "does not fit" and data["rows"] == 54_000
    assert data["serve"]["batches"]["batches"] == 540 and data["serve"]["paced"] is True
    assert {s["member"] for s in data["serve"]["shares"]} == {"cnn", "mlp"}
    assert data["expected_s"] == pytest.approx(sum(i["seconds"] for i in data["items"]))
    code, out, err = _cli(capsys, str(bundle), *cal, "--file-run", "--rows", "5400", "--json")
    assert code == 0, err
    assert json.loads(out)["shape"] == "file"
    code, _, err = _cli(capsys, str(bundle), *cal, "--file-run")
    assert code == 2 and "--rows" in err
    code, _, err = _cli(capsys, str(bundle), *cal, "--chart", str(tmp_path / "c.png"))
    assert code == 2 and "--file-run" in err
    no_rows = _bundle(served, tmp_path / "none", expected_rows=0)
    code, _, err = _cli(capsys, str(no_rows), *cal)
    assert code == 2 and "expected_rows" in err and "--rows" in err
