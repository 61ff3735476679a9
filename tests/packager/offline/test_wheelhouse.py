"""Wheelhouse: resolve, prune what Kaggle's image has, prove the offline install.

Offline: the wheels are tiny pure-Python ones written here by hand. One
network test (resolving polygraphy from PyPI) runs only with
NINEFIT_NETWORK_TESTS=1.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from packager.offline import wheelhouse, wheelmeta
from packager.offline.interpreter import find_interpreter
from packager.offline.wheelhouse import (
    InstallCheck,
    build_wheelhouse,
    expand_platforms,
    load_provided,
    verify_offline_install,
)
from runtime.errors import PackagingError
from tests.packager.wheels import HERE, OTHER, A, B, C, make_wheel

pytestmark = pytest.mark.timeout(60)


def NO_INTERPRETERS(tmp_path: Path) -> dict[str, str]:
    """An environment in which no interpreter but this one is found (empty PATH, an empty pyenv)."""
    return {"PATH": "", "PYENV_ROOT": str(tmp_path / "no-pyenv")}

@pytest.fixture()
def house(index: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "wheels"
    build_wheelhouse([A], dest, python_version=HERE, find_links=[index], index=False,
                     provided=[f"{C}==1.0"])
    return dest


def needs_local_install() -> None:
    reason = wheelmeta.Target.make(HERE, wheelhouse.DEFAULT_PLATFORMS).local_reason()
    if reason:
        pytest.skip(f"a real install needs a Linux x86_64 CPython: {reason}")


def test_public_names_survive_the_split_into_wheelmeta():
    for module in (wheelhouse, wheelmeta):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
    for name in ("DEFAULT_PLATFORMS", "DEFAULT_PYTHON_VERSION", "KAGGLE_GLIBC",
                 "KAGGLE_IMAGE_FILE", "WheelInfo", "expand_platforms", "load_provided"):
        assert name in wheelhouse.__all__ and getattr(wheelhouse, name) is getattr(wheelmeta, name)


def test_expand_platforms_widens_manylinux_to_older_glibc():
    plats = expand_platforms(["manylinux2014_x86_64"])
    assert plats[0] == "manylinux_2_17_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
            "manylinux_2_5_x86_64"} <= set(plats)
    assert "manylinux_2_18_x86_64" not in plats
    assert "manylinux_2_35_x86_64" in wheelhouse.DEFAULT_PLATFORMS


def test_shipped_kaggle_image_list_parses():
    provided = load_provided()
    for name in ("numpy", "pandas", "scipy", "scikit-learn", "torch", "pillow", "pyarrow",
                 "protobuf", "typing-extensions", "onnx"):
        assert name in provided, name
    for name in ("onnxruntime", "onnxruntime-gpu", "polygraphy", "tensorrt", "coloredlogs"):
        assert name not in provided, name
    assert provided["jinja2"] == "3.1.6"  # normalized from 'Jinja2'


def test_malformed_provided_entry_is_named(tmp_path: Path):
    bad = tmp_path / "image.txt"
    bad.write_text("numpy==2.0\nthis is not a name\n")
    with pytest.raises(PackagingError, match="line 2"):
        load_provided(bad)


def test_build_drops_what_the_image_provides(index: Path, tmp_path: Path):
    dest = tmp_path / "wheels"
    report = build_wheelhouse([A], dest, python_version=HERE, find_links=[index], index=False,
                              provided=[f"{C}==1.0"])
    assert {w.project for w in report.wheels} == {A, B}
    assert [w.project for w in report.skipped_provided] == [C]
    assert sorted(p.name for p in dest.iterdir()) == sorted(w.filename for w in report.wheels)
    assert report.total_bytes == sum(p.stat().st_size for p in dest.iterdir())
    assert {"--no-index", "--only-binary=:all:", "--python-version", HERE} <= set(report.command)
    assert report.conflicts == ()


def test_build_resolves_against_the_image_versions(tmp_path: Path):
    src = tmp_path / "index"
    make_wheel(src, A, "1.0", requires=(f"{C}>=1",))
    make_wheel(src, A, "2.0", requires=(f"{C}>=2",))
    make_wheel(src, C, "1.0")
    make_wheel(src, C, "2.0")
    common = dict(python_version=HERE, find_links=[src], index=False, provided=[f"{C}==1.0"])
    report = build_wheelhouse([A], tmp_path / "w1", **common)
    assert [(w.project, w.version) for w in report.wheels] == [(A, "1.0")]
    assert [(w.project, w.version) for w in report.skipped_provided] == [(C, "1.0")]
    assert report.conflicts == ()
    free = build_wheelhouse([A], tmp_path / "w2", resolve_with_image=False, **common)
    assert [(w.project, w.version) for w in free.wheels] == [(A, "2.0")]
    assert free.conflicts and f"{C} 1.0" in free.conflicts[0]
    # a requirement on the image's own package is not downloaded, only checked
    pinned = build_wheelhouse([f"{C}>=2"], tmp_path / "w3", **common)
    assert pinned.wheels == () and pinned.command == () and pinned.conflicts


def test_build_names_a_dependency_no_wheel_exists_for(index: Path, tmp_path: Path):
    (index / "ninefit_demo_b-1.0-py3-none-any.whl").unlink()
    with pytest.raises(PackagingError, match=B):
        build_wheelhouse([A], tmp_path / "wheels", python_version=HERE, find_links=[index],
                         index=False, provided=[C])


def test_build_rejects_bad_inputs(index: Path, tmp_path: Path):
    with pytest.raises(PackagingError, match="find_links"):
        build_wheelhouse([A], tmp_path / "w1", index=False, provided=())
    with pytest.raises(PackagingError, match="'X.Y'"):
        build_wheelhouse([A], tmp_path / "w2", python_version="311", find_links=[index],
                         index=False, provided=())
    (tmp_path / "w3").mkdir()
    (tmp_path / "w3" / "notes.txt").write_text("hi")
    with pytest.raises(PackagingError, match="notes.txt"):
        build_wheelhouse([A], tmp_path / "w3", find_links=[index], index=False, provided=())


@pytest.mark.timeout(120)
def test_wheelhouse_installs_offline_into_a_fresh_env(house: Path, tmp_path: Path):
    needs_local_install()
    env = tmp_path / "env"
    check = verify_offline_install(house, [A], python_version=HERE, provided=[f"{C}==1.0"],
                                   imports=["ninefit_demo_a"], env_dir=env)
    assert check.ok, check.log_tail
    assert check.mode == "installed" and check.missing == ()
    out = subprocess.run([str(env / "bin" / "python"), "-c",
                          "import ninefit_demo_a; print(ninefit_demo_a.VALUE)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"a+{B}"
    # the environment is fresh: nothing of this test's interpreter leaks in
    leak = subprocess.run([str(env / "bin" / "python"), "-c", "import pytest"],
                          capture_output=True, text=True)
    assert leak.returncode != 0


@pytest.mark.timeout(120)
def test_real_install_reports_the_missing_transitive_dependency(house: Path):
    needs_local_install()
    next(house.glob("ninefit_demo_b-*.whl")).unlink()
    check = verify_offline_install(house, [A], python_version=HERE, provided=[f"{C}==1.0"])
    assert check.mode == "installed"
    assert not check.ok
    assert check.missing == (B,)
    assert B in check.log_tail and B in check.summary()


def test_static_check_reports_the_missing_transitive_dependency(house: Path, tmp_path: Path):
    next(house.glob("ninefit_demo_b-*.whl")).unlink()
    for kwargs in ({"python_version": HERE, "install": False},
                   {"python_version": OTHER, "environ": NO_INTERPRETERS(tmp_path)}):
        check = verify_offline_install(house, [A], provided=[f"{C}==1.0"], **kwargs)
        assert check.mode == "static" and check.skipped_reason
        assert not check.ok and check.missing == (B,)
        assert f"{B} (required by ninefit_demo_a-1.0" in check.log_tail


def test_static_check_passes_a_complete_wheelhouse_for_a_foreign_target(house: Path, tmp_path: Path):
    check = verify_offline_install(house, [A], python_version=OTHER, provided=[C],
                                   environ=NO_INTERPRETERS(tmp_path))
    assert isinstance(check, InstallCheck)
    assert check.ok and check.mode == "static" and OTHER in check.skipped_reason
    assert f"no python{OTHER}" in check.skipped_reason and "pyenv" in check.skipped_reason


def test_image_version_too_old_is_a_conflict(tmp_path: Path):
    make_wheel(tmp_path, A, requires=(f"{C}>=2",))
    check = verify_offline_install(tmp_path, [A], install=False, provided=[f"{C}==1.0"])
    assert not check.ok and check.missing == ()
    assert check.conflicts and f"{C} 1.0" in check.conflicts[0]


@pytest.mark.timeout(120)
def test_real_install_with_stand_ins_also_fails_on_an_old_image_version(tmp_path: Path):
    needs_local_install()
    make_wheel(tmp_path / "w", A, requires=(f"{C}>=2",))
    check = verify_offline_install(tmp_path / "w", [A], python_version=HERE,
                                   provided=[f"{C}==1.0"])
    assert check.mode == "installed" and not check.ok and check.conflicts


def test_markers_and_extras_are_evaluated_for_the_target(tmp_path: Path):
    make_wheel(tmp_path, A, requires=(f'{B}; python_version < "3.11"', f'{C}; extra == "fast"'))
    def missing(reqs, version):
        return verify_offline_install(tmp_path, reqs, python_version=version, install=False,
                                      provided=()).missing
    assert missing([A], "3.10") == (B,)
    assert missing([A], "3.12") == ()
    assert missing([f"{A}[fast]"], "3.12") == (C,)
    # a top-level requirement whose marker excludes the target is not needed at all
    assert missing([f'{B}; python_version < "3.11"'], "3.12") == ()


def test_wheel_built_for_another_python_is_not_counted(tmp_path: Path):
    make_wheel(tmp_path, A, tag="cp312-cp312-manylinux_2_17_x86_64")
    check = verify_offline_install(tmp_path, [A], python_version="3.11", install=False,
                                   provided=())
    assert check.missing == (A,)
    assert "do not fit Python 3.11" in check.log_tail


def test_image_stand_in_folder_counts_as_provided(tmp_path: Path):
    make_wheel(tmp_path / "w", A, requires=(B,))
    make_wheel(tmp_path / "image", B)
    check = verify_offline_install(tmp_path / "w", [A], python_version=OTHER, provided=(),
                                   image_find_links=[tmp_path / "image"], install=False)
    assert check.ok, check.log_tail


@pytest.mark.network
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.environ.get("NINEFIT_NETWORK_TESTS") != "1",
                    reason="needs PyPI; set NINEFIT_NETWORK_TESTS=1")
def test_resolves_polygraphy_for_kaggle_from_pypi(tmp_path: Path):
    report = build_wheelhouse(["polygraphy"], tmp_path / "wheels", python_version="3.11")
    assert "polygraphy" in {w.project for w in report.wheels}
    check = verify_offline_install(tmp_path / "wheels", ["polygraphy"], python_version="3.11",
                                   install=False)
    assert check.ok, check.log_tail


# --------------------------------------------------------------------------- the image's Python (cp312)

def _compiled(folder: Path, tag: str) -> Path:
    return make_wheel(folder, A, tag=tag, code="VALUE = 'compiled a'\n")


@pytest.mark.timeout(120)
def test_compiled_wheel_for_the_image_python_is_resolved_and_installed_in_that_python(tmp_path: Path):
    from tests.packager.conftest import COMPILED_TAG

    _compiled(tmp_path / "index", COMPILED_TAG)
    report = build_wheelhouse([A], tmp_path / "wheels", find_links=[tmp_path / "index"], index=False, provided=())
    image_python = wheelhouse.DEFAULT_PYTHON_VERSION
    assert report.python_version == image_python and [w.filename for w in report.wheels] == [
        f"ninefit_demo_a-1.0-{COMPILED_TAG}.whl"]
    command = report.command
    assert command[command.index("--python-version") + 1] == image_python
    assert command[command.index("--platform") + 1] == wheelhouse.DEFAULT_PLATFORMS[0]
    found, why = find_interpreter(wheelmeta.Target.make(image_python, wheelhouse.DEFAULT_PLATFORMS))
    env = tmp_path / "env"
    check = verify_offline_install(tmp_path / "wheels", [A], provided=(), imports=["ninefit_demo_a"], env_dir=env)
    assert check.ok, check.log_tail
    if found is None:  # say what was checked: the static walk only
        assert check.mode == "static" and check.skipped_reason == why
        pytest.skip(f"only the static check ran: {why}")
    assert check.mode == "installed" and check.python.startswith(f"Python {image_python}.")
    out = subprocess.run([str(env / "bin" / "python"), "-c", "import sys, ninefit_demo_a as a; "
                          "print(sys.version_info[:2], a.VALUE)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{tuple(map(int, image_python.split('.')))} compiled a"


def test_a_wheel_built_for_this_machines_python_is_not_taken_for_the_image(tmp_path: Path):
    if HERE == wheelhouse.DEFAULT_PYTHON_VERSION:
        pytest.skip("this machine runs the image's Python")
    cp = "cp" + HERE.replace(".", "")
    _compiled(tmp_path / "index", f"{cp}-{cp}-manylinux_2_17_x86_64")
    with pytest.raises(PackagingError, match=f"no wheel was found for {A}") as err:
        build_wheelhouse([A], tmp_path / "wheels", find_links=[tmp_path / "index"], index=False, provided=())
    assert f"for Python {wheelhouse.DEFAULT_PYTHON_VERSION}" in str(err.value)
    # and the static walk of a folder holding only that wheel names it
    check = verify_offline_install(tmp_path / "index", [A], provided=(), install=False)
    assert check.missing == (A,) and f"do not fit Python {wheelhouse.DEFAULT_PYTHON_VERSION}" in check.log_tail


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("NINEFIT_NETWORK_TESTS") != "1",
                    reason="needs PyPI; set NINEFIT_NETWORK_TESTS=1")
def test_compiled_packages_resolve_as_cp312_from_pypi_into_the_bundle(digits_dir: Path, tmp_path: Path):
    """onnxruntime and tokenizers from PyPI for the image's Python, recorded with their tags in a real bundle.

    tokenizers is in Kaggle's image, so it is taken out of the image's list here: it stands for any
    compiled package the image lacks.
    """
    import json

    from packager.build import PackageOptions, package
    from packager.offline import dataset_step, wheelhouse_step

    provided = [f"{k}=={v}" if v else k for k, v in load_provided().items() if k != "tokenizers"]
    step = wheelhouse_step(["onnxruntime", "tokenizers"], provided=provided)
    out = tmp_path / "bundle"
    package(digits_dir / "ninefit.toml", out, PackageOptions(steps=(step, dataset_step(owner="alice")), target="cpu"))
    record = json.loads((out / "wheelhouse.json").read_text())
    image = wheelmeta.Target.make(wheelhouse.DEFAULT_PYTHON_VERSION, wheelhouse.DEFAULT_PLATFORMS)
    cp = "cp" + wheelhouse.DEFAULT_PYTHON_VERSION.replace(".", "")
    tags = {w["project"]: w["tags"] for w in record["wheels"]}
    print(json.dumps({k: v[:2] for k, v in tags.items()}, indent=1), record["install_check"])
    assert record["python_version"] == wheelhouse.DEFAULT_PYTHON_VERSION
    assert {"onnxruntime", "tokenizers"} <= set(tags)
    assert any(t.startswith(f"{cp}-{cp}-manylinux") for t in tags["onnxruntime"])  # a CPython 3.12 build
    assert any(t.startswith("cp") and "-abi3-manylinux" in t or t.startswith(f"{cp}-{cp}-") for t in tags["tokenizers"])
    for wheel in record["wheels"]:  # every wheel's recorded tags are its file's, and install on the image
        assert wheel["tags"] and {str(t) for t in image.supported} & set(wheel["tags"]), wheel
    assert record["install_check"]["ok"], record["install_check"]
