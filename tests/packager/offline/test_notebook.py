"""The submission notebook: valid nbformat, parameters first, env overrides, wheel install, CLI.

Uses the shared session fixtures of tests/conftest.py (the digits example, packaged once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from packager.cli import main
from packager.offline.notebook import PARAMETERS_TAG, REPORT_TAG, build_notebook, bundle_slug, write_notebook
from packager.offline.notebook_cells import _find_input, _wheel_modules
from runtime.errors import BundleError, PackagingError
from tests.packager.wheels import make_wheel

PARAM_NAMES = ("BUNDLE_DIR", "DATA_DIR", "OUT", "WORK_DIR", "TIME_LIMIT", "TIME_MARGIN", "TARGET")

@pytest.fixture(scope="session")
def nb_bundle(digits_bundle) -> Path:
    """The packaged digits bundle (tests/conftest.py; read it, do not modify it: copy first)."""
    return digits_bundle


@pytest.fixture
def manifest_only(nb_bundle, tmp_path) -> Path:
    """A folder holding just the bundle's manifest: enough to build a notebook."""
    d = tmp_path / "manifest-only"
    d.mkdir()
    shutil.copy(nb_bundle / "manifest.json", d)
    return d


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def params(nb) -> dict:
    """Run the parameters cell and return its variables."""
    scope: dict = {}
    exec(compile(code_cells(nb)[0].source, "<parameters>", "exec"), scope)
    return {k: scope[k] for k in (*PARAM_NAMES, "NINEFIT_START")}


@pytest.mark.timeout(120)
def test_notebook_is_valid_and_parameters_come_first(nb_bundle, tmp_path):
    nb = build_notebook(nb_bundle, competition="digit-recognizer", time_limit="5h", target="p100")
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    first = code_cells(nb)[0]
    assert first.source.startswith("import time\n\nNINEFIT_START = time.time()")
    assert PARAMETERS_TAG in first.metadata.tags
    for name in PARAM_NAMES:
        assert f"\n{name} = os.environ.get('NINEFIT_{name}', " in first.source
    run = "\n".join(c.source for c in code_cells(nb))
    assert "sys.path.insert(0, BUNDLE_DIR)" in run and "\nimport runtime\n" in run
    assert "start_time=NINEFIT_START" in run and "runtime.settings.parse_duration(TIME_LIMIT)" in run
    assert "--no-index" in run and "--find-links" in run
    assert REPORT_TAG in code_cells(nb)[-1].metadata.tags and "report.table()" in code_cells(nb)[-1].source
    for cell in code_cells(nb):  # every cell is valid Python
        compile(cell.source, cell.id, "exec")

    out = write_notebook(nb_bundle, tmp_path / "sub" / "submission.ipynb", competition="digit-recognizer",
                         time_limit="5h", target="p100")
    again = nbformat.read(str(out), as_version=4)
    nbformat.validate(again)
    assert again == nb  # deterministic: stable cell ids, no timestamps


@pytest.mark.timeout(60)
def test_a_failed_write_leaves_the_old_notebook_and_no_temporary_file(manifest_only, tmp_path, monkeypatch):
    import os

    import runtime.fileio

    out = tmp_path / "nb" / "submission.ipynb"
    write_notebook(manifest_only, out)
    before = out.read_bytes()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime.fileio.os, "replace", full_disk)
    from runtime.errors import StorageError

    with pytest.raises(StorageError, match="could not write the notebook .*no space left on the device"):
        write_notebook(manifest_only, out, time_limit="1h")
    monkeypatch.setattr(runtime.fileio.os, "replace", os.replace)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["submission.ipynb"]


@pytest.mark.timeout(60)
def test_parameter_defaults_and_environment_overrides(manifest_only, monkeypatch):
    nb = build_notebook(manifest_only, competition="digit-recognizer")
    for name in PARAM_NAMES:
        monkeypatch.delenv(f"NINEFIT_{name}", raising=False)
    got = params(nb)
    assert got["BUNDLE_DIR"] == "/kaggle/input/manifest-only"
    assert got["DATA_DIR"] == "/kaggle/input/digit-recognizer"
    assert got["OUT"] == "/kaggle/working/submission.csv"
    assert got["WORK_DIR"] == "/kaggle/working/ninefit"
    assert (got["TIME_LIMIT"], got["TIME_MARGIN"], got["TARGET"]) == ("9h", "", "t4x2")
    assert isinstance(got["NINEFIT_START"], float)

    monkeypatch.setenv("NINEFIT_BUNDLE_DIR", "/somewhere/bundle")
    monkeypatch.setenv("NINEFIT_DATA_DIR", "/somewhere/data")
    monkeypatch.setenv("NINEFIT_TIME_LIMIT", "2m")
    got = params(nb)
    assert (got["BUNDLE_DIR"], got["DATA_DIR"], got["TIME_LIMIT"]) == ("/somewhere/bundle", "/somewhere/data", "2m")

    placeholder = params(build_notebook(manifest_only, competition_data="/kaggle/input/x/y"))
    assert placeholder["DATA_DIR"] == "/somewhere/data"  # the variable still wins over --data-dir


def test_target_defaults_to_the_one_the_bundle_was_packaged_for(manifest_only, monkeypatch):
    monkeypatch.delenv("NINEFIT_TARGET", raising=False)
    path = manifest_only / "manifest.json"
    for packaged, expected in (("cpu", "cpu"), ("p100", "p100"), ("local", "t4x2"), ("", "t4x2")):
        m = json.loads(path.read_text())
        m["target"] = packaged
        path.write_text(json.dumps(m))
        assert params(build_notebook(manifest_only))["TARGET"] == expected, packaged
    assert params(build_notebook(manifest_only, target="t4x2"))["TARGET"] == "t4x2"  # --target still wins


@pytest.mark.timeout(60)
def test_slug_comes_from_dataset_metadata(manifest_only):
    assert bundle_slug(manifest_only) == "manifest-only"
    (manifest_only / "dataset-metadata.json").write_text(json.dumps({"title": "Digits bundle", "id": "alice/digits-ensemble"}))
    assert bundle_slug(manifest_only) == "digits-ensemble"
    nb = build_notebook(manifest_only)
    assert "'/kaggle/input/digits-ensemble'" in code_cells(nb)[0].source
    assert "'/kaggle/input/<competition>'" in code_cells(nb)[0].source
    (manifest_only / "dataset-metadata.json").write_text("{not json")
    with pytest.raises(PackagingError, match="owner/slug"):
        bundle_slug(manifest_only)


@pytest.mark.timeout(60)
def test_bad_inputs_raise_user_errors(manifest_only, tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        build_notebook(tmp_path / "nope")
    with pytest.raises(BundleError, match="manifest.json"):
        build_notebook(tmp_path)
    with pytest.raises(PackagingError, match="t4x2"):
        build_notebook(manifest_only, target="tpu")
    with pytest.raises(PackagingError, match="9h"):
        build_notebook(manifest_only, time_limit="nine hours")
    with pytest.raises(PackagingError, match="slug"):
        build_notebook(manifest_only, slug="alice/digits")


@pytest.mark.timeout(60)
def test_cli_writes_the_notebook_and_reports_mistakes(manifest_only, tmp_path, capsys):
    out = tmp_path / "submission.ipynb"
    assert main(["notebook", str(manifest_only), "-o", str(out), "--competition", "digit-recognizer", "--time-limit", "12h"]) == 0
    nb = nbformat.read(str(out), as_version=4)
    assert "'12h'" in code_cells(nb)[0].source and "'/kaggle/input/digit-recognizer'" in code_cells(nb)[0].source
    assert "ninefit simulate" in capsys.readouterr().out
    assert main(["notebook", str(manifest_only), "-o", str(out), "--target", "tpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ninefit: error: unknown notebook target 'tpu'") and "Traceback" not in err


@pytest.mark.timeout(60)
def test_find_input_falls_back_to_the_one_folder_holding_the_marker(tmp_path, capsys):
    (tmp_path / "owner" / "bundle").mkdir(parents=True)
    (tmp_path / "owner" / "bundle" / "manifest.json").write_text("{}")
    assert _find_input(str(tmp_path / "owner" / "bundle"), "manifest.json", str(tmp_path)) == str(tmp_path / "owner" / "bundle")
    assert _find_input("/kaggle/input/wrong", "manifest.json", str(tmp_path)) == str(tmp_path / "owner" / "bundle")
    assert "using" in capsys.readouterr().out
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="2 folders"):
        _find_input("/kaggle/input/wrong", "manifest.json", str(tmp_path))
    (tmp_path / "comp" / "kaggle_evaluation").mkdir(parents=True)  # a folder marks the competition's data
    assert _find_input("/kaggle/input/wrong", "kaggle_evaluation", str(tmp_path)) == str(tmp_path / "comp")
    (tmp_path / "comp" / "data").mkdir()
    (tmp_path / "comp" / "data" / "test.csv").write_text("id\n")  # a marker of two parts
    assert _find_input("/kaggle/input/wrong", "data/test.csv", str(tmp_path)) == str(tmp_path / "comp")


@pytest.mark.timeout(60)
def test_wheel_modules_reads_top_level_or_the_archive(tmp_path):
    assert _wheel_modules(make_wheel(tmp_path, "alpha_dist", module="alpha", top_level=True)) == ["alpha"]
    assert _wheel_modules(make_wheel(tmp_path, "beta_dist", module="beta")) == ["beta"]


@pytest.mark.timeout(60)
def test_conflicts_are_other_distributions_of_the_same_regular_module(tmp_path):
    """Against this venv: its CPU onnxruntime is the module a fake onnxruntime-gpu installs; namespaces are shared."""
    import importlib.metadata
    import zipfile

    from packager.offline.notebook_cells import _conflicts, _wheel_dist

    owners = importlib.metadata.packages_distributions()
    gpu = make_wheel(tmp_path, "onnxruntime-gpu", "1.20.1", module="onnxruntime", top_level=True)
    assert _wheel_dist(str(gpu)) == ("onnxruntime-gpu", "1.20.1")
    assert _conflicts(str(gpu), ["onnxruntime"], owners) == {"onnxruntime": "onnxruntime"}
    same = make_wheel(tmp_path, "onnxruntime", "9.9", top_level=True)
    assert _conflicts(str(same), ["onnxruntime"], owners) == {}  # the same distribution: pip upgrades it
    namespace = tmp_path / "ns_dist-1.0-py3-none-any.whl"  # google/ without __init__.py, as protobuf has it
    with zipfile.ZipFile(namespace, "w") as z:
        z.writestr("google/ns_dist/__init__.py", "")
    assert "google" in owners and _conflicts(str(namespace), ["google"], owners) == {}
    stray = make_wheel(tmp_path, "stray_dist", "1.0", module="tests", top_level=True)
    assert _conflicts(str(stray), ["tests"], {"tests": ["onnxruntime"]}) == {}


def install_script(bundle: Path, digits_dir: Path, then: str = "") -> str:
    """The notebook's own install cell (as `ninefit notebook` writes it) as a script, then ``then``."""
    out = bundle.parent / "nb.ipynb"
    assert main(["notebook", str(bundle), "-o", str(out)]) == 0
    cell = next(c for c in code_cells(nbformat.read(str(out), as_version=4)) if c.id == "ninefit-install").source
    return f"BUNDLE_DIR = {str(bundle)!r}\nDATA_DIR = {str(digits_dir / 'data')!r}\n{cell}\n{then}\n"


FAKE_ORT = "VALUE = {build!r}\ndef get_available_providers():\n    return {providers!r}\n"
CPU_ORT = FAKE_ORT.format(build="cpu", providers=["CPUExecutionProvider"])
GPU_ORT = FAKE_ORT.format(build="gpu", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_install_cell_decides_by_distribution_and_version(nb_bundle, digits_dir, tmp_path, capsys):
    """Run by a throwaway overlay of this interpreter (never this venv), which sees this venv's CPU onnxruntime."""
    import importlib.metadata

    from packager.offline.sandbox import kernel_python

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(nb_bundle / "manifest.json", bundle)
    numpy_version = importlib.metadata.version("numpy")
    ort_version = importlib.metadata.version("onnxruntime")  # the CPU build, installed by the [cpu] extra
    make_wheel(bundle / "wheels", "ninefit_nbtest_pkg", "0.1", code="VALUE = 42\n", module="ninefit_nbtest_mod", top_level=True)
    make_wheel(bundle / "wheels", "numpy", numpy_version, top_level=True)  # the image has this very one: skipped
    make_wheel(bundle / "wheels", "onnxruntime-gpu", ort_version, code=GPU_ORT, module="onnxruntime", top_level=True)
    script = install_script(bundle, digits_dir, "import ninefit_nbtest_mod, onnxruntime\n"
                            "print('RESULT', installed, skipped, ninefit_nbtest_mod.VALUE, onnxruntime.VALUE)")
    python = kernel_python(tmp_path / "overlay")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    gpu_wheel = f"onnxruntime_gpu-{ort_version}-py3-none-any.whl"
    assert "installed: ninefit_nbtest_pkg-0.1-py3-none-any.whl" in done.stdout
    assert f"skipped (the image has numpy {numpy_version}): numpy-{numpy_version}-py3-none-any.whl" in done.stdout
    # The CPU onnxruntime lies outside the overlay: pip cannot remove it, so the GPU one goes ahead of it.
    assert "could not remove onnxruntime from" in done.stdout and "installing ahead of it on sys.path" in done.stdout
    assert f"RESULT ['ninefit_nbtest_pkg-0.1-py3-none-any.whl', '{gpu_wheel}'] " \
           f"['numpy-{numpy_version}-py3-none-any.whl'] 42 gpu" in done.stdout
    assert "WARNING" not in done.stderr, done.stderr
    import importlib.util

    assert importlib.util.find_spec("ninefit_nbtest_mod") is None  # this environment is untouched

    shutil.rmtree(bundle / "wheels")
    done = subprocess.run([str(python), "-c", install_script(bundle, digits_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "no wheels/ in the bundle: nothing to install" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_rehearsal_skips_the_wheels_built_for_another_python_and_says_so(nb_bundle, digits_dir, tmp_path):
    """`ninefit simulate` on Python 3.11 of a bundle whose wheels are cp312 (Kaggle's): pip would refuse them and fail
    the notebook; the rehearsal names them (FOREIGN_WHEELS_ENV), the install cell skips them, the verdict notes it."""
    from packager.offline.rehearsal import FOREIGN_WHEELS_ENV, foreign_note, foreign_wheels
    from packager.offline.sandbox import kernel_python

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(nb_bundle / "manifest.json", bundle)
    make_wheel(bundle / "wheels", "ninefit_nbtest_here", "0.1", code="VALUE = 7\n", module="ninefit_nbtest_here",
               top_level=True)
    make_wheel(tmp_path / "built", "ninefit_nbtest_there", "0.1", code="VALUE = 8\n", module="ninefit_nbtest_there",
               top_level=True)
    there = "ninefit_nbtest_there-0.1-cp399-cp399-manylinux_2_28_x86_64.whl"  # a Python this is not
    shutil.copy(next((tmp_path / "built").glob("*.whl")), bundle / "wheels" / there)
    assert foreign_wheels(bundle) == [there]
    assert there in foreign_note([there]) and "report.md" in foreign_note([there]) and foreign_note([]) == ""

    python = kernel_python(tmp_path / "overlay")
    script = install_script(bundle, digits_dir, "import ninefit_nbtest_here\nprint('RESULT', installed, skipped)")
    refused = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=150)
    assert refused.returncode != 0 and "is not a supported wheel on this platform" in refused.stdout  # without it
    env = {**os.environ, FOREIGN_WHEELS_ENV: there}
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=150, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rehearsal: not installed on this Python (built for Kaggle's): {there}" in done.stdout
    assert f"RESULT ['ninefit_nbtest_here-0.1-py3-none-any.whl'] ['{there}']" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_install_cell_replaces_a_cpu_onnxruntime_in_a_fresh_venv(nb_bundle, digits_dir, tmp_path):
    """An image with the CPU onnxruntime: the notebook removes it and installs onnxruntime-gpu in its place."""
    import venv

    env = tmp_path / "image"
    venv.create(env, with_pip=True)  # ensurepip: offline
    python = env / "bin" / "python"
    image_wheels = tmp_path / "image-wheels"
    make_wheel(image_wheels, "onnxruntime", "1.20.1", code=CPU_ORT, top_level=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(image_wheels),
                    "onnxruntime==1.20.1"], check=True, capture_output=True, timeout=120)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(nb_bundle / "manifest.json", bundle)
    make_wheel(bundle / "wheels", "onnxruntime-gpu", "1.20.1", code=GPU_ORT, module="onnxruntime", top_level=True)
    script = install_script(bundle, digits_dir, "import importlib.metadata as md, onnxruntime\n"
                            "names = sorted(d.metadata['Name'] for d in md.distributions() if 'onnx' in d.metadata['Name'])\n"
                            "print('RESULT', onnxruntime.VALUE, onnxruntime.get_available_providers()[0], names)")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "onnxruntime 1.20.1 is the module onnxruntime too: removed before installing onnxruntime-gpu 1.20.1" in done.stdout
    assert "installed: onnxruntime_gpu-1.20.1-py3-none-any.whl" in done.stdout
    assert "RESULT gpu CUDAExecutionProvider ['onnxruntime-gpu']" in done.stdout, done.stdout
    assert "WARNING" not in done.stderr, done.stderr
    # Run again (a restarted kernel): onnxruntime-gpu is there at that version now, so it is skipped.
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=150)
    assert "skipped (the image has onnxruntime-gpu 1.20.1): onnxruntime_gpu-1.20.1-py3-none-any.whl" in done.stdout
    assert "RESULT gpu CUDAExecutionProvider" in done.stdout
