"""``ninefit estimate`` end to end on the digits bundle: table, --json, verdicts, chart, --calibrate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.cli import main
from packager.estimate.measure.profile import ProfileOptions, profile_bundle, store_profile


@pytest.fixture(scope="module")
def bundle(digits_bundle, digits_dir, tmp_path_factory) -> Path:
    """A profiled copy of the digits bundle (read-only)."""
    dest = tmp_path_factory.mktemp("cli") / "digits"
    shutil.copytree(digits_bundle, dest)
    options = ProfileOptions(seconds_per_member=0.3, batch_sizes=(256,), startup=False)
    store_profile(dest, profile_bundle(dest, digits_dir / "data", options))
    return dest


@pytest.fixture
def cal(tmp_path) -> list[str]:
    """Never read or write the user's own calibration file."""
    return ["--calibration", str(tmp_path / "calibration.json")]


def estimate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["estimate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys, *argv: str, code: int = 0) -> dict:
    got, out, err = estimate(capsys, *argv, "--json")
    assert got == code, err
    return json.loads(out)


@pytest.mark.timeout(180)
def test_table_on_digits(bundle, cal, capsys):
    code, out, err = estimate(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", "--time-limit", "9h", *cal)
    assert code == 0, err
    for stage in ("install", "imports", "verify", "startup", "load", "read", "inference", "ensembling", "writing",
                  "total"):
        assert f"\n{stage}" in out
    assert "NVIDIA T4 x2" in out and "25,000 rows" in out and "limit 9h00m00s" in out
    assert "verdict: FITS" in out and "to spare (expected)" in out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("extra, margin", [([], "5m24s"), (["--margin", "10%"], "54m00s"),
                                           (["--time-limit", "12s"], "0.37s")], ids=["default", "share", "short"])
def test_the_margin_is_one_figure(bundle, cal, capsys, extra, margin):
    import re

    code, out, err = estimate(capsys, str(bundle), "--target", "local", "--rows", "1000", *extra, *cal)
    assert code in (0, 3, 4), err
    header = re.search(r"limit \S+, margin (\S+)\n", out).group(1)
    summary = re.search(r" - margin (\S+) = ", out).group(1)
    assert header == summary == margin  # the run's floor: 0.25 s + 1 % of the limit
    assert "margin left" not in out  # the time to spare is not a second "margin"


@pytest.mark.timeout(180)
def test_json_has_the_same_figures(bundle, cal, capsys):
    data = as_json(capsys, str(bundle), "--target", "local", "--rows", "1,000", "--time-limit", "30m", *cal)
    assert data["verdict"] == "fits" and data["rows"] == 1000 and data["time_limit_s"] == 1800
    assert data["margin_s"] == pytest.approx(18.25)  # the floor of the run's own margin: 0.25 s + 1 % of the limit
    # The bundle-wide stages add up; the members' stages are laid out over the run's lanes (their span).
    fixed = sum(i["seconds"] for i in data["items"] if not i["member"])
    span = max(s["end_s"] for s in data["lane_layout"])
    assert data["expected_s"] == pytest.approx(fixed + span)
    if data["lanes"] == 1:
        assert data["expected_s"] == pytest.approx(sum(i["seconds"] for i in data["items"]))
    assert data["margin_left_s"] == pytest.approx(data["available_s"] - data["expected_s"])
    assert set(data["stages"]) == {"install", "python", "imports", "verify", "startup", "load", "read", "features",
                                   "inference", "ensembling", "writing", "postprocess", "exit"}
    assert {i["member"] for i in data["items"] if i["stage"] == "inference"} == {"cnn", "mlp"}
    assert data["plan"] is None


@pytest.mark.timeout(180)
def test_three_verdicts(bundle, cal, capsys):
    base = as_json(capsys, str(bundle), "--target", "cpu", "--rows", "2000000", "--time-limit", "9h", *cal)
    expected, high = base["expected_s"], base["high_s"]
    assert high > expected * 1.2
    limit = f"{(expected + high) / 2:.3f}s"
    tight = as_json(capsys, str(bundle), "--target", "cpu", "--rows", "2000000", "--time-limit", limit,
                    "--margin", "0s", *cal, code=3)
    assert tight["verdict"] == "tight" and tight["plan"] is not None
    code, out, _ = estimate(capsys, str(bundle), "--target", "cpu", "--rows", "2000000", "--time-limit",
                            f"{expected / 3:.3f}s", "--margin", "5%", *cal)
    assert code == 4  # the exit status tells a script the verdict: 0 fits, 3 tight, 4 does not fit
    assert "verdict: DOES NOT FIT" in out and "best plan that fits" in out
    assert "drop " in out or "degrade " in out


@pytest.mark.timeout(180)
def test_plan_on_request_and_checks_printed(bundle, cal, capsys):
    code, out, _ = estimate(capsys, str(bundle), "--target", "p100", "--rows", "100", "--plan", *cal)
    assert code == 0
    assert "best plan that fits" in out and "pre-flight checks" in out and "[sm60]" in out


def _widest_run(png: Path, rgb: str) -> float:
    """The widest horizontal run of one colour in a PNG, as a share of the image width."""
    import matplotlib.pyplot as plt
    import numpy as np

    image = plt.imread(png)[..., :3]
    target = np.array([int(rgb[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    mask = np.abs(image - target).max(axis=2) < 0.02
    best = 0
    for row in mask:
        run = 0
        for on in row:
            run = run + 1 if on else 0
            best = max(best, run)
    return best / mask.shape[1]


@pytest.mark.timeout(180)
def test_chart(bundle, cal, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    code, out, _ = estimate(capsys, str(bundle), "--rows", "25000", "--chart", str(png), *cal)
    assert code == 0 and "chart written" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target, rows, limit", [("t4x2", 25000, "9h"), ("local", 540, "10s")],
                         ids=["kaggle", "small"])
def test_chart_is_scaled_to_the_work(bundle, cal, capsys, tmp_path, target, rows, limit):
    """At Kaggle scale the work is seconds of a 9 h limit: the axis must follow the work, not the limit."""
    pytest.importorskip("matplotlib")
    from packager.estimate.chart import axis_end, axis_unit
    from packager.estimate.estimator import EstimateOptions, estimate_bundle
    from runtime.settings import parse_duration

    png = tmp_path / "chart.png"
    code, out, err = estimate(capsys, str(bundle), "--target", target, "--rows", str(rows), "--time-limit", limit,
                              "--chart", str(png), "--no-calibration", *cal)
    assert "chart written" in out, err
    # The total bar (its colour) spans a good part of the picture, not a sliver at the left.
    assert _widest_run(png, "#1e88e5") > 0.1  # at the limit's scale it is 0.1 % of it: a pixel at most
    est = estimate_bundle(bundle, EstimateOptions(target=target, rows=rows, time_limit_s=parse_duration(limit)))
    end, limit_on_axis = axis_end(est)
    assert end <= 1.3 * est.high_s or end <= 1.06 * est.time_limit_s
    assert limit_on_axis == (target == "local")  # 10 s is near the work; 9 h is far: an axis break
    assert axis_unit(end)[1] == "seconds" and axis_unit(20 * 60)[1] == "minutes" and axis_unit(5 * 3600)[1] == "hours"


@pytest.mark.timeout(180)
def test_calibrate_from_a_run_report(bundle, cal, capsys, tmp_path):
    before = as_json(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", *cal)
    inf = {i["member"]: i["seconds"] for i in before["items"] if i["stage"] == "inference"}
    report = tmp_path / "run_report.json"
    report.write_text(json.dumps({"members": [
        {"name": m, "variant": "fp32", "rows": 25000, "seconds": 2 * s, "load_seconds": 0, "status": "done"}
        for m, s in inf.items()]}))
    code, out, err = estimate(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", "--calibrate",
                              str(report), *cal)
    assert code == 0, err
    assert "calibrated on" in out and "x2.000" in out and "saved to" in out
    assert json.loads(Path(cal[1]).read_text())["targets"]["t4x2"]["all"]["count"] == 2
    after = as_json(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", *cal)
    new = {i["member"]: i["seconds"] for i in after["items"] if i["stage"] == "inference"}
    assert all(new[m] == pytest.approx(2 * inf[m]) for m in inf)
    ignored = as_json(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", "--no-calibration", *cal)
    assert ignored["expected_s"] == pytest.approx(before["expected_s"])


@pytest.mark.timeout(180)
def test_a_calibration_must_come_from_the_targets_device(bundle, digits_dir, cal, capsys, tmp_path):
    """A CPU run's report folded into t4x2 scaled every GPU figure by a CPU's speed (mlp inference x8.5), silently."""
    from runtime.cli import main as runtime_main

    out = tmp_path / "cpu" / "submission.csv"
    assert runtime_main(["run", str(bundle), "--data", str(digits_dir / "data"), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    cpu_report = out.with_name("submission.run_report.json")
    ran = json.loads(cpu_report.read_text())
    assert ran["machine"]["cpu_model"] and {m["device"] for m in ran["members"]} == {"cpu"}
    before = Path(cal[1]).read_bytes() if Path(cal[1]).exists() else None
    for target in ("t4x2", "a100"):
        code, _, err = estimate(capsys, str(bundle), "--target", target, "--rows", "25000", "--calibrate",
                                str(cpu_report), *cal)
        assert code == 2 and "Traceback" not in err, err
        assert f"{cpu_report} ran on the CPU" in err and "a GPU target" in err and "--target local" in err, err
        assert "Nothing was folded in" in err
    assert (Path(cal[1]).read_bytes() if Path(cal[1]).exists() else None) == before  # nothing saved
    code, out_text, err = estimate(capsys, str(bundle), "--target", "local", "--rows", "25000", "--calibrate",
                                   str(cpu_report), *cal)
    assert code in (0, 3, 4) and f"{cpu_report} ran on the CPU" in out_text and "the device of local" in out_text, err

    def gpu_report(name: str, gpu: str, cpu_member: str | None = None) -> Path:
        data = json.loads(cpu_report.read_text())
        data["machine"] = {"cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cores": 4, "gpus": [gpu, gpu]}
        for m in data["members"]:
            m["device"], m["backend_used"] = ("cpu", "onnxruntime-cpu") if m["name"] == cpu_member else \
                ("gpu", "onnxruntime-cuda")
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    code, _, err = estimate(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", "--calibrate",
                            str(gpu_report("a100.json", "NVIDIA A100-SXM4-40GB")), *cal)
    assert code == 2 and "ran on the GPU (NVIDIA A100-SXM4-40GB)" in err and "--target a100" in err, err
    code, out_text, err = estimate(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", "--calibrate",
                                   str(gpu_report("t4.json", "Tesla T4", cpu_member="mlp")), *cal)
    assert code in (0, 3, 4), err
    assert "ran on the GPU (Tesla T4): the device of t4x2" in out_text
    assert "member mlp (ran on the CPU with onnxruntime-cpu, not the target's GPU: left out)" in out_text
    assert "calibrated on" in out_text and "cnn/fp32 inference" in out_text and "mlp/fp32 inference" not in out_text


@pytest.mark.timeout(180)
def test_user_mistakes_are_one_line_errors(bundle, cal, capsys, tmp_path):
    code, _, err = estimate(capsys, str(bundle), "--target", "tpu", "--rows", "10", *cal)
    assert code == 2 and "unknown hardware target 'tpu'" in err and "t4x2" in err and "Traceback" not in err
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    code, _, err = estimate(capsys, str(bundle), "--rows", "10", "--calibrate", str(bad), *cal)
    assert code == 2 and "run report" in err and "Traceback" not in err
    code, _, err = estimate(capsys, str(tmp_path), "--rows", "10", *cal)
    assert code == 2 and "not a ninefit bundle" in err
    for argv in (["--rows", "0"], ["--rows", "10", "--time-limit", "nine hours"], ["--rows", "10", "--margin", "120%"]):
        with pytest.raises(SystemExit) as exc:
            main(["estimate", str(bundle), *argv])
        assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err


@pytest.mark.timeout(180)
def test_bundle_without_profile_gets_a_spec_sheet_estimate(digits_bundle, cal, capsys):
    code, out, _ = estimate(capsys, str(digits_bundle), "--rows", "25000", *cal)
    assert code == 0
    assert "none: not measured" in out and "[profile]" in out and "published figures" in out


@pytest.mark.timeout(180)
def test_a_blocking_preflight_check_does_not_fit(bundle, cal, capsys):
    # 300 million digits rows need about 200 GiB of RAM; a Kaggle notebook has about 28 GiB. However long
    # the limit, the kernel kills that run: the verdict must not be "fits".
    code, out, err = estimate(capsys, str(bundle), "--target", "t4x2", "--rows", "300000000", "--time-limit",
                              "1000h", *cal)
    assert code == 4, err
    assert "verdict: DOES NOT FIT (pre-flight check [ram] blocks the run)" in out
    assert "BLOCKING [ram]" in out and "more than it has" in out
    assert "leaving members out does not lift" in out
    data = as_json(capsys, str(bundle), "--target", "t4x2", "--rows", "300000000", "--time-limit", "1000h", *cal,
                   code=4)
    assert data["verdict"] == "does not fit" and "[ram]" in data["reason"]
    assert [c["level"] for c in data["checks"] if c["code"] == "ram"] == ["blocking"]
    assert data["plan"]["steps"] == [] and data["plan"]["value"] == 0
    # Under 80 % of the RAM: no RAM check at all, and the same bundle fits.
    assert as_json(capsys, str(bundle), "--target", "t4x2", "--rows", "25000", *cal)["verdict"] == "fits"


@pytest.mark.timeout(60)
def test_help_documents_the_exit_status_and_the_real_default_margin(capsys):
    from runtime.progress import format_seconds
    from runtime.schedule.budget import default_margin

    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 fits; 3 tight; 4 does not fit" in text and "2 usage or input error" in text
    assert "0.25s + 1% of the limit" in text and "never more than 25% of it" in text
    for limit in (10.0, 60.0, 1800.0, 9 * 3600.0):  # the examples are the run's own rule
        assert f"{format_seconds(default_margin(limit))} of {format_seconds(limit)}" in text
    assert default_margin(10.0) == pytest.approx(0.35) and default_margin(0.8) == 0.2  # a quarter of a tiny limit


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", [["--json"], []], ids=["json", "table"])
def test_output_into_a_closed_pipe_ends_quietly(bundle, cal, argv):
    """`ninefit estimate ... | head`: the reader is gone before anything is written."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "packager.cli", "estimate", str(bundle), "--rows", "25000",
                             *cal, *argv], stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    os.close(read)  # closed early: every write to stdout fails with EPIPE
    _, err = proc.communicate(timeout=100)
    assert err.decode() == ""  # no "Broken pipe. Check the paths ...", no "Exception ignored ..."
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
