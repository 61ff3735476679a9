"""The fallback chain (backend ``auto``): order, reasons, the report, the GPU-target warning, cost re-measuring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.backends import chain, default_backend
from runtime.backends.base import BackendOptions, Runner
from runtime.backends.chain import Candidate, FallbackRunner
from runtime.errors import BackendError
from runtime.manifest import Manifest
from runtime.run import RunOptions, run
from runtime.schedule.costs import CostModel

pytestmark = pytest.mark.timeout(180)


class Fake(Runner):
    def __init__(self, name: str, kind: str = "cpu", fail: str = ""):
        super().__init__(name)
        self.kind, self.fail = kind, fail

    def activate_impl(self):
        if self.fail:
            raise BackendError(self.fail)

    def deactivate_impl(self):
        pass

    def infer_impl(self, feed):
        return {"y": np.asarray(feed["x"]) + (1 if self.kind == "gpu" else 2)}

    def device_kind(self):
        return self.kind


def accepts() -> dict[str, object]:
    """Each step's check of the runner it got (``Candidate.accept``), as the chain builds them."""
    return {c.label: c.accept for c in chain.candidates(Path("m.onnx"), "m/fp32", BackendOptions(torch_file=None))}


def test_chain_takes_the_first_step_that_loads_and_is_accepted(capsys):
    runner = FallbackRunner("m/fp32", [
        Candidate("tensorrt", lambda: Fake("a"), skip="no GPU here"),
        Candidate("onnxruntime-cuda", lambda: Fake("b", fail="CUDA driver version is insufficient")),
        Candidate("torch-cuda", lambda: Fake("c", kind="cpu"), accept=accepts()["torch-cuda"]),
        Candidate("onnxruntime-cpu", lambda: Fake("d")),
        Candidate("torch-cpu", lambda: Fake("e")),
    ])
    with runner:
        assert runner.infer({"x": np.zeros(2)})["y"].tolist() == [2, 2]
        assert runner.used == "onnxruntime-cpu" and runner.fell_back and runner.device_kind() == "cpu"
    assert [label for label, _ in runner.attempts] == ["tensorrt", "onnxruntime-cuda", "torch-cuda"]
    assert runner.attempts[0][1] == "skipped: no GPU here"
    assert runner.attempts[1][1] == "failed: CUDA driver version is insufficient"
    assert runner.attempts[2][1].startswith("failed: asked for the GPU, ended on the CPU")
    err = capsys.readouterr().err
    assert "m/fp32: onnxruntime-cuda failed: CUDA driver version is insufficient; trying the next backend" in err
    assert "m/fp32: running on onnxruntime-cpu" in err


def test_chain_with_nothing_left_says_every_reason():
    runner = FallbackRunner("m/fp32", [Candidate("onnxruntime-cpu", lambda: Fake("a", fail="no onnx")),
                                       Candidate("torch-cpu", lambda: Fake("b"), skip="torch is not installed")])
    with pytest.raises(BackendError, match=r"m/fp32: no backend could run it; tried onnxruntime-cpu \(failed: no onnx\); "
                                           r"torch-cpu \(skipped: torch is not installed\)"):
        runner.activate()


def test_onnxruntime_session_that_fell_to_the_cpu_is_not_accepted_as_cuda():
    accept = accepts()["onnxruntime-cuda"]  # it asks onnxruntime for CUDAExecutionProvider
    runner = Fake("m")
    runner.providers = ["CPUExecutionProvider"]
    assert "asked onnxruntime for CUDAExecutionProvider, the session got CPUExecutionProvider" in accept(runner)
    runner.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert accept(runner) == ""


def test_chain_order_and_skips_on_this_cpu_machine(digits_bundle, monkeypatch):
    monkeypatch.setattr(chain, "gpu_present", lambda: (False, "test: no GPU"))
    path = digits_bundle / "models" / "mlp" / "fp32.onnx"
    steps = chain.candidates(path, "mlp/fp32", BackendOptions(torch_file=None))
    assert [c.label for c in steps] == list(chain.STEPS)
    assert [c.skip for c in steps[:3]] == ["no GPU here"] * 3
    assert steps[3].skip == "" and steps[5].skip == "the bundle carries no torch program for this variant"
    assert steps[4].label == "openvino-cpu"  # after onnxruntime's CPU step (tests/runtime/backends/test_openvino_chain.py)
    assert default_backend() == "auto"


def with_target(bundle: Path, dest: Path, target: str) -> Path:
    """A copy of ``bundle`` whose manifest says it was packaged for ``target`` (the manifest is not checksummed)."""
    shutil.copytree(bundle, dest)
    path = dest / "manifest.json"
    d = json.loads(path.read_text())
    d["target"] = target
    path.write_text(json.dumps(d))
    return dest


def test_gpu_target_on_a_machine_whose_gpu_steps_fail_ends_on_the_cpu_loudly(digits_bundle, digits_dir, tmp_path,
                                                                                 monkeypatch, capsys):
    """The GPU steps are tried for real (as if a GPU were visible) and fail here; the run says so per member."""
    pytest.importorskip("torch")
    monkeypatch.setattr(chain, "gpu_present", lambda: (True, "test: a GPU"))
    monkeypatch.setenv("NINEFIT_GPU_PRESENT", "1")  # and for the run's own check of the providers it got
    bundle = with_target(digits_bundle, tmp_path / "bundle", "t4x2")
    rebased = []
    monkeypatch.setattr(CostModel, "rebase", lambda self, member: rebased.append(member))
    report = run(bundle, digits_dir / "data", tmp_path / "s.csv", RunOptions(progress=False, work_dir=tmp_path / "w",
                                                                             lanes=1))  # one lane: members in turn
    err = capsys.readouterr().err
    for m in report.members:
        assert m.status == "done" and m.backend_used == "onnxruntime-cpu" and m.device == "cpu"
        labels = [f.split(":")[0] for f in m.fallbacks]
        assert labels == ["tensorrt", "onnxruntime-cuda", "torch-cuda"]
        assert "this onnxruntime has no TensorrtExecutionProvider" in m.fallbacks[0]
        assert m.fallbacks[2].startswith("torch-cuda: failed:") and "sees no CUDA GPU" in m.fallbacks[2]
        assert m.backend.startswith("onnxruntime (CPUExecutionProvider")
    assert rebased == ["cnn", "mlp"]  # each member's cost is re-measured on the backend it ended on
    assert len(report.device_warnings) == 1  # once per run, loud, naming the GPU target
    assert "packaged for t4x2 (a GPU target)" in report.device_warnings[0]
    assert "WARNING, RUNNING ON THE CPU" in err and "cnn/fp32: torch-cuda failed:" in err
    saved = json.loads((tmp_path / "s.run_report.json").read_text())
    assert saved["device_warnings"] == report.device_warnings and saved["members"][1]["backend_used"] == "onnxruntime-cpu"
    assert "WARNING, RAN ON THE CPU" in report.table()


def test_cpu_target_on_the_cpu_does_not_warn(digits_bundle, digits_dir, tmp_path):
    bundle = with_target(digits_bundle, tmp_path / "bundle", "cpu")
    report = run(bundle, digits_dir / "data", tmp_path / "s.csv", RunOptions(progress=False, work_dir=tmp_path / "w"))
    assert report.device_warnings == [] and [m.backend_used for m in report.members] == ["onnxruntime-cpu"] * 2
    assert Manifest.load(bundle).target == "cpu"


def test_rebased_member_is_costed_on_live_batches_alone():
    from runtime.manifest import InputSpec, Member, Variant

    member = Member(name="m", weight=1, inputs=(InputSpec("x", "float32", ("batch", 2)),), output="y",
                    variants=(Variant("fp32", "m.onnx"),))
    other = Member(name="o", weight=1, inputs=member.inputs, output="y", variants=(Variant("fp32", "o.onnx"),))
    # "m" was profiled on a slow backend and fell back to a faster one; "o" runs as profiled.
    profile = {"m": {"fp32": {"s_per_row": 0.01}}, "o": {"fp32": {"s_per_row": 0.001}}}
    costs = CostModel((member, other), profile)
    for name in ("m", "o"):
        rate = costs.rate(name, "fp32")
        rate.add(10, 1.0)  # warm-up, left out
        rate.add(100, 0.1)  # 0.001 s/row live
    assert costs.calibration() == pytest.approx(0.55)  # median of m's 0.1 and o's 1.0
    assert costs.s_per_row("m", "fp32") == pytest.approx(0.001)  # measured here wins over the profile at once
    costs.rebase("m")
    assert costs.s_per_row("m", "fp32") == pytest.approx(0.001)
    assert costs.calibration() == pytest.approx(1.0)  # from "o" alone: "m"'s ratio says nothing about this machine
