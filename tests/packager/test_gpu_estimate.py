"""The GPU estimate fitted to published figures (issue 27): its basis names table rows, a GPU run refits it."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import pytest

from packager.estimate.calibrate import CalibrationStore, calibrate
from packager.estimate.estimator import EstimateOptions, estimate_bundle
from packager.estimate.price.figures import load_figures
from packager.estimate.price.flops import count_graph
from packager.estimate.price.gpufit import load_costs, shipped_fit
from packager.estimate.price.gpuprice import gpu_fitted, graph_signature, price_call
from packager.estimate.price.gpuspec import DEVICES
from packager.estimate.price.hardware import get_target
from runtime.manifest import Manifest

_ROW = re.compile(r"(?:published:|near) ([a-z0-9.-]+)")


def _named_row(basis: str):
    """The table row a basis names (a KeyError if it names none)."""
    match = _ROW.search(basis)
    assert match, f"the basis names no table row: {basis!r}"
    return load_figures().figure(match.group(1))


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT encoder of hidden 128 (transformers, random weights), exported to ONNX with a symbolic
    batch and sequence: seconds to build, nothing downloaded."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=512, max_position_embeddings=256)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).eval()
    path = tmp_path_factory.mktemp("encoder") / "encoder.onnx"
    ids = torch.ones(2, 16, dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation: it is the quick one for a test
        torch.onnx.export(model, (ids, ids), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamo=False, opset_version=17,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}})
    return path


@pytest.mark.timeout(120)
def test_a_small_encoder_on_a_t4_is_priced_by_the_fitted_model_naming_the_rows_it_leans_on(small_encoder):
    cost = count_graph(small_encoder, 64, {"sequence": 128})
    t4 = get_target("t4x2")
    fp32 = price_call(cost, graph_signature(small_encoder), t4, "fp32")
    fp16 = price_call(cost, graph_signature(small_encoder), t4, "fp16")
    for call in (fp32, fp16):
        assert gpu_fitted(call.basis) and call.basis.startswith("fitted: extrapolated (no same-family row on T4)")
        row = _named_row(call.basis)  # the nearest rows: transformer encoders on a T4, at the rung's precision
        assert row.gpu == "T4" and row.kind == "transformer_encoder" and not row.holdout
        assert call.estimate.confidence == "low" and call.estimate.low < call.estimate.seconds < call.estimate.high
        assert any("nearest rows" in n for n in call.estimate.notes)
    assert fp32.basis != fp16.basis and _named_row(fp16.basis).precision == "fp16"
    # Sane: no faster than the T4's datasheet peak, no slower than 5% of it plus a launch a kernel (the old
    # estimate sat near 12% of the fp32 peak for a BERT-base); fp16 (tensor cores) faster than fp32.
    peak = DEVICES["t4"].peak("fp32")
    floor = cost.flops / peak
    assert floor < fp32.estimate.seconds < cost.flops / (0.05 * peak) + cost.kernels * 50e-6
    assert fp16.estimate.seconds < fp32.estimate.seconds


@pytest.mark.timeout(120)
def test_a_bert_base_graph_is_priced_on_its_own_family_rows(small_encoder):
    """A graph whose product weights are BERT-base's is recognised as the table's BERT-base: the basis names the
    TensorRT demo's T4 rows and the confidence is medium (the same family on the same GPU)."""
    cost = count_graph(small_encoder, 128, {"sequence": 128})
    bert_base = load_costs().signatures["bert-l12-h768-v30522"]
    call = price_call(cost, bert_base, get_target("t4x2"), "fp16", tensorrt=True)
    assert call.basis.startswith("published: trt-bert-base-s128-b128-fp16-t4")
    assert call.estimate.confidence == "low" or call.estimate.confidence == "medium"
    assert _named_row(call.basis).gpu == "T4"
    h100 = price_call(cost, bert_base, get_target("h100"), "fp16", tensorrt=True)
    assert "H100" in h100.basis and h100.estimate.seconds < call.estimate.seconds


def test_the_shipped_fit_is_the_fit_of_the_shipped_table():
    """gpu_fit.json reproduces from the table and the counts (`python -m packager.estimate.price.gpufit`)."""
    from packager.estimate.price.gpufit import fit

    shipped, again = shipped_fit(), fit()
    assert shipped.fitted == again.fitted
    assert max(abs(a - b) for a, b in zip(shipped.theta, again.theta)) < 1e-4
    # The band (cross-validated) covers the fitted rows' own misses' spread at least.
    assert math.exp(shipped.bands.seen) > 1.2 and shipped.bands.unseen >= shipped.bands.seen


def _gpu_report(path: Path, members: list[dict]) -> Path:
    path.write_text(json.dumps({"bundle": "digits", "rows": members[0]["rows"], "members": members,
                                "machine": {"cpu_model": "Intel(R) Xeon(R) CPU @ 2.00GHz", "cores": 4,
                                            "gpus": ["Tesla T4", "Tesla T4"]}}))
    return path


@pytest.mark.timeout(180)
def test_a_gpu_run_refits_the_gpu_model_and_the_report_shows_estimate_against_actual(digits_bundle, tmp_path):
    bundle = tmp_path / "digits"
    shutil.copytree(digits_bundle, bundle)
    options = EstimateOptions(target="t4x2", rows=25_000)
    manifest = Manifest.load(bundle)
    before = estimate_bundle(bundle, options)
    inf = {i.member: i for i in before.items if i.stage == "inference"}
    assert all(gpu_fitted(i.basis) for i in inf.values())
    # The run on the T4 was 4x slower than the table's fit makes it: the cnn ran, on onnxruntime's CUDA EP.
    actual = 4 * inf["cnn"].estimate.seconds
    report = _gpu_report(tmp_path / "run_report.json", [
        {"name": "cnn", "variant": inf["cnn"].variant, "rows": 25_000, "seconds": actual, "load_seconds": 0.0,
         "status": "done", "device": "gpu", "backend_used": "onnxruntime-cuda"}])
    store = CalibrationStore.load(tmp_path / "cal.json")
    notes: list[str] = []
    calibrate(store, bundle, manifest, report, options, notes)
    assert len(store.gpu_observations()) == 1 and store.gpu_observations()[0].backend == "ONNX Runtime CUDA EP"
    line = next(n for n in notes if n.startswith("GPU model refitted on 1 run(s): cnn/"))
    refit, measured, table = (float(x) for x in re.findall(
        r"inference ([0-9.e+-]+) s against ([0-9.e+-]+) s measured .*the table alone gave ([0-9.e+-]+) s", line)[0])
    assert measured == pytest.approx(actual, rel=1e-2)
    assert abs(math.log(refit / actual)) < abs(math.log(table / actual))  # the refit moves toward the run
    store.save()
    after = estimate_bundle(bundle, options, calibration=CalibrationStore.load(tmp_path / "cal.json"))
    new = {i.member: i for i in after.items if i.stage == "inference"}
    # The cnn has its own record (applied on the fit without its run): the run's figure.
    assert new["cnn"].estimate.seconds == pytest.approx(actual, rel=0.05)
    # The mlp never ran: the refitted efficiencies (T4, CUDA EP, its launches) move it the same way.
    assert new["mlp"].estimate.seconds > 1.5 * inf["mlp"].estimate.seconds
    assert any("run(s) of yours" in n for n in new["mlp"].estimate.notes)
