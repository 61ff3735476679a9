"""`ninefit package`: export, parity, bundle contents, and every bad input.

Bad inputs go through the real CLI entry point: each must give a one-paragraph
message, exit status 2, no traceback, and no bundle folder (nor temp folder).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from packager.build import PackageOptions, package
from packager.cli import main
from runtime.bundle import open_bundle, sha256_file
from runtime.errors import BundleError, ExportError, ModelLoadError, ToleranceError
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def work(digits_dir, tmp_path) -> Path:
    """A private, editable copy of the prepared digits example."""
    d = tmp_path / "digits"
    shutil.copytree(digits_dir, d)
    return d


def edit(spec: Path, old: str, new: str) -> None:
    text = spec.read_text()
    assert old in text, f"test bug: {old!r} not in spec"
    spec.write_text(text.replace(old, new, 1 if old != 'columns = "px*"' else -1))


def assert_no_bundle(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temp folder left behind"


def test_bundle_contents(digits_bundle):
    b = open_bundle(digits_bundle)  # verifies every checksum
    m = b.manifest
    assert [x.name for x in m.members] == ["cnn", "mlp"]
    assert m.members[0].exporter == "dynamo"
    assert [v.file for v in m.members[0].variants] == ["models/cnn/fp32.onnx", "models/cnn/fp16.onnx"]
    assert "runtime/__init__.py" in m.files and "runtime/run.py" in m.files
    assert "report.md" in m.files and "verification.json" in m.files
    assert all(sha256_file(digits_bundle / f) == h for f, h in m.files.items())
    report = (digits_bundle / "report.md").read_text()
    assert "| cnn | fp16 | fp16.onnx | logits | 256 |" in report and "FAIL" not in report
    checks = json.loads((digits_bundle / "verification.json").read_text())
    assert {(c["model"], c["variant"]) for c in checks} == {("cnn", "fp32"), ("cnn", "fp16"), ("mlp", "fp32")}
    assert all(c["passed"] for c in checks)


def test_exported_model_matches_torch(digits_dir, digits_bundle):
    """The bundle's ONNX reproduces the checkpoint on real rows (independently of verify.py)."""
    import onnxruntime as ort
    import pandas as pd
    import torch

    from tests.fixtures.modules import load_module

    model = load_module(digits_dir, "models").make_mlp()
    model.load_state_dict(torch.load(digits_dir / "checkpoints" / "mlp.pt"))
    x = pd.read_csv(digits_dir / "data" / "test.csv").filter(like="px").to_numpy(np.float32)[:37]
    sess = ort.InferenceSession(str(digits_bundle / "models" / "mlp" / "fp32.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"pixels": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model.eval()(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-3)


def test_fp16_precision_loss_fails_parity(work, tmp_path):
    """A model whose result cancels beyond fp16's precision must not pass as an fp16 variant."""
    (work / "cancel.py").write_text(
        "import torch\n"
        "class Cancel(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a, self.b = torch.nn.Linear(64, 10, bias=False), torch.nn.Linear(64, 10, bias=False)\n"
        "        torch.nn.init.constant_(self.a.weight, 2048.7)  # fp16 spacing at 2048 is 2: rounds to 2048\n"
        "        torch.nn.init.constant_(self.b.weight, 2048.0)\n"
        "    def forward(self, pixels):\n"
        "        return self.a(pixels) - self.b(pixels)\n"
        "def make():\n    return Cancel()\n"
    )
    spec = work / "ninefit.toml"
    edit(spec, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"', 'factory = "cancel:make"\ninit = "random"')
    edit(spec, 'name = "mlp"', 'name = "cancel"')
    spec.write_text(spec.read_text() + '\n  [[model.variant]]\n  name = "fp16"\n  precision = "fp16"\n')  # mlp is last
    out = tmp_path / "bundle"
    with pytest.raises(ToleranceError) as info:
        package(spec, out)
    msg = str(info.value)
    assert "model 'cancel' variant 'fp16'" in msg and "output 'logits'" in msg and "tolerance" in msg
    assert_no_bundle(out)


def test_unexportable_model_names_the_op(work, tmp_path):
    (work / "eig.py").write_text(
        "import torch\n"
        "class Eig(torch.nn.Module):\n"
        "    def forward(self, pixels):\n"
        "        return torch.linalg.eigvals(pixels.reshape(-1, 8, 8)).real[:, :10].repeat(1, 2)[:, :10]\n"
        "def make():\n    return Eig()\n"
    )
    spec = work / "ninefit.toml"
    edit(spec, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"', 'factory = "eig:make"\ninit = "random"')
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match="linalg_eig"):
        package(spec, out)
    assert_no_bundle(out)


def test_failed_repackage_keeps_the_old_bundle(work, tmp_path):
    out = tmp_path / "bundle"
    package(work / "ninefit.toml", out)
    before = sha256_file(out / "manifest.json")
    (work / "checkpoints" / "mlp.pt").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="--force"):
        package(work / "ninefit.toml", out)
    with pytest.raises(ModelLoadError):
        package(work / "ninefit.toml", out, PackageOptions(force=True))
    assert sha256_file(out / "manifest.json") == before
    open_bundle(out)


def test_a_failed_swap_puts_the_old_bundle_back(tmp_path, monkeypatch):
    """If the staged bundle cannot be renamed into place, the previous one is restored, not left hidden."""
    import os

    import packager.build as build

    dest, stage = tmp_path / "bundle", tmp_path / ".bundle.tmp-1"
    for folder, text in ((dest, "old"), (stage, "new")):
        folder.mkdir()
        (folder / "manifest.json").write_text(text)
    replace = os.replace

    def failing_replace(src, dst):
        if Path(src) == stage:
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(build.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        build._install(stage, dest, force=True)
    assert (dest / "manifest.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle.tmp-1", "bundle"]  # no hidden .bundle.old-PID


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing_checkpoint", ["model 'mlp'", "checkpoint", "not found"]),
        ("unreadable_checkpoint", ["model 'mlp'", "unreadable as a torch state_dict"]),
        ("bad_factory", ["factory module 'no_such_module' does not import"]),
        ("missing_function", ["has no callable 'make_nothing'"]),
        ("wrong_state_dict", ["model 'mlp'", "does not match the model the factory", "of another shape"]),
        ("missing_column", ["missing 1 column(s)", "px63"]),
        ("wrong_dtype", ["px5 (", "not numeric"]),
        ("ids_mismatch", ["id(s) of sample_submission.csv are not in the test data", "zzz"]),
    ],
)
def test_bad_input_cli(work, tmp_path, capsys, case, needles):
    spec = work / "ninefit.toml"
    data = work / "data"
    if case == "missing_checkpoint":
        (work / "checkpoints" / "mlp.pt").unlink()
    elif case == "unreadable_checkpoint":
        (work / "checkpoints" / "mlp.pt").write_bytes(b"not a checkpoint")
    elif case == "bad_factory":
        edit(spec, "models:make_mlp", "no_such_module:make_mlp")
    elif case == "missing_function":
        edit(spec, "models:make_mlp", "models:make_nothing")
    elif case == "wrong_state_dict":
        edit(spec, 'factory = "models:make_mlp"', 'factory = "models:make_mlp"\nfactory_kwargs = { hidden = 32 }')
    elif case == "missing_column":
        lines = (data / "test.csv").read_text().splitlines()
        (data / "test.csv").write_text("\n".join(",".join(l.split(",")[:-1]) for l in lines) + "\n")
        edit(spec, 'columns = "px*"', "columns = [" + ", ".join(f'"px{i}"' for i in range(64)) + "]")
    elif case == "wrong_dtype":
        lines = (data / "test.csv").read_text().splitlines()
        lines[3] = ",".join(c if i != 6 else "dark" for i, c in enumerate(lines[3].split(",")))
        (data / "test.csv").write_text("\n".join(lines) + "\n")
    elif case == "ids_mismatch":
        lines = (data / "sample_submission.csv").read_text().splitlines()
        lines[5] = "zzz,0"
        (data / "sample_submission.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "bundle"
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(out)], *needles)
    assert_no_bundle(out)


def test_existing_bundle_needs_force(digits_bundle, work, tmp_path, capsys):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    fails_cleanly(capsys, main, ["package", str(work / "ninefit.toml"), "-o", str(out)], "already exists", "--force")
    fails_cleanly(capsys, main, ["package", str(work / "ninefit.toml"), "-o", str(out), "--force"], "not a ninefit bundle")
    assert (out / "keep.txt").read_text() == "mine"


def test_the_bundle_and_notebook_get_the_modes_of_plainly_created_files(work, tmp_path, capsys):
    """Not mkdtemp's private 0700 (nor mkstemp's 0600): folders 0755, files 0644 with the usual umask."""
    spec = work / "ninefit.toml"
    text = spec.read_text()
    spec.write_text(text[:text.index('[[model]]\nname = "cnn"')] + text[text.index('[[model]]\nname = "mlp"'):])
    out, nb = tmp_path / "bundle", tmp_path / "submission.ipynb"
    old = os.umask(0o022)
    try:
        assert main(["package", str(spec), "-o", str(out), "--no-profile", "--no-wheels"]) == 0
        assert main(["notebook", str(out), "-o", str(nb)]) == 0
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert {m for p, m in modes.items() if (tmp_path / p).is_dir()} == {0o755}, modes
    assert {m for p, m in modes.items() if (tmp_path / p).is_file()} == {0o644}, modes
    assert stat.S_IMODE(nb.stat().st_mode) == 0o644
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0  # and it is intact


@pytest.mark.timeout(30)
def test_package_cli_records_the_target_in_the_manifest(monkeypatch, tmp_path):
    import packager.build

    seen = []

    def fake_package(spec, out, options):
        seen.append(options.target)
        raise SystemExit(0)

    monkeypatch.setattr(packager.build, "package", fake_package)
    for extra in ([], ["--target", "p100"]):
        with pytest.raises(SystemExit):
            main(["package", "spec.toml", "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile", *extra])
    assert seen == ["t4x2", "p100"]


@pytest.mark.timeout(30)
def test_an_unknown_target_is_refused_before_anything_is_exported(tmp_path, capsys):
    out = tmp_path / "b"
    fails_cleanly(capsys, main, ["package", "spec.toml", "-o", str(out), "--no-wheels", "--no-profile", "--target", "h100x9"],
                  "unknown target 'h100x9'", "t4x2")
    assert not out.exists()


@pytest.mark.timeout(300)
def test_cli_and_report_count_the_same_files(work, tmp_path, capsys):
    import re

    out = tmp_path / "bundle"
    assert main(["package", str(work / "ninefit.toml"), "-o", str(out), "--no-wheels", "--no-profile"]) == 0
    said = capsys.readouterr()
    printed = re.search(r"\((\d+) member\(s\), (\d+) files\)", said.out)
    # Packaging's progress (logged to ninefit.package) is on stdout as it was printed: one line a step, first.
    lines = said.out.splitlines()
    progress = [k for k, x in enumerate(lines) if "exported with the" in x or "parity ok on" in x]
    written = next(k for k, x in enumerate(lines) if x.startswith("bundle written to"))
    assert lines[0].startswith("cnn: exported with the ") and progress and max(progress) < written, said.out
    assert any(x.startswith("mlp/fp32: parity ok on first ") for x in lines)
    assert "exported with the" not in said.err and "parity ok" not in said.err
    reported = re.search(r"The bundle is .* in (\d+) files", (out / "report.md").read_text())
    assert printed and reported
    on_disk = sum(1 for p in out.rglob("*") if p.is_file())
    assert int(printed.group(2)) == int(reported.group(1)) == on_disk


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.timeout(300)
def test_a_killed_package_leaves_nothing_the_next_one_does_not_remove(work, tmp_path, caplog):
    """kill -9 while the bundle is being staged; the next package of the same bundle removes the staging folder."""
    import signal
    import subprocess
    import sys
    import time

    dest = tmp_path / "bundle"
    cmd = [sys.executable, "-m", "packager.cli", "package", str(work / "ninefit.toml"), "-o", str(dest), "--force",
           "--no-wheels"]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(cmd, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        staged = list(tmp_path.glob(".bundle.tmp-*/models/*/*.onnx"))
        if staged:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "packaging ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (left,) = tmp_path.glob(".bundle.tmp-*")
    assert left.name.startswith(f".bundle.tmp-{proc.pid}-")
    with caplog.at_level(logging.INFO, logger="ninefit.package"):
        package(work / "ninefit.toml", dest, PackageOptions(force=True))
    said = [r.getMessage() for r in caplog.records]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "digits"]
    assert any(line.startswith(f"removed {left.name} (") and "killed before it finished" in line for line in said), said
    open_bundle(dest)


def test_a_bundle_moved_aside_by_a_killed_swap_is_put_back(digits_bundle, tmp_path, caplog):
    from packager.build import _sweep_leftovers

    aside = tmp_path / f".bundle.old-{_dead_pid()}-0"
    shutil.copytree(digits_bundle, aside)
    with caplog.at_level(logging.INFO, logger="ninefit.package"):
        _sweep_leftovers(tmp_path / "bundle")
    said = [r.getMessage() for r in caplog.records]
    assert (tmp_path / "bundle" / "manifest.json").is_file() and not aside.exists()
    assert said == [f"put back {tmp_path / 'bundle'}, which a killed `ninefit package` had moved aside to {aside.name}"]
