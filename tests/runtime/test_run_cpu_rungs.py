"""A run on a CPU target whose planner takes the int8 rung because the probes measured it cheaper.

The digits example packaged for ``--target cpu`` with a real int8 rung on its MLP (dynamic quantization, guarded
on the sample rows at packaging), run on the slow test backend on a fake clock (:mod:`tests.runtime.slow_backend`):
the costs per row are the test's, so what the planner decides follows from them alone. The MLP's fp32 rung does
not fit the limit beside the CNN; its int8 rung does. Where the int8 rung costs as much as fp32, the cost model
prunes it and the MLP is cut short instead: the int8 rung is taken for its measured cost, not for its name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.manifest import Manifest
from runtime.run import RunOptions, run
from tests.fixtures.bundles import check_valid
from tests.fixtures.clock import LaneClock
from tests.runtime import slow_backend

pytestmark = [pytest.mark.timeout(300)]

INT8 = '''
  [[model.variant]]
  name = "int8"
  precision = "int8"
'''


@pytest.fixture(scope="module")
def int8_bundle(digits_dir, tmp_path_factory) -> Path:
    from packager.build import PackageOptions, package

    dest = tmp_path_factory.mktemp("int8run")
    src = dest / "src"
    shutil.copytree(digits_dir, src, ignore=shutil.ignore_patterns("work", "__pycache__"))
    text = (src / "ninefit.toml").read_text().replace("batch_size = 256", "batch_size = 32")
    head, mlp = text.split('name = "mlp"')
    (src / "ninefit.toml").write_text(head + 'name = "mlp"' + mlp.rstrip() + "\n" + INT8)
    package(src / "ninefit.toml", dest / "bundle", PackageOptions(target="cpu"))
    return dest / "bundle"


def _run(bundle: Path, digits_dir: Path, tmp_path: Path, monkeypatch, s_per_row: dict[str, float]):
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row=s_per_row)
    out = tmp_path / "out" / "submission.csv"
    clock = LaneClock()
    with slow_backend.fake_time(clock):
        # 540 rows: cnn 1.1 s and mlp at fp32 5.4 s do not fit 6 s - 1 s margin - 0.5 s reserve; mlp at int8 1.1 s does.
        report = run(bundle, digits_dir / "data", out, RunOptions(backend="slow", progress=False, lanes=1,
                     work_dir=tmp_path / "work", time_limit_s=6.0, margin_s=1.0, reserve_s=0.5), clock=clock)
    return report, out


def test_the_planner_takes_the_int8_rung_it_measured_cheaper(int8_bundle, digits_dir, tmp_path, monkeypatch):
    manifest = Manifest.load(int8_bundle)
    mlp = next(m for m in manifest.members if m.name == "mlp")
    assert manifest.target == "cpu" and [(v.name, v.precision) for v in mlp.variants] == [("fp32", "fp32"), ("int8", "int8")]
    report, out = _run(int8_bundle, digits_dir, tmp_path, monkeypatch,
                       {"mlp/fp32": 0.01, "mlp/int8": 0.002, "*": 0.002})
    m = report.member("mlp")
    # Every row predicted: fp32 on its probe, then the int8 rung for the rest, which fp32 could not have done in time.
    assert m.status == "degraded" and m.rows == 540 and m.variants == ["fp32", "int8"], report.table()
    assert any(d["decision"] == "run" and d["variant"] == "int8" for d in m.decisions), report.table()
    assert any(e.startswith("mlp: degraded to int8") for e in report.events), report.events
    ran = {(s["member"], s["variant"]): s["rows"] for lane in report.lanes for s in lane["steps"]}
    assert ran[("mlp", "int8")] == 540 - ran[("mlp", "fp32")] > 400, ran
    assert report.member("cnn").status == "done" and report.failure == "", report.table()
    check_valid(out, digits_dir)
    # A CPU target: the lanes' intra-op threads are chosen from the cores here and said in the run report.
    assert "intra-op thread(s) per lane" in report.lane_rule and "intra-op thread(s) per lane" in report.table()


def test_an_int8_rung_no_cheaper_than_fp32_is_pruned_once_measured(int8_bundle, digits_dir, tmp_path, monkeypatch):
    report, _ = _run(int8_bundle, digits_dir, tmp_path, monkeypatch, {"mlp": 0.01, "*": 0.002})
    m = report.member("mlp")
    # Tried (an unmeasured CPU rung is assumed cheaper until measured), measured no cheaper, pruned at once.
    assert any("mlp: rung int8 pruned" in e and "not cheaper than fp32" in e for e in report.events), report.table()
    assert m.status != "done", report.table()
