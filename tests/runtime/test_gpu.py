"""A bundle for a GPU target that runs on the CPU while a GPU is here: loud in the log, the report and the CLI.

This machine has no GPU: the tests say one is here through ``NINEFIT_GPU_PRESENT`` (the documented seam of
``runtime.gpu.gpu_present``), and the installed onnxruntime is the CPU build, so the fallback is real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime import gpu
from runtime.backends import onnxruntime as ort_backend
from runtime.backends.base import BackendOptions
from runtime.cli import main
from runtime.manifest import MANIFEST_NAME, Manifest, is_gpu_target
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(120)


def bundle_for(target: str, digits_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the digits bundle whose manifest records ``target`` (the manifest is not checksummed)."""
    bundle = tmp_path / f"bundle-{target or 'unknown'}"
    shutil.copytree(digits_bundle, bundle)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest["target"] = target
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    return bundle


def run_args(bundle: Path, digits_dir: Path, out: Path) -> list[str]:
    return ["run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out), "--quiet"]


def test_a_gpu_target_on_the_cpu_with_a_gpu_here_is_loud(digits_bundle, digits_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(gpu.GPU_PRESENT_ENV, "1")
    out = tmp_path / "submission.csv"
    assert main(run_args(bundle_for("t4x2", digits_bundle, tmp_path), digits_dir, out)) == 0  # the submission is written
    captured = capsys.readouterr()
    assert "WARNING, RUNNING ON THE CPU: the bundle was packaged for t4x2 (a GPU target)" in captured.err
    assert "NINEFIT_GPU_PRESENT=1" in captured.err and "onnxruntime (CPUExecutionProvider)" in captured.err
    assert "is the CPU build. Install onnxruntime-gpu instead" in captured.err
    assert "WARNING, RAN ON THE CPU: the bundle was packaged for t4x2" in captured.out  # the report table
    assert captured.err.count("WARNING, RUNNING ON THE CPU") == 1  # once a run, not once per member
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    (warning,) = report["device_warnings"]
    assert "many times slower than estimated" in warning and "first seen loading" in warning
    assert out.is_file()


@pytest.mark.parametrize("target, present", [("t4x2", "0"), ("cpu", "1"), ("", "1")])
def test_no_warning_without_a_gpu_or_without_a_gpu_target(digits_bundle, digits_dir, tmp_path, capsys, monkeypatch,
                                                            target, present):
    monkeypatch.setenv(gpu.GPU_PRESENT_ENV, present)
    main(run_args(bundle_for(target, digits_bundle, tmp_path), digits_dir, tmp_path / "s.csv"))
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err + captured.out
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    assert report["device_warnings"] == []
    no_gpu_note = "packaged for t4x2 (a GPU target), but this machine has no GPU (NINEFIT_GPU_PRESENT=0)"
    assert (no_gpu_note in captured.err and no_gpu_note in report["events"][0]) == (target == "t4x2")


def test_a_malformed_gpu_override_is_a_user_error(digits_bundle, digits_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(gpu.GPU_PRESENT_ENV, "maybe")
    fails_cleanly(capsys, main, run_args(bundle_for("t4x2", digits_bundle, tmp_path), digits_dir, tmp_path / "s.csv"),
                  "NINEFIT_GPU_PRESENT='maybe' is not a boolean")
    assert not (tmp_path / "s.csv").exists()


def test_old_manifests_without_a_target_load(digits_bundle):
    d = json.loads((digits_bundle / MANIFEST_NAME).read_text())
    d.pop("target", None)
    assert Manifest.from_dict(d).target == ""
    assert [is_gpu_target(t) for t in ("t4x2", "p100", "cpu", "local", "")] == [True, True, False, False, False]


def test_gpu_detection_falls_back_to_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.delenv(gpu.GPU_PRESENT_ENV, raising=False)
    monkeypatch.setattr(gpu, "gpu_count", lambda: 0)  # no NVML bindings
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-1234)'\necho 'GPU 1: Tesla T4 (UUID: GPU-5678)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu.detect_gpu() == (True, "nvidia-smi lists 2 GPU(s): GPU 0: Tesla T4")
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    assert gpu.detect_gpu() == (False, "nvidia-smi -L lists no GPU (exit 9)")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert gpu.detect_gpu() == (False, "no GPU through NVML or the driver, and no nvidia-smi")


def test_the_cause_tells_a_cpu_build_from_a_gpu_build_without_cuda():
    opts = BackendOptions()
    cpu = ort_backend.cpu_fallback_cause(["CPUExecutionProvider"], ["CPUExecutionProvider"], opts)
    assert "no GPU provider" in cpu and "the CPU build" in cpu
    broken = ort_backend.cpu_fallback_cause(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], opts)
    assert "the GPU provider failed to load" in broken and "CUDA or cuDNN version" in broken
    chosen = ort_backend.cpu_fallback_cause(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"],
                                            BackendOptions(providers=("CPUExecutionProvider",)))
    assert chosen == "the providers were set to CPUExecutionProvider"
