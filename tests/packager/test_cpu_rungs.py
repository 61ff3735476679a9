"""CPU rungs through the CLI: int8 (dynamic and static QDQ), OpenVINO fp32/bf16, each guarded on the real digits rows.

The digits example's trained MLP and CNN, a small transformer encoder trained here on scikit-learn's digits
(8 tokens of 8 pixels), and a model built to break int8 honestly: one hidden unit that carries a huge,
uninformative activation (1e4 times the others, read by no output), so per-tensor activation quantization
rounds every informative unit beside it to zero.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from packager.cli import main
from runtime.backends import available
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly
from tests.fixtures.models import train_classifier
from tests.fixtures.modules import load_module

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ARCHS = '''
import torch
from torch import nn


class Encoder(nn.Module):  # 8 tokens (rows of the image) of 8 pixels
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.pos = nn.Parameter(torch.zeros(8, 32))
        layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 10)

    def forward(self, pixels):
        t = self.embed(pixels.reshape(-1, 8, 8) / 16.0) + self.pos
        return self.head(self.encoder(t).mean(1))


class Outlier(nn.Module):  # a trained MLP whose hidden layer also carries one huge unit no output reads
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 64), nn.Linear(65, 10)
        self.register_buffer("outlier", torch.zeros(()))  # 0 while training; 1e4 in the packaged model

    def forward(self, pixels):
        h = torch.relu(self.a(pixels / 16.0))
        big = self.outlier * (1.0 + pixels.mean(1, keepdim=True) / 16.0)
        return self.b(torch.cat([h, big], 1))


def make(kind):
    return {"encoder": Encoder, "outlier": Outlier}[kind]()
'''

MEMBER = '''
[[model]]
name = "{name}"
factory = "{factory}"
{kwargs}checkpoint = "checkpoints/{name}.pt"
output = "logits"
activation = "softmax"
batch_size = 64

  [[model.input]]
  name = "pixels"
  shape = {shape}
  columns = "px*"
{variants}'''


def variant(name: str, **keys) -> str:
    body = "".join(f"  {k} = {json.dumps(v)}\n" for k, v in keys.items())
    return f'\n  [[model.variant]]\n  name = "{name}"\n{body}'


@pytest.fixture(scope="module")
def work(digits_dir, tmp_path_factory) -> Path:
    """The digits example with an encoder and an outlier model trained beside its CNN and MLP."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    d = tmp_path_factory.mktemp("cpu_rungs") / "digits"
    shutil.copytree(digits_dir, d)
    (d / "archs.py").write_text(ARCHS)
    archs = load_module(d, "archs")  # by its path: test_fp16's archs.py may be cached under the same name
    digits = load_digits()
    torch.manual_seed(0)
    for kind in ("encoder", "outlier"):
        model = train_classifier(archs.make(kind), digits.data.astype(np.float32), digits.target, epochs=6, lr=3e-3)
        if kind == "outlier":  # the huge unit: 1e4 at inference, read by no output (its weights zero)
            model.outlier.fill_(1e4)
            with torch.no_grad():
                model.b.weight[:, 64] = 0.0
        torch.save(model.state_dict(), d / "checkpoints" / f"{kind}.pt")
    return d


def spec(work: Path, name: str, members: list[tuple[str, str]]) -> Path:
    """``members``: (model name, its [[model.variant]] tables) on the digits data."""
    head = (work / "ninefit.toml").read_text().split("[[model]]")[0]
    shapes = {"mlp": '["batch", 64]', "cnn": '["batch", 1, 8, 8]', "encoder": '["batch", 64]', "outlier": '["batch", 64]'}
    body = ""
    for model, variants in members:
        example = model in ("mlp", "cnn")
        factory = f"models:make_{model}" if example else "archs:make"
        kwargs = "" if example else f'factory_kwargs = {{ kind = "{model}" }}\n'
        body += MEMBER.format(name=model, factory=factory, kwargs=kwargs, shape=shapes[model], variants=variants)
    path = work / f"{name}.toml"
    path.write_text(head + body)
    return path


def package(capsys, path: Path, out: Path) -> tuple[Manifest, str, str]:
    code = main(["package", str(path), "-o", str(out), "--no-wheels", "--no-profile", "--kaggle-owner", "someone",
                 "--force"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return Manifest.load(out), (out / "report.md").read_text(), captured.out + captured.err


def test_mlp_and_encoder_get_dynamic_int8_rungs_and_the_cnn_a_static_one(work, tmp_path, capsys):
    path = spec(work, "int8", [("mlp", variant("int8", precision="int8")),
                               ("encoder", variant("int8", precision="int8")),
                               ("cnn", variant("int8", precision="int8"))])
    manifest, report, _ = package(capsys, path, tmp_path / "bundle")
    rungs = {m.name: m.variants[1] for m in manifest.members}
    assert {m.name: len(m.variants) for m in manifest.members} == {"mlp": 2, "encoder": 2, "cnn": 2}
    assert rungs["mlp"].file.endswith("int8-dynamic.onnx") and rungs["encoder"].file.endswith("int8-dynamic.onnx")
    assert rungs["cnn"].file.endswith("int8-static.onnx")
    for name, v in rungs.items():
        assert v.precision == "int8" and 0.99 <= v.value_factor <= 1.0, (name, v)
    # The guard's table: agreement and mean abs diff per rung, and how each file was made.
    assert "## CPU rungs: accuracy guard against fp32" in report
    assert "| mlp | int8 | int8 | onnxruntime | int8-dynamic.onnx | 256 |" in report
    assert "auto: 0 Conv against 3 MatMul/Gemm node(s)" in report
    cnn_line = next(line for line in report.splitlines() if line.startswith("- cnn (int8-static.onnx): static QDQ"))
    assert "int8 Conv 2" in cnn_line and "stays float:" in cnn_line and "calibrated on 128 rows of first 256 rows" in cnn_line
    import onnx

    graph = onnx.load(str(tmp_path / "bundle" / rungs["cnn"].file)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) >= 2  # activations quantized: static QDQ
    graph = onnx.load(str(tmp_path / "bundle" / rungs["encoder"].file)).graph
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)


def test_int8_rung_that_breaks_the_guard_is_left_out_with_its_agreement(work, tmp_path, capsys):
    path = spec(work, "outlier", [("outlier", variant("int8", precision="int8"))])
    manifest, report, said = package(capsys, path, tmp_path / "bundle")
    assert [v.name for v in manifest.members[0].variants] == ["fp32"]
    warning = next(line for line in report.splitlines() if "variant 'int8' (int8) is left out" in line)
    assert "fails the accuracy guard on 256 rows" in warning, warning
    # The measured agreement is in the message, as a figure, beside the tolerance it missed.
    found = re.search(r"measured arg-max agreement (\d+\.\d+)% < min_agreement 99\.00%", warning)
    assert found, warning
    share = float(found.group(1))
    assert share < 99.0
    row = next(line for line in report.splitlines() if line.startswith("| outlier | int8 |"))
    assert f"| {share:.2f}% (arg-max) |" in row and "LEFT OUT: measured arg-max agreement" in row, row
    said_line = next(line for line in said.splitlines() if "left out" in line)
    assert f"measured arg-max agreement {share:.2f}%" in said_line, said  # said on the command line too


def test_a_spec_can_tighten_the_guard(work, tmp_path, capsys):
    path = spec(work, "tight", [("mlp", variant("int8", precision="int8", min_agreement=1.0, max_mean_abs_diff=1e-9))])
    manifest, report, _ = package(capsys, path, tmp_path / "bundle")
    assert len(manifest.members[0].variants) == 1
    assert "mean abs diff" in report and "> max_mean_abs_diff 1e-09" in report


def test_bad_cpu_rung_keys_are_refused(work, tmp_path, capsys):
    path = spec(work, "bad", [("mlp", variant("q", precision="fp16", quantize="static"))])
    fails_cleanly(capsys, main, ["package", str(path), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "quantize applies to an int8 rung")
    path = spec(work, "bad2", [("mlp", variant("q", precision="bf16", backend="onnxruntime"))])
    fails_cleanly(capsys, main, ["package", str(path), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "a bf16 rung runs on OpenVINO")
    path = spec(work, "bad3", [("mlp", variant("q", precision="int8", quantize="sometimes"))])
    fails_cleanly(capsys, main, ["package", str(path), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "quantize", "auto", "dynamic", "static")


@pytest.mark.skipif("openvino" not in available(), reason="openvino is not installed (pip install 'ninefit[openvino]')")
def test_openvino_fp32_and_bf16_rungs(work, tmp_path, capsys):
    from runtime.backends.openvino import native_bf16

    path = spec(work, "ov", [("mlp", variant("ov32", backend="openvino") + variant("bf16", precision="bf16"))])
    manifest, report, said = package(capsys, path, tmp_path / "bundle")
    names = {v.name: v for v in manifest.members[0].variants}
    assert names["ov32"].backend == "openvino" and names["ov32"].precision == "fp32"
    assert names["ov32"].value_factor == pytest.approx(1.0, abs=0.01)
    assert "| mlp | ov32 | fp32 | openvino | fp32.onnx | 256 |" in report
    ok, where = native_bf16()
    if ok:
        assert names["bf16"].backend == "openvino" and names["bf16"].file.endswith("fp32.onnx")
        assert "| mlp | bf16 | bf16 | openvino | fp32.onnx | 256 |" in report
    else:  # never silently: left out, saying why
        assert "bf16" not in names and "has no native bf16" in said, where
    # The runtime runs each rung on OpenVINO at its precision.
    from runtime.bundle import open_bundle
    from runtime.execute.runners import load_runner
    from runtime.run import RunOptions

    bundle = open_bundle(tmp_path / "bundle")
    member = bundle.manifest.members[0]
    runner = load_runner(bundle, member, names["ov32"], RunOptions())
    with runner:
        assert runner.describe() == "openvino CPU (fp32, inference precision fp32)"
    if ok:
        runner = load_runner(bundle, member, names["bf16"], RunOptions())
        with runner:
            assert runner.describe() == "openvino CPU (bf16, inference precision bf16)"
