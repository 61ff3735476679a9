"""``ninefit estimate`` and ``ninefit run`` lay a member's rows over the lanes by one rule.

A text run of one member over two chunks was estimated on 2 lanes (0.7-1.1 s each) while the run gave every
row to lane 0 and none to lane 1: the estimate split the rows anywhere, the run only in whole chunks, and only
below half the work. Both now split in the run's chunks (``runtime.execute.checkpoint.member_grid``) wherever a chunk on
another lane ends the work sooner.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from packager.estimate.measure.profile import ProfileOptions, profile_bundle
from runtime.execute.checkpoint import member_grid
from runtime.execute.lanes import usable_cores
from runtime.manifest import MANIFEST_NAME, Manifest
from tests.runtime import slow_backend

S_PER_ROW = 0.002  # the slow backend's cost, and the profile's: 256 rows take 0.5 s
ROWS = 400  # two chunks of 256 and 144 rows


@pytest.fixture(scope="module")
def one_member(digits_bundle, digits_dir, tmp_path_factory):
    """The digits bundle with its mlp alone, profiled here, its cost set to the slow backend's."""
    root = tmp_path_factory.mktemp("one-member")
    bundle = root / "mlp"
    shutil.copytree(digits_bundle, bundle)
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    data["members"] = [m for m in data["members"] if m["name"] == "mlp"]
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))
    profile = profile_bundle(bundle, digits_dir / "data", ProfileOptions(seconds_per_member=0.3, batch_sizes=(256,),
                                                                          startup=False, check_run=False)).to_dict()
    for point in profile["members"]["mlp"]["fp32"]["batches"].values():
        scale = S_PER_ROW / point["s_per_row"]
        point.update(s_per_row=S_PER_ROW, s_per_batch=S_PER_ROW * 256, windows=[S_PER_ROW] * 3)
        point["stages"] = {k: v * scale for k, v in point["stages"].items()}
    profile["members"]["mlp"]["fp32"]["s_per_row"] = S_PER_ROW
    data["profile"] = profile
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))
    folder = root / "data"
    folder.mkdir()
    for name in ("test.csv", "sample_submission.csv"):
        with open(digits_dir / "data" / name, newline="") as f:
            rows = list(csv.reader(f))[:ROWS + 1]
        with open(folder / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return bundle, folder


@pytest.mark.timeout(240)
def test_estimate_and_run_split_a_two_chunk_member_alike(one_member, tmp_path, capsys, monkeypatch):
    if usable_cores() < 2:
        pytest.skip("one core: the run's rule gives one lane")
    from packager.cli import main

    bundle, data = one_member
    manifest = Manifest.load(bundle)
    grid = member_grid(ROWS, manifest.members[0], manifest.profile)
    assert grid == [(0, 256), (256, ROWS)]

    code = main(["estimate", str(bundle), "--target", "local", "--rows", str(ROWS), "--time-limit", "2m", "--lanes",
                 "2", "--json", "--calibration", str(tmp_path / "cal.json")])
    est = json.loads(capsys.readouterr().out)
    assert code in (0, 3), est
    layout = est["lane_layout"]
    assert {step["lane"] for step in layout} == {0, 1} and {step["member"] for step in layout} == {"mlp"}
    # Whole chunks: one lane runs 256 rows, the other 144, so one takes 256/144 times as long (setup apart).
    spans = sorted(step["end_s"] - step["start_s"] for step in layout)
    load = next(i["seconds"] for i in est["items"] if i["stage"] == "load")
    assert (spans[1] - load) / (spans[0] - load) == pytest.approx(256 / 144, rel=0.05)

    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row={"*": S_PER_ROW})
    out = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(data), "-o", str(out), "--backend", "slow", "--lanes", "2",
                 "--time-limit", "2m", "--quiet"]) == 0
    report = json.loads(out.with_name("submission.run_report.json").read_text())
    assert sorted(lane["rows"] for lane in report["lanes"]) == [144, 256], report["lanes"]
