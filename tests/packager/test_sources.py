"""Every model source a spec can name, sample inputs, Parquet data, and the exporter fallback."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from packager.build import package
from runtime import RunOptions, open_bundle, run

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture
def work(digits_dir, tmp_path) -> Path:
    d = tmp_path / "digits"
    shutil.copytree(digits_dir, d)
    return d


def mlp(work: Path):
    import torch

    from tests.fixtures.modules import load_module

    model = load_module(work, "models").make_mlp()
    model.load_state_dict(torch.load(work / "checkpoints" / "mlp.pt"))
    return model.eval()


def mlp_only(work: Path, source_lines: str, name: str = "mlp.toml") -> Path:
    """A new spec beside the digits one: only the MLP, built from ``source_lines`` instead of the factory."""
    head, _, rest = (work / "ninefit.toml").read_text().partition("[[model]]")
    mlp_block = "[[model]]" + rest.split("[[model]]")[1]
    mlp_block = mlp_block.replace('factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"\n', source_lines)
    spec = work / name
    spec.write_text(head + mlp_block)
    return spec


def package_and_run(spec: Path, data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    bundle = tmp_path / "bundle"
    package(spec, bundle)
    out = tmp_path / "submission.csv"
    run(bundle, data, out, RunOptions(progress=False, work_dir=tmp_path / "work"))
    return bundle, out.read_text().splitlines()


def reference_rows(work: Path, tmp_path: Path) -> list[str]:
    """The submission of the factory + state_dict MLP, to compare other sources against."""
    spec = mlp_only(work, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"\n', "reference.toml")
    _, rows = package_and_run(spec, work / "data", tmp_path / "ref")
    return rows


@pytest.mark.parametrize("source", ["torchscript", "exported_program", "onnx"])
def test_other_sources_give_the_same_submission(work, tmp_path, source):
    import torch

    model = mlp(work)
    example = torch.zeros(2, 64)
    if source == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates tracing; users still have .ts files
            torch.jit.save(torch.jit.trace(model, example), str(work / "mlp.ts"))
        line = 'torchscript = "mlp.ts"\n'
    elif source == "exported_program":
        ep = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        torch.export.save(ep, str(work / "mlp.pt2"))
        line = 'exported_program = "mlp.pt2"\n'
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, as many users still run it
            torch.onnx.export(model, (example,), str(work / "mlp.onnx"), dynamo=False, input_names=["pixels"],
                              output_names=["logits"], dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
        line = 'onnx = "mlp.onnx"\n'
    expected = reference_rows(work, tmp_path)
    bundle, rows = package_and_run(mlp_only(work, line), work / "data", tmp_path / source)
    member = open_bundle(bundle).manifest.members[0]
    # a ScriptModule cannot go through torch.export, so the TorchScript exporter takes over (a real fallback)
    assert member.exporter == {"torchscript": "torchscript", "exported_program": "dynamo", "onnx": "onnx-file"}[source]
    assert rows == expected


def test_sample_inputs_npz_are_used_for_verification(work, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(work / "samples.npz", pixels=rng.integers(0, 17, (40, 64)).astype(np.float32))
    spec = mlp_only(work, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"\nsample_inputs = "samples.npz"\n')
    bundle, _ = package_and_run(spec, work / "data", tmp_path)
    assert "samples.npz (40 rows)" in (bundle / "report.md").read_text()


def test_parquet_test_data(work, tmp_path):
    import pandas as pd

    expected = reference_rows(work, tmp_path)
    data = work / "data"
    pd.read_csv(data / "test.csv", dtype={"id": str}).to_parquet(data / "test.parquet")
    (data / "test.csv").unlink()
    spec = mlp_only(work, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"\n')
    spec.write_text(spec.read_text().replace('test = "data/test.csv"', 'test = "data/test.parquet"'))
    _, rows = package_and_run(spec, data, tmp_path / "pq")
    assert rows == expected


def test_torchscript_exporter_is_the_recorded_fallback(work, tmp_path, monkeypatch, caplog):
    """When the torch.export-based exporter fails, the TorchScript exporter is used and recorded."""
    import torch

    real = torch.onnx.export

    def dynamo_fails(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise RuntimeError("simulated: torch.export could not trace this model")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    bundle = tmp_path / "bundle"
    with caplog.at_level(logging.INFO, logger="ninefit.package"):
        package(mlp_only(work, 'factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"\n'), bundle)
    messages = [r.getMessage() for r in caplog.records]
    assert open_bundle(bundle).manifest.members[0].exporter == "torchscript"
    assert any("torchscript exporter" in m and "simulated: torch.export could not trace" in m for m in messages)
    assert "| mlp | 0.4 | torchscript |" in (bundle / "report.md").read_text()
