"""`ninefit push --dry-run` on the digits example, and every check that stops a push before anything is sent.

No Kaggle CLI runs here: the tests make starting one fail, so a dry run or a
failed check that tried would show.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from packager.build import PackageOptions, package
from packager.cli import build_parser, main
from packager.offline import dataset_step
from packager.offline.notebook import write_notebook
from tests.cli_checks import fails_cleanly
from tests.packager.conftest import ort_index

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def no_kaggle_cli(monkeypatch):
    """Running the Kaggle CLI fails the test."""
    def refuse(self, args, *rest, **kwargs):
        raise AssertionError(f"the Kaggle CLI was run: {args}")
    monkeypatch.setattr("packager.push.kagglecli.KaggleCli.run", refuse)


def dry(bundle: Path, nb: Path, *extra: str) -> list[str]:
    return ["push", str(bundle), "--notebook", str(nb), "--dry-run", *extra]


def commands(out: str) -> list[str]:
    return [line.split("$ ", 1)[1].split("    #")[0] for line in out.splitlines() if line.startswith("  $ ")]


def test_dry_run_on_digits_prints_the_full_command_sequence(bundle, tmp_path, capsys):
    nb = tmp_path / "kernel" / "submission.ipynb"
    assert main(dry(bundle, nb, "--competition", "digit-recognizer", "--submit", "-m", "v1")) == 0
    out = capsys.readouterr().out
    status = "kaggle datasets status alice/digits --format 'json(status,current_version_number)'"
    assert commands(out) == [
        "kaggle --version",
        status,
        f"kaggle datasets create -p {bundle} --dir-mode zip",
        f"kaggle datasets version -p {bundle} -m v1 --dir-mode zip",
        status,
        f"kaggle kernels push -p {nb.parent}",
        "kaggle kernels status alice/digit-recognizer-ninefit/VERSION",
        "kaggle competitions submit -c digit-recognizer -k alice/digit-recognizer-ninefit -v VERSION -f "
        "submission.csv -m v1",
    ]
    assert "dry run: nothing is sent" in out and "PROBLEM" not in out
    # The files are written: the notebook, and the kernel metadata beside it.
    meta = json.loads((nb.parent / "kernel-metadata.json").read_text())
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_internet"] is False
    assert nb.is_file() and (bundle / "dataset-metadata.json").is_file()
    # Every command printed is one the Kaggle CLI itself parses (its own argparse, no network).
    kaggle_cli = pytest.importorskip("kaggle.cli")
    for line in commands(out)[1:]:
        _parse_with_kaggle(kaggle_cli, shlex.split(line)[1:])


def _parse_with_kaggle(kaggle_cli, argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    for part in (kaggle_cli.parse_competitions, kaggle_cli.parse_datasets, kaggle_cli.parse_kernels):
        part(sub)
    parser.parse_args(argv)


def test_without_a_competition_the_data_folder_must_be_set_and_the_push_stops_at_the_notebook(
        bundle, tmp_path, capsys):
    fails_cleanly(capsys, main, dry(bundle, tmp_path / "nb0" / "k.ipynb"), "'/kaggle/input/<competition>' is a "
                  "placeholder")
    nb = tmp_path / "nb" / "k.ipynb"
    write_notebook(bundle, nb, competition_data="/kaggle/input/my-test-data")
    assert main(dry(bundle, nb, "--kernel", "my-digits-run")) == 0
    out = capsys.readouterr().out
    assert commands(out)[-1] == f"kaggle kernels push -p {tmp_path / 'nb'}"
    assert json.loads((tmp_path / "nb" / "kernel-metadata.json").read_text())["id"] == "alice/my-digits-run"


def test_bundle_without_wheels_or_torch_programs_for_the_image_is_refused(digits_dir, tmp_path, capsys):
    out = tmp_path / "nowheels"
    package(digits_dir / "ninefit.toml", out, PackageOptions(steps=(dataset_step(owner="alice"),), target="t4x2"))
    fails_cleanly(capsys, main, dry(out, tmp_path / "nb" / "s.ipynb", "--competition", "digit-recognizer"),
                  "nothing was sent", "[wheels] no ONNX Runtime on Kaggle", "cnn, mlp")


def test_a_damaged_or_padded_bundle_is_refused(bundle, tmp_path, capsys):
    (bundle / "notes.txt").write_text("scratch")
    err = fails_cleanly(capsys, main, dry(bundle, tmp_path / "nb" / "s.ipynb"), "notes.txt", "does not list")
    (bundle / "notes.txt").unlink()
    onnx = next((bundle / "models").rglob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"x")
    err = fails_cleanly(capsys, main, dry(bundle, tmp_path / "nb" / "s.ipynb"), "[bundle] DAMAGED")
    assert onnx.name in err


def test_a_notebook_for_another_dataset_target_or_competition_is_named(bundle, tmp_path, capsys):
    nb = tmp_path / "nb" / "s.ipynb"
    write_notebook(bundle, nb, slug="someone-elses-data", competition="other-comp", target="cpu")
    err = fails_cleanly(capsys, main, dry(bundle, nb, "--competition", "digit-recognizer"), "nothing was sent")
    assert "BUNDLE_DIR = '/kaggle/input/someone-elses-data'; expected '/kaggle/input/digits'" in err
    assert "TARGET = 'cpu'; expected the bundle's target 't4x2'" in err
    assert "DATA_DIR = '/kaggle/input/other-comp'; expected '/kaggle/input/digit-recognizer'" in err


def test_a_foreign_notebook_is_refused(bundle, tmp_path, capsys):
    nb = tmp_path / "nb" / "s.ipynb"
    nb.parent.mkdir()
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    fails_cleanly(capsys, main, dry(bundle, nb), "was not written by `ninefit notebook`")


def test_a_wheel_for_another_python_is_named(bundle, tmp_path, capsys):
    # A wheelhouse resolved for the local Python (cp311) when Kaggle's is 3.12: packaged and checksummed
    # as it is, so only the push's tag check can catch it.
    index = ort_index(tmp_path / "index311", tag="cp311-cp311-manylinux_2_17_x86_64")
    wheel = next(index.glob("*.whl"))
    for old in (bundle / "wheels").glob("*.whl"):
        old.unlink()
    shutil.copy(wheel, bundle / "wheels" / wheel.name)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("wheels/")}
    manifest["files"][f"wheels/{wheel.name}"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    err = fails_cleanly(capsys, main, dry(bundle, tmp_path / "nb" / "s.ipynb"), "[wheels]", wheel.name)
    assert "do not install on the image's Python 3.12" in err


def test_p100_is_refused_unless_an_older_image_is_pinned(bundle, tmp_path, capsys):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["target"] = "p100"  # the manifest is not among its own checksums
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    fails_cleanly(capsys, main, dry(bundle, tmp_path / "nb" / "s.ipynb"), "Refusing target 'p100'", "sm_60",
                  "--docker-image")
    assert not (tmp_path / "nb").exists()  # refused before anything was written
    image = "gcr.io/kaggle-gpu-images/python:v150"
    assert main(dry(bundle, tmp_path / "nb" / "s.ipynb", "--docker-image", image, "--competition", "c-1")) == 0
    out = capsys.readouterr().out
    assert "allowed because the notebook pins the image" in out and "retired" in out
    meta = json.loads((tmp_path / "nb" / "kernel-metadata.json").read_text())
    assert meta["machine_shape"] == "NvidiaTeslaP100" and meta["docker_image"] == image


def test_usage_mistakes_exit_2_without_a_traceback(bundle, tmp_path, capsys):
    nb = str(tmp_path / "nb" / "s.ipynb")
    fails_cleanly(capsys, main, ["push", str(bundle), "--notebook", nb, "--submit", "--dry-run"], "--competition")
    fails_cleanly(capsys, main, ["push", str(tmp_path), "--dry-run"], "not a ninefit bundle")
    fails_cleanly(capsys, main, ["push", str(bundle), "--notebook", nb, "--machine-shape", "NvidiaH100",
                                 "--dry-run"], "Kaggle's shape for target 'h100'")
    fails_cleanly(capsys, main, ["push", str(bundle), "--notebook", str(bundle / "s.ipynb"), "--dry-run"],
                  "inside the bundle")
    fails_cleanly(capsys, main, ["push", str(bundle), "--poll-interval", "0"], "positive number of seconds")


def test_no_kaggle_cli_installed_is_a_clear_message(bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("packager.push.kagglecli.importlib.util.find_spec", lambda name: None)
    monkeypatch.setattr("packager.push.kagglecli.shutil.which", lambda name: None)
    err = fails_cleanly(capsys, main, ["push", str(bundle), "--notebook", str(tmp_path / "nb" / "s.ipynb"),
                                       "--competition", "c-1"], 'pip install "ninefit[kaggle]"')
    assert "`--dry-run` works without it" in err


def test_readme_walkthrough_ends_in_push_and_parses():
    text = (REPO / "README.md").read_text()
    block = text.split("## Five minutes", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("ninefit ")]
    assert lines[-1].startswith("ninefit push ") and not re.search(r"^kaggle ", block, re.M)
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line.split("  #")[0])[1:])
        assert callable(args.func), line


def test_push_help_names_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["push", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag in ("--competition", "--notebook", "--kernel", "--kaggle-owner", "--machine-shape", "--docker-image",
                 "--model-source", "--kernel-source", "--dry-run", "--submit", "--poll-interval", "--kaggle-cli"):
        assert flag in out, flag
    assert "never reads, stores or prints them" in out and 'pip install "ninefit[kaggle]"' in out


def test_a_bundle_without_dataset_metadata_needs_an_owner_on_the_command_line(bundle, tmp_path, capsys, monkeypatch):
    (bundle / "dataset-metadata.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")  # the CLI's: never read by push
    nb = tmp_path / "nb" / "s.ipynb"
    fails_cleanly(capsys, main, dry(bundle, nb, "--competition", "c-1"), "no dataset-metadata.json", "--kaggle-owner")
    assert main(dry(bundle, nb, "--competition", "c-1", "--kaggle-owner", "bob")) == 0
    assert json.loads((bundle / "dataset-metadata.json").read_text())["id"] == "bob/digits"
    assert json.loads((nb.parent / "kernel-metadata.json").read_text())["id"] == "bob/c-1-ninefit"
