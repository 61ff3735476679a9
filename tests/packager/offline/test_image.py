"""Kaggle's image file: one source of truth for the Python, glibc and shapes; its refresh command works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from packager.cli import main
from packager.offline import wheelhouse, wheelmeta
from packager.offline.image import (
    IMAGE_REFRESH_COMMAND,
    KAGGLE_IMAGE_FILE,
    LIST_MARKER,
    MEASURED,
    image_facts,
    merge_snapshot,
    parse_facts,
)
from runtime.errors import PackagingError

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]
TEXT = KAGGLE_IMAGE_FILE.read_text(encoding="utf-8")


def test_default_python_and_platform_are_the_image_files(capsys):
    # Read the file here with a regex of its own, not through the parser under test.
    python = re.search(r"^#@ python: (\d+)\.(\d+)", TEXT, re.M)
    glibc = re.search(r"^#@ glibc: (\d+)\.(\d+)", TEXT, re.M)
    arch = re.search(r"^#@ arch: (\S+)", TEXT, re.M).group(1)
    xy = f"{python.group(1)}.{python.group(2)}"
    assert wheelmeta.DEFAULT_PYTHON_VERSION == wheelhouse.DEFAULT_PYTHON_VERSION == xy
    assert wheelmeta.KAGGLE_GLIBC == (int(glibc.group(1)), int(glibc.group(2)))
    assert wheelmeta.DEFAULT_PLATFORMS[0] == f"manylinux_{glibc.group(1)}_{glibc.group(2)}_{arch}"
    assert wheelmeta.KAGGLE_IMAGE_FILE is KAGGLE_IMAGE_FILE
    with pytest.raises(SystemExit):
        main(["package", "--help"])
    assert f"(default: {xy}, the 'python' fact" in " ".join(capsys.readouterr().out.split())


def test_the_image_is_pythons_312_as_docker_python_says():
    facts = image_facts()
    assert facts.python_version == "3.12" and facts.python == "3.12.13"
    assert "python3.12/dist-packages" in facts.sources["python"]
    assert facts.torch == "2.10.0+cu128" and facts.cuda == "12.8" and facts.driver == "580"
    assert facts.min_gpu_capability == (7, 0) and "NvidiaTeslaP100" in facts.retired_shapes
    for key in (*MEASURED, "min_gpu_capability", "retired_shapes"):
        assert facts.sources[key], key  # every fact has its source


BASE = [f"#@ {k}: {v} | src" for k, v in (("python", "3.12.1"), ("glibc", "2.35"), ("arch", "x86_64"),
        ("cuda", "12.8"), ("torch", "2.10.0"), ("driver", "580"), ("min_gpu_capability", "7.0"),
        ("retired_shapes", "NvidiaTeslaP100"), ("shape.t4x2", "NvidiaTeslaT4"), ("shape.cpu", "-"))]


@pytest.mark.parametrize("change, needle", [
    (lambda ls: ls[1:], "lacks the fact(s) python"),
    (lambda ls: ls + ["#@ pyhton: 3.12 | typo"], "'#@ pyhton: 3.12 | typo' is not a fact"),
    (lambda ls: ls + [ls[0]], "fact 'python' is given twice"),
    (lambda ls: [ls[0].replace("3.12.1", "twelve")] + ls[1:], "Expected a CPython version"),
    (lambda ls: [ls[0], ls[1].replace("2.35", "2.35.1")] + ls[2:], "fact 'glibc' is '2.35.1'"),
    (lambda ls: ls + ["#@ shape.h100:  | nothing"], "is not a fact"),
])
def test_bad_facts_are_named(change, needle):
    assert parse_facts(BASE).shapes == {"t4x2": "NvidiaTeslaT4", "cpu": None}
    with pytest.raises(PackagingError) as err:
        parse_facts(change(list(BASE)), source="img.txt")
    assert needle in str(err.value)


def test_unknown_target_shape_is_named():
    with pytest.raises(PackagingError, match="names no Kaggle machine shape for target 'v100'"):
        image_facts().machine_shape("v100")


def test_the_refresh_command_is_documented_and_works(tmp_path):
    assert IMAGE_REFRESH_COMMAND in TEXT  # the header shows the very command
    assert "{" not in IMAGE_REFRESH_COMMAND and "$" not in IMAGE_REFRESH_COMMAND  # IPython would expand them
    # Run it here as a notebook's `!` runs it (a shell), into a file instead of /kaggle/working.
    command = IMAGE_REFRESH_COMMAND[1:].replace("/kaggle/working/kaggle_image.txt", str(tmp_path / "snap.txt"))
    command = command.replace("python -c", f"{sys.executable} -c", 1)
    subprocess.run(["bash", "-c", command], check=True, timeout=100)
    snapshot = (tmp_path / "snap.txt").read_text()
    assert snapshot.startswith("#@ python: ")
    merged = merge_snapshot(snapshot, TEXT)
    facts = parse_facts(merged.splitlines())
    assert facts.python == ".".join(map(str, sys.version_info[:3]))  # measured, replaced
    assert facts.shapes == image_facts().shapes and facts.min_gpu_capability == (7, 0)  # kept
    old_head = TEXT.partition(LIST_MARKER)[0].splitlines()
    new_head, _, listing = merged.partition(LIST_MARKER)
    assert len(new_head.splitlines()) == len(old_head)
    for old, new in zip(old_head, new_head.splitlines()):
        if any(old.startswith(f"#@ {k}:") for k in MEASURED):
            assert new.startswith(old.split(":")[0] + ":") and "measured in a Kaggle notebook on" in new
        else:
            assert new == old  # prose, shapes and the other facts kept
    assert re.search(r"^numpy==", listing, re.M) and "installed_cpu_packages" not in listing
    # The fold-in step of the script writes it, and the wheelhouse reads the new list.
    into = tmp_path / "kaggle_image.txt"
    into.write_text(TEXT)
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "kaggle_image.py"), "merge",
                          str(tmp_path / "snap.txt"), "--into", str(into)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert into.read_text() == merged
    assert "numpy" in wheelmeta.load_provided(into)


def test_a_cut_snapshot_is_refused():
    with pytest.raises(PackagingError, match="Expected all of python"):
        merge_snapshot("#@ python: 3.12.13 | measured\nnumpy==2.0\n", TEXT)
    with pytest.raises(PackagingError, match="neither a measured fact"):
        merge_snapshot("Traceback (most recent call last):\n", TEXT)
