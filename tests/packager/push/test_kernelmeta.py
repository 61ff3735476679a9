"""kernel-metadata.json: written for a code competition, and read back field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.push.kernelmeta import (
    KERNEL_METADATA,
    KernelMetadata,
    check_kernel_metadata,
    kernel_slug,
    title_of,
    write_kernel_metadata,
)
from runtime.errors import PackagingError

pytestmark = pytest.mark.timeout(60)


def written(tmp_path: Path, **kwargs) -> Path:
    (tmp_path / "s.ipynb").write_text("{}")
    meta = KernelMetadata(owner="alice", slug="digits-ninefit", title="digits ninefit", code_file="s.ipynb",
                          dataset_sources=("alice/digits",), **kwargs)
    return write_kernel_metadata(meta, tmp_path)


def test_gpu_notebook_for_a_code_competition(tmp_path):
    path = written(tmp_path, competition_sources=("digit-recognizer",), machine_shape="NvidiaTeslaT4",
                   model_sources=("alice/bert/pytorch/base/3",), kernel_sources=("alice/features",))
    assert path.name == KERNEL_METADATA
    assert json.loads(path.read_text()) == {
        "id": "alice/digits-ninefit", "title": "digits ninefit", "code_file": "s.ipynb", "language": "python",
        "kernel_type": "notebook", "is_private": True, "enable_gpu": True, "enable_tpu": False,
        "enable_internet": False, "machine_shape": "NvidiaTeslaT4", "dataset_sources": ["alice/digits"],
        "competition_sources": ["digit-recognizer"], "kernel_sources": ["alice/features"],
        "model_sources": ["alice/bert/pytorch/base/3"],
    }
    assert check_kernel_metadata(path) == []


def test_cpu_notebook_has_no_gpu_and_no_shape(tmp_path):
    data = json.loads(written(tmp_path).read_text())
    assert data["enable_gpu"] is False and "machine_shape" not in data
    assert check_kernel_metadata(tmp_path / KERNEL_METADATA) == []


@pytest.mark.parametrize("field, value, needle", [
    ("enable_internet", True, "cannot be submitted"),
    ("enable_internet", "false", "expected false"),
    ("is_private", False, "public notebook"),
    ("enable_gpu", True, "without a machine_shape"),
    ("machine_shape", "NvidiaTeslaT4", "with enable_gpu false"),
    ("enable_tpu", True, "enable_tpu"),
    ("language", "r", "expected 'python'"),
    ("kernel_type", "script", "expected 'notebook'"),
    ("id", "alice", "owner/notebook-slug"),
    ("id", "alice/Digits Run", "owner/notebook-slug"),
    ("title", "other title", "slugify to the id's slug"),
    ("code_file", "missing.ipynb", "expected a .ipynb file"),
    ("dataset_sources", [], "expected the bundle's dataset"),
    ("dataset_sources", ["digits"], "'owner/dataset-slug'"),
    ("competition_sources", "digit-recognizer", "a list of competition slugs"),
    ("model_sources", ["alice/bert"], "owner/model/framework/variation/version"),
    ("enable_internt", False, "unknown field 'enable_internt'"),
])
def test_each_wrong_field_is_named(tmp_path, field, value, needle):
    path = written(tmp_path)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    problems = check_kernel_metadata(path)
    assert [p for p in problems if needle in p], problems
    # One problem per wrong field (a wrong id also leaves the title not matching it).
    assert len(problems) == (2 if field == "id" else 1), problems


def test_unreadable_file(tmp_path):
    (tmp_path / KERNEL_METADATA).write_text("{not json")
    assert "not readable JSON" in check_kernel_metadata(tmp_path / KERNEL_METADATA)[0]


def test_slugs_and_titles():
    assert kernel_slug("Digit Recognizer ninefit") == "digit-recognizer-ninefit"
    assert title_of("digit-recognizer-ninefit") == "digit recognizer ninefit"
    assert kernel_slug("word " * 20) == "-".join(["word"] * 10)  # cut at a word, 50 characters at most
    for bad in ("ab", "!!!", "é"):
        with pytest.raises(PackagingError, match="--kernel SLUG"):
            kernel_slug(bad)
