"""The offline steps of `ninefit package`: wheelhouse and dataset steps, end to end.

Offline and fast: the wheels are the tiny hand-made ones of test_wheelhouse.py,
resolved from a local folder; the digits example is packaged for real.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from packager.build import PackageOptions, package
from packager.offline import (
    DEFAULT_REQUIREMENTS,
    WHEELHOUSE_JSON,
    add_dataset_metadata,
    dataset_step,
    default_requirements,
    offline_summary,
    wheelhouse_step,
)
from packager.offline.interpreter import find_interpreter
from packager.offline.wheelhouse import DEFAULT_PLATFORMS
from packager.offline.wheelmeta import Target
from runtime.bundle import open_bundle
from runtime.errors import PackagingError
from tests.packager.wheels import HERE, OTHER, A, B, C, make_wheel

LOCAL_REASON = Target.make(HERE, DEFAULT_PLATFORMS).local_reason()
needs_local_install = pytest.mark.skipif(
    LOCAL_REASON is not None, reason=f"a real install needs a Linux x86_64 CPython: {LOCAL_REASON}")


@pytest.fixture()
def work(digits_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared digits example."""
    dest = tmp_path / "digits"
    shutil.copytree(digits_dir, dest)
    return dest


@pytest.fixture()
def stage(tmp_path: Path) -> Path:
    """A staged bundle folder as the steps find it: report.md already written."""
    root = tmp_path / "stage"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.onnx").write_bytes(b"x" * 1000)
    (root / "report.md").write_text("# ninefit bundle `digits`\n")
    return root


def demo_step(index: Path, **kwargs) -> object:
    return wheelhouse_step([A], find_links=[index], index=False, provided=[f"{C}==1.0"],
                           python_version=kwargs.pop("python_version", HERE), **kwargs)


def assert_no_bundle(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], \
        "temp folder left behind"


@pytest.mark.timeout(120)
def test_package_writes_a_checksummed_offline_bundle(work: Path, index: Path, tmp_path: Path, caplog):
    out = tmp_path / "bundles" / "digits"
    steps = (demo_step(index, imports=["ninefit_demo_a"]), dataset_step(owner="someone"))
    with caplog.at_level(logging.INFO, logger="ninefit.package"):
        result = package(work / "ninefit.toml", out, PackageOptions(steps=steps))
    messages = [r.getMessage() for r in caplog.records]

    wheels = sorted(p.name for p in (out / "wheels").iterdir())
    assert wheels == ["ninefit_demo_a-1.0-py3-none-any.whl", "ninefit_demo_b-1.0-py3-none-any.whl"]
    files = result.manifest.files
    expected = {WHEELHOUSE_JSON, *(f"wheels/{w}" for w in wheels)}
    assert expected <= set(files)
    assert open_bundle(out).manifest.files == files  # every checksum verifies
    # The Kaggle CLI reads dataset-metadata.json and does not upload it: listing it
    # would fail the checksum check on Kaggle (a missing file).
    assert (out / "dataset-metadata.json").is_file() and "dataset-metadata.json" not in files
    uploaded = out.parent / "as-uploaded"
    shutil.copytree(out, uploaded, ignore=lambda folder, names: ["dataset-metadata.json"] if folder == str(out) else [])
    open_bundle(uploaded)

    record = json.loads((out / WHEELHOUSE_JSON).read_text())
    assert record["requirements"] == [A]
    assert [w["project"] for w in record["wheels"]] == [A, B]
    assert record["skipped_provided"] == [{"project": C, "version": "1.0"}]
    check = record["install_check"]
    assert check["ok"] and check["missing"] == []
    assert check["mode"] == ("installed" if LOCAL_REASON is None else "static")
    assert record["install_command"].startswith("pip install --no-index --find-links wheels/")
    assert str(tmp_path) not in (out / WHEELHOUSE_JSON).read_text()  # no build-machine paths

    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "someone/digits" and meta["title"] == "digits"
    report = (out / "report.md").read_text()
    assert report.index("## Verification") < report.index("## Offline install") \
        < report.index("## Kaggle dataset")
    assert "| ninefit-demo-b | 1.0 |" in report and f"{C} 1.0" in report
    assert "kaggle datasets create -p BUNDLE --dir-mode zip" in report
    assert any("resolving" in m for m in messages)

    summary = offline_summary(out)
    assert summary[0].startswith("wheels: 2 ") and "1 left out" in summary[0]
    assert summary[1].startswith("offline install check: passed")
    assert "Kaggle dataset: someone/digits" in summary
    assert f"upload: kaggle datasets create -p {out} --dir-mode zip" in summary


@pytest.mark.timeout(120)
def test_missing_dependency_stops_packaging_and_leaves_nothing(work: Path, index: Path,
                                                               tmp_path: Path):
    (index / "ninefit_demo_b-1.0-py3-none-any.whl").unlink()
    out = tmp_path / "bundles" / "digits"
    steps = (demo_step(index), dataset_step(owner="someone"))
    with pytest.raises(PackagingError, match=B):
        package(work / "ninefit.toml", out, PackageOptions(steps=steps))
    assert_no_bundle(out)


@pytest.mark.timeout(120)
def test_no_owner_packages_without_dataset_metadata(work: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    empty = tmp_path / "kaggle-config"
    empty.mkdir()
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(empty))
    out = tmp_path / "bundles" / "digits"
    package(work / "ninefit.toml", out, PackageOptions(steps=(dataset_step(),)))

    assert not (out / "dataset-metadata.json").exists()
    report = (out / "report.md").read_text()
    assert "- warning: no dataset-metadata.json was written" in report
    assert "KAGGLE_USERNAME" in report and "add_dataset_metadata" in report
    assert any("no dataset-metadata.json" in line for line in offline_summary(out))

    # ...and it can be added to the finished bundle later, checksums untouched
    written = add_dataset_metadata(out, owner="someone")
    assert written.metadata.id == "someone/digits"
    assert "--dir-mode" in written.upload_command
    open_bundle(out)
    assert "Kaggle dataset: someone/digits" in offline_summary(out)


@pytest.mark.timeout(60)
@needs_local_install
def test_failed_import_after_the_real_install_stops_the_step(tmp_path: Path, stage: Path):
    src = tmp_path / "index"
    make_wheel(src, A, code="raise ImportError('needs a GPU driver')\n")
    step = wheelhouse_step([A], find_links=[src], index=False, provided=(),
                           python_version=HERE, imports=["ninefit_demo_a"])
    with pytest.raises(PackagingError, match="ninefit_demo_a"):
        step(stage, SimpleNamespace(name="digits"), None)


@pytest.mark.timeout(60)
def test_foreign_python_without_its_interpreter_gets_the_static_check(index: Path, stage: Path, tmp_path: Path,
                                                                       monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    manifest = object()
    step = demo_step(index, python_version=OTHER)
    assert step(stage, SimpleNamespace(name="digits"), manifest) is manifest
    check = json.loads((stage / WHEELHOUSE_JSON).read_text())["install_check"]
    assert check["ok"] and check["mode"] == "static" and f"no python{OTHER}" in check["skipped_reason"]
    assert "statically complete" in (stage / "report.md").read_text()


@pytest.mark.timeout(120)
def test_foreign_python_is_installed_in_an_interpreter_of_its_version(index: Path, stage: Path):
    found, why = find_interpreter(Target.make(OTHER, DEFAULT_PLATFORMS))
    if found is None:
        pytest.skip(f"no interpreter of the target here: {why}")
    step = demo_step(index, python_version=OTHER, imports=["ninefit_demo_a"])
    step(stage, SimpleNamespace(name="digits"), None)
    check = json.loads((stage / WHEELHOUSE_JSON).read_text())["install_check"]
    assert check["ok"] and check["mode"] == "installed", check
    assert check["python"].startswith(f"Python {OTHER}.") and str(found.path) in check["python"]
    assert f"fresh virtual environment of Python {OTHER}." in (stage / "report.md").read_text()


@pytest.mark.timeout(60)
def test_everything_provided_leaves_no_wheels_folder(index: Path, stage: Path):
    step = wheelhouse_step([C], find_links=[index], index=False, provided=[f"{C}==1.0"],
                           python_version=OTHER, verify=False)
    step(stage, SimpleNamespace(name="digits"), None)
    assert not (stage / "wheels").exists()
    record = json.loads((stage / WHEELHOUSE_JSON).read_text())
    assert record["wheels"] == [] and record["install_check"] is None
    report = (stage / "report.md").read_text()
    assert "No wheels" in report and "not run" in report


@pytest.mark.timeout(30)
def test_arguments_are_checked_when_the_step_is_made(tmp_path: Path):
    with pytest.raises(PackagingError, match="not valid"):
        wheelhouse_step(["onnxruntime-gpu >>> 1"])
    with pytest.raises(PackagingError, match="t4x2"):
        wheelhouse_step(target="tpu")
    with pytest.raises(PackagingError, match="'X.Y'"):
        wheelhouse_step(python_version="311")
    with pytest.raises(PackagingError, match="does not exist"):
        wheelhouse_step(find_links=[tmp_path / "nowhere"], index=False)
    with pytest.raises(PackagingError, match="title"):
        dataset_step("short", owner="someone")
    with pytest.raises(PackagingError, match="License"):
        dataset_step(owner="someone", license="MIT")


@pytest.mark.timeout(10)
def test_default_requirements_follow_the_target():
    assert default_requirements() == DEFAULT_REQUIREMENTS["gpu"]
    assert default_requirements("t4x2") == default_requirements("gpu")
    assert default_requirements("cpu") == ("onnxruntime>=1.18",)
    (gpu,) = default_requirements("gpu")
    assert gpu.startswith("onnxruntime-gpu") and "<1.27" in gpu  # CUDA 12 builds only


@pytest.mark.timeout(30)
def test_dataset_step_names_short_specs_and_warns_about_size(stage: Path):
    step = dataset_step(owner="someone", max_bytes=1200)
    step(stage, SimpleNamespace(name="cnn"), None)
    meta = json.loads((stage / "dataset-metadata.json").read_text())
    assert meta["title"] == "cnn ninefit bundle" and meta["id"] == "someone/cnn-ninefit-bundle"
    report = (stage / "report.md").read_text()
    assert "## Kaggle dataset" in report and "dataset limit" in report


@pytest.mark.timeout(10)
def test_summary_of_a_bundle_without_offline_steps(tmp_path: Path):
    assert offline_summary(tmp_path)[0].startswith("wheels: none")
    (tmp_path / WHEELHOUSE_JSON).write_text("[1, 2]")
    with pytest.raises(PackagingError, match="JSON object"):
        offline_summary(tmp_path)


@pytest.mark.timeout(180)
def test_a_packaged_bundle_records_each_wheels_tags_for_the_image_python(wheel_bundle: Path):
    from packager.offline.image import image_facts
    from tests.packager.conftest import COMPILED_TAG

    record = json.loads((wheel_bundle / WHEELHOUSE_JSON).read_text())
    facts = image_facts()
    assert record["python_version"] == facts.python_version and record["platform"] == facts.platform
    assert [(w["project"], w["tags"]) for w in record["wheels"]] == [("onnxruntime-gpu", [COMPILED_TAG])]
    wheel = wheel_bundle / record["wheels"][0]["file"]
    assert wheel.is_file() and COMPILED_TAG in wheel.name  # the tags are the file's own
    check = record["install_check"]
    assert check["ok"]
    if check["mode"] == "installed":
        assert check["python"].startswith(f"Python {facts.python_version}.")
    else:
        assert f"no python{facts.python_version}" in check["skipped_reason"]
