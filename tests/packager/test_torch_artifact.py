"""Packaging the torch artifact: the spec key, ONNX-only members with the reason, version skew against Kaggle's image."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from packager.build import package
from packager.cli import main
from packager.spec import load_spec
from packager.torch_artifact import image_torch_version, version_skew
from runtime.errors import ExportError, SpecError
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly
from tests.packager.test_sources import mlp, mlp_only

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def work(digits_dir, tmp_path) -> Path:
    d = tmp_path / "digits"
    shutil.copytree(digits_dir, d)
    return d


def with_artifacts(spec: Path, line: str) -> Path:
    """Put ``line`` (e.g. ``artifacts = ["onnx"]``) into the spec's last [[model]] (the MLP)."""
    text = spec.read_text()
    head, sep, last = text.rpartition("[[model]]\n")
    spec.write_text(head + sep + line + "\n" + last)
    return spec


@pytest.mark.parametrize(("line", "needle"), [
    ('artifacts = ["torch"]', 'artifacts = [\'torch\']; expected ["onnx"] or ["onnx", "torch"]'),
    ('artifacts = ["onnx", "tensorrt"]', "expected [\"onnx\"] or [\"onnx\", \"torch\"]"),
    ('artifacts = "onnx"', '`artifacts` in [[model]] \'mlp\' is "onnx" (a string); expected ["onnx"] or ["onnx", "torch"]'),
])
def test_bad_artifacts_key_is_a_spec_error(work, line, needle):
    spec = with_artifacts(work / "ninefit.toml", line)
    with pytest.raises(SpecError, match="\\[\\[model\\]\\] 'mlp'") as info:
        load_spec(spec)
    assert needle in str(info.value)


def test_torch_artifact_asked_for_an_onnx_source_is_a_spec_error(work):
    spec = mlp_only(work, 'onnx = "mlp.onnx"\nartifacts = ["onnx", "torch"]\n')
    with pytest.raises(SpecError, match="the model is given as an ONNX file: there is no torch model to export"):
        load_spec(spec)


def test_version_skew_compares_release_numbers():
    assert image_torch_version() == "2.10.0+cpu"  # packager/data/kaggle_image.txt
    assert "exported with torch 2.13.0+cpu, newer than the torch 2.10.0+cpu" in version_skew("2.13.0+cpu", "2.10.0+cpu", "t4x2")
    assert "package with torch <= 2.10.0" in version_skew("2.11.0", "2.10.0+cu126", "t4x2")
    assert version_skew("2.10.0+cu126", "2.10.0+cpu", "t4x2") == ""  # same release, other build
    assert version_skew("2.9.1", "2.10.0", "t4x2") == ""
    assert version_skew("", "2.10.0", "t4x2") == version_skew("2.13.0", None, "t4x2") == ""


@pytest.mark.slow
def test_package_for_t4x2_records_the_target_and_warns_of_a_newer_torch(work, tmp_path, capsys):
    import torch

    spec = with_artifacts(work / "ninefit.toml", 'artifacts = ["onnx"]')  # the MLP: ONNX only, on request
    out = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(out), "--target", "t4x2", "--no-wheels", "--no-profile",
                 "--kaggle-owner", "me"]) == 0
    printed = capsys.readouterr().out
    m = Manifest.load(out)
    assert m.target == "t4x2"
    cnn, mlp_member = m.members
    assert cnn.torch_version == torch.__version__ and cnn.variants[1].torch_file == "models/cnn/program.pt2"
    assert mlp_member.torch_version == "" and {v.torch_file for v in mlp_member.variants} == {""}
    assert mlp_member.torch_skipped == 'not asked for (artifacts = ["onnx"])'
    assert not (out / "models" / "mlp" / "program.pt2").exists()
    newer = version_skew(torch.__version__, image_torch_version(), "t4x2")
    if newer:  # torch here (2.13) is newer than Kaggle's image (2.10): said on the console and in report.md
        assert f"warning: {newer}" in printed
        assert newer in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_member_whose_torch_export_fails_carries_onnx_only_with_the_reason(work, tmp_path):
    """A TorchScript model cannot go through torch.export: ONNX only by default, an error when asked for."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(mlp(work), torch.zeros(2, 64)), str(work / "mlp.ts"))
    out = tmp_path / "bundle"
    result = package(mlp_only(work, 'torchscript = "mlp.ts"\n'), out)
    member = result.manifest.members[0]
    assert member.torch_version == "" and member.variants[0].torch_file == ""
    assert member.torch_skipped.startswith("model 'mlp': torch.export failed (")
    report = (out / "report.md").read_text()
    assert "| none: model 'mlp': torch.export failed (" in report
    assert "model 'mlp' carries ONNX only (no torch program): model 'mlp': torch.export failed" in report
    assert any("carries ONNX only" in w for w in result.warnings)

    asked = mlp_only(work, 'torchscript = "mlp.ts"\nartifacts = ["onnx", "torch"]\n', "asked.toml")
    with pytest.raises(ExportError, match="model 'mlp': torch.export failed"):
        package(asked, tmp_path / "asked")
    assert not (tmp_path / "asked").exists()


@pytest.mark.slow
def test_asked_for_torch_export_failure_is_a_clean_cli_error(work, tmp_path, capsys):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(mlp(work), torch.zeros(2, 64)), str(work / "mlp.ts"))
    spec = mlp_only(work, 'torchscript = "mlp.ts"\nartifacts = ["onnx", "torch"]\n', "asked.toml")
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile",
                                 "--kaggle-owner", "me"], "model 'mlp': torch.export failed")
    assert not (tmp_path / "b").exists()
