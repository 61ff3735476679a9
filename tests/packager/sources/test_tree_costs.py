"""A tree member's cost on a GPU target is CPU work: priced on the host CPU (its profile clock-scaled, never the
GPU roofline), no GPU session or upload at load, and on N GPU lanes a 1/N share of the host's cores (the lanes
do not count the cores twice)."""

from __future__ import annotations

import json

import pytest

from packager.cli import main
from tests.fixtures.tabular import make_table, train_lightgbm, write_project

pytest.importorskip("onnxmltools")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tree_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trees")
    x, y = make_table(700, 2, seed=3)
    train_lightgbm(x[:500], y[:500], 2).save_model(str(folder / "model.txt"))
    spec = write_project(folder, x[500:].reset_index(drop=True), 1, '[[model]]\nname = "gbm"\nlightgbm = "model.txt"\n')
    bundle = folder / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--profile-seconds", "0.5",
                 "--target", "t4x2"]) == 0
    return bundle


def _items(capsys, bundle, *extra) -> dict[str, dict]:
    capsys.readouterr()
    main(["estimate", str(bundle), "--target", "t4x2", "--rows", "200000", "--json", *extra])
    report = json.loads(capsys.readouterr().out)
    return {i["stage"]: i for i in report["items"] if i.get("member") == "gbm"}


def test_a_tree_member_is_priced_as_cpu_work_counted_once_over_the_lanes(tree_bundle, capsys):
    one = _items(capsys, tree_bundle, "--lanes", "1")
    two = _items(capsys, tree_bundle, "--lanes", "2")
    inference = one["inference"]
    assert inference["basis"] == "measured, host-scaled" and inference["bound"] == "host"
    assert any("CPU work (ai.onnx.ml operators)" in n for n in inference["notes"])
    assert not any("GPU session" in n for n in one["load"]["notes"])  # a CPU session: no GPU setup priced
    assert two["inference"]["seconds"] == pytest.approx(2 * inference["seconds"], rel=1e-6)
    assert any("CPU work on one of 2 GPU lanes, which share the host's cores" in n for n in two["inference"]["notes"])


def test_a_tree_member_runs_on_a_cpu_session_by_design_without_the_cpu_warning(tree_bundle, tmp_path, capsys,
                                                                             monkeypatch):
    """A GPU here and a GPU target: the tree member's CPU session is its design, not a fallback to warn about;
    its missing values, which go to the trees, are no warning either (--quiet prints nothing on stderr)."""
    monkeypatch.setenv("NINEFIT_GPU_PRESENT", "1")
    out = tmp_path / "s.csv"
    code = main(["run", str(tree_bundle), "--data", str(tree_bundle.parent), "-o", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "", captured.err
    assert "RUNNING ON THE CPU" not in captured.err + captured.out and "RAN ON THE CPU" not in captured.out
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    assert report["device_warnings"] == []
    (member,) = report["members"]
    assert member["status"] == "done" and "CPUExecutionProvider" in member["backend"]
