"""Building the user's torch model: an ONNX-only spec needs no torch, a torch source says it is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from packager.spec import ModelSpec
from packager.torchload import load_torch_model
from runtime.errors import ModelLoadError

pytestmark = pytest.mark.timeout(30)


def test_onnx_source_needs_no_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    spec = ModelSpec(name="m", source="onnx", path=tmp_path / "m.onnx")
    assert load_torch_model(spec, tmp_path) is None


@pytest.mark.parametrize("source, path", [("factory", None), ("torchscript", "m.pt"), ("exported_program", "m.pt2")])
def test_torch_sources_without_torch_are_a_clear_error(tmp_path, monkeypatch, source, path):
    monkeypatch.setitem(sys.modules, "torch", None)
    if path:
        (tmp_path / path).write_bytes(b"x")
    spec = ModelSpec(name="m", source=source, path=tmp_path / path if path else None, factory="models:make")
    with pytest.raises(ModelLoadError, match="torch is not installed; install the build you trained with"):
        load_torch_model(spec, Path(tmp_path))


def test_a_second_project_gets_its_own_factory_module(tmp_path):
    """Two specs naming the same factory module, in one process: each gets the module beside it."""
    from packager.spec import ModelSpec
    from packager.torchload import _import_factory

    for n in (1, 2):
        (tmp_path / f"p{n}").mkdir()
        (tmp_path / f"p{n}" / "nf_models_twin.py").write_text(f"def make():\n    return {n}\n")
    spec = ModelSpec(name="m", source="factory", path=None, factory="nf_models_twin:make")
    try:
        assert _import_factory(spec, tmp_path / "p1")() == 1
        assert _import_factory(spec, tmp_path / "p2")() == 2
        assert _import_factory(spec, tmp_path / "p2")() == 2  # same project: the cached module is reused
    finally:
        sys.modules.pop("nf_models_twin", None)
