"""Packaging a generative spec: the causal LM's folder carried and checksummed, verified offline by generating,
through ``ninefit package`` and ``ninefit verify``; bad specs and folders refused naming what was expected; the
generation estimate's bounds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.cli import main as ninefit
from packager.estimate.price.generation import ModelShape, plan_generation, price_generation
from packager.estimate.price.hardware import get_target
from packager.generate import is_generative_spec, package_generative, parse_generative
from runtime.errors import DataError, ModelLoadError, SpecError
from runtime.manifest import SCHEMA_VERSION, Manifest
from tests.fixtures.adder import adder_model, write_project

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return adder_model(tmp_path_factory.getbasetemp())


def test_ninefit_package_and_verify_a_generative_bundle(tmp_path, model, capsys):
    spec = write_project(tmp_path / "p", model, items=5)
    assert is_generative_spec(spec)
    assert ninefit(["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--target", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "generative: adder" in out and "tokens/s at batch" in out
    m = Manifest.load(tmp_path / "b")
    assert m.generate is not None and m.members == () and m.schema_version == SCHEMA_VERSION
    assert {"models/adder/config.json", "models/adder/model.safetensors", "models/adder/tokenizer.json",
            "generate_profile.json"} <= set(m.files)
    profile = json.loads((tmp_path / "b" / "generate_profile.json").read_text())
    assert profile["costs"]["measured"] and len(profile["verified"]) == 2 and profile["context_length"] == 64
    assert ninefit(["verify", str(tmp_path / "b")]) == 0
    assert ninefit(["estimate", str(tmp_path / "b"), "--target", "t4x2", "--rows", "50", "--time-limit", "9h"]) == 0
    out = capsys.readouterr().out
    assert "samples per item fit at the bound" in out and "over 2 device(s)" in out and "% of it" in out
    weights = tmp_path / "b" / "models" / "adder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"damaged!")
    assert ninefit(["verify", str(tmp_path / "b")]) == 1
    assert "models/adder/model.safetensors" in capsys.readouterr().out


def test_wheels_asked_for_are_collected_for_kaggles_python_and_checksummed(tmp_path, model, capsys):
    """A language model's bundle collects only what --requirement asks (vLLM's wheels, on Kaggle), checked offline."""
    import platform

    from tests.packager.wheels import make_wheel

    spec = write_project(tmp_path / "p", model, items=5)
    make_wheel(tmp_path / "index", "ninefit-gen-engine", "1.0", code="VALUE = 3\n")
    here = ".".join(platform.python_version_tuple()[:2])  # an interpreter that runs: a real offline install check
    assert ninefit(["package", str(spec), "-o", str(tmp_path / "b"), "--target", "cpu", "--requirement",
                    "ninefit-gen-engine", "--find-links", str(tmp_path / "index"), "--no-index",
                    "--kaggle-python", here]) == 0
    out = capsys.readouterr().out
    assert "no wheelhouse" not in out
    m = Manifest.load(tmp_path / "b")
    assert "wheels/ninefit_gen_engine-1.0-py3-none-any.whl" in m.files
    record = json.loads((tmp_path / "b" / "wheelhouse.json").read_text())
    assert record["install_check"]["ok"] and record["install_check"]["mode"] == "installed"
    assert "Offline install" in (tmp_path / "b" / "report.md").read_text()
    assert ninefit(["verify", str(tmp_path / "b")]) == 0


def test_an_older_manifest_still_loads(tmp_path, model):
    spec = write_project(tmp_path / "p", model, items=3)
    package_generative(spec, tmp_path / "b")
    d = json.loads((tmp_path / "b" / "manifest.json").read_text())
    d.pop("generate")
    d["schema_version"] = 5
    assert Manifest.from_dict(d).generate is None


def test_bad_specs_and_folders_are_refused_naming_what_was_expected(tmp_path, model):
    spec = write_project(tmp_path / "p", model, items=3, samples=4, agree=5)
    with pytest.raises(SpecError, match="agree = 5 is more than samples = 4"):
        parse_generative(spec)
    spec = write_project(tmp_path / "p", model, items=3, temprature=0.7)
    with pytest.raises(SpecError, match="unknown key.*temprature"):
        parse_generative(spec)
    spec = write_project(tmp_path / "p", model, items=3, aggregation="mean")
    with pytest.raises(SpecError, match="majority"):
        parse_generative(spec)
    spec = write_project(tmp_path / "p", model, items=3, extractor="(")
    with pytest.raises(SpecError, match="not a valid regular expression"):
        parse_generative(spec)
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "model.safetensors").unlink()
    spec = write_project(tmp_path / "q", bare, items=3)
    with pytest.raises(ModelLoadError, match="has no weights"):
        package_generative(spec, tmp_path / "b")
    spec = write_project(tmp_path / "r", model, items=3, prompt_column="question")
    with pytest.raises(DataError, match="no column.*question"):
        package_generative(spec, tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_the_estimate_bounds_decode_by_bandwidth_and_checks_memory(model):
    shape = ModelShape.from_folder(model)
    assert shape.layers == 2 and shape.kv_heads == 4 and shape.head_dim == 16 and shape.context == 64
    assert shape.kv_bytes_per_token == 2 * 2 * 4 * 16 * 4
    t4 = get_target("t4x2")
    one = price_generation(shape, t4, devices=1)
    two = price_generation(shape, t4, devices=2)
    assert two.bandwidth == 2 * one.bandwidth
    assert one.step_s(1, 0) == pytest.approx(max(shape.weights_bytes / t4.bandwidth, 2 * shape.params / t4.fp32_flops))
    # A 7B bf16 model on 2 x T4: 14 GB of weights do not fit one T4 (16 GB less headroom) with a long cache, but
    # split over two they do; no bf16 there, said.
    big = ModelShape(weights_bytes=14_000_000_000, params=7_000_000_000, layers=32, kv_heads=8, head_dim=128,
                     context=4096, dtype="bfloat16")
    single = plan_generation(big, t4, items=50, limit_s=9 * 3600, samples=8, prompt_tokens=500, new_tokens=2000,
                             devices=1)
    split = plan_generation(big, t4, items=50, limit_s=9 * 3600, samples=8, prompt_tokens=500, new_tokens=2000)
    assert not single.fits_memory and split.fits_memory
    assert "no bf16" in split.bf16_note
    assert split.samples_fit > 8  # the bound leaves room: 648 s per item
    h100 = plan_generation(big, get_target("h100"), items=50, limit_s=5 * 3600, samples=16, prompt_tokens=500,
                           new_tokens=8000)
    assert h100.fits_memory and not h100.bf16_note and any("tokens/s" in line for line in h100.lines())


def test_items_decoded_together_are_priced_at_the_batchs_bound_and_memory():
    """Decode is bandwidth-bound at small batches: 4 items of 2 samples together read the weights once per step for
    8 sequences, so each item costs less than alone, while the memory holds all 8 sequences' caches."""
    big = ModelShape(weights_bytes=14_000_000_000, params=7_000_000_000, layers=32, kv_heads=8, head_dim=128,
                     context=4096, dtype="float16")
    h100 = get_target("h100")
    alone = plan_generation(big, h100, items=100_000, limit_s=9 * 3600, samples=2, prompt_tokens=300,
                            new_tokens=200)
    together = plan_generation(big, h100, items=100_000, limit_s=9 * 3600, samples=2, prompt_tokens=300,
                               new_tokens=200, together=4)
    assert together.item_s_asked < alone.item_s_asked / 2  # the weights' reads shared by 4 items
    assert together.samples_fit > alone.samples_fit
    assert together.memory_needed - big.weights_bytes == pytest.approx(4 * (alone.memory_needed - big.weights_bytes))
    assert any("4 items together" in line for line in together.lines())
