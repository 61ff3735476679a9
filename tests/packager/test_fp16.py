"""fp16 variants of the architectures Kaggle models have, packaged through the CLI with parity.

Before the fp16 converter's input was cleaned, every graph with a ``Resize``
(``F.interpolate``) failed the ONNX checker; a ``LayerNormalization`` whose
mean output is used cannot be typed in fp16 at all and must be kept fp32.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager import fp16
from packager.cli import main
from tests.cli_checks import fails_cleanly

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ARCHS = '''
import torch
from torch import nn
import torch.nn.functional as F


class Up(nn.Module):  # the decoder step of a U-Net / FPN
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 16 * 16, 10)

    def forward(self, pixels):
        y = F.interpolate(self.conv(pixels / 16.0), scale_factor=2, mode=self.mode)
        return self.head(F.interpolate(y, size=(16, 16), mode=self.mode).flatten(1))


class Norm(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(64, 32), nn.LayerNorm(32), nn.Linear(32, 10)

    def forward(self, pixels):
        return self.b(torch.softmax(self.norm(self.a(pixels.flatten(1) / 16.0)), -1) * 32)


class Attention(nn.Module):  # 8 tokens (rows of the image) of 8 pixels
    def __init__(self, hand_written):
        super().__init__()
        self.hand_written = hand_written
        self.embed = nn.Linear(8, 16)
        self.q, self.k, self.v = (nn.Linear(16, 16) for _ in range(3))
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16 * 8, 10)

    def forward(self, pixels):
        t = self.embed(pixels.reshape(-1, 8, 8) / 16.0)
        if self.hand_written:
            att = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2) / 4.0, dim=-1)
            y = att @ self.v(t)
        else:
            y, _ = self.mha(t, t, t)
        return self.head(y.flatten(1))


class ConvBnRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        )
        self.head = nn.Linear(8 * 64, 10)

    def forward(self, pixels):
        return self.head(self.features(pixels / 16.0).flatten(1))


class NormWithMean(nn.Module):  # uses the mean output of layer_norm: LayerNormalization cannot be fp16
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 32), nn.Linear(33, 10)
        self.w, self.bias = nn.Parameter(torch.ones(32)), nn.Parameter(torch.zeros(32))

    def forward(self, pixels):
        out, mean, _ = torch.ops.aten.native_layer_norm(self.a(pixels.flatten(1) / 16.0), [32], self.w, self.bias, 1e-5)
        return self.b(torch.cat([out, mean], 1))


MAKERS = {
    "nearest": lambda: Up("nearest"), "bilinear": lambda: Up("bilinear"), "layernorm": Norm,
    "mha": lambda: Attention(False), "sdpa": lambda: Attention(True), "cbr": ConvBnRelu, "lnmean": NormWithMean,
}


def make(kind):
    return MAKERS[kind]()
'''

MEMBER = '''
[[model]]
name = "{kind}"
factory = "archs:make"
factory_kwargs = {{ kind = "{kind}" }}
checkpoint = "checkpoints/{kind}.pt"
output = "logits"
activation = "softmax"
batch_size = 64

  [[model.input]]
  name = "pixels"
  shape = ["batch", 1, 8, 8]
  columns = "px*"

  [[model.variant]]
  name = "half"
  precision = "fp16"
'''

KINDS = ("nearest", "bilinear", "layernorm", "mha", "sdpa", "cbr", "lnmean")


@pytest.fixture
def work(digits_dir, tmp_path) -> Path:
    d = tmp_path / "digits"
    shutil.copytree(digits_dir, d)
    return d


def arch_spec(work: Path, kinds=KINDS) -> Path:
    """A spec of the digits data with one member per architecture, each with an fp16 variant."""
    import torch

    from tests.fixtures.modules import load_module

    (work / "archs.py").write_text(ARCHS)
    archs = load_module(work, "archs")  # by its path: another test's archs.py may be cached under the name
    torch.manual_seed(0)
    for kind in kinds:
        model = archs.make(kind)
        for m in model.modules():  # trained-looking BatchNorm statistics, not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        torch.save(model.state_dict(), work / "checkpoints" / f"{kind}.pt")
    head = (work / "ninefit.toml").read_text().split("[[model]]")[0]
    spec = work / "archs.toml"
    spec.write_text(head + "".join(MEMBER.format(kind=k) for k in kinds))
    return spec


def test_fp16_variants_of_real_architectures_pass_parity(work, tmp_path, capsys):
    spec = arch_spec(work)
    out = tmp_path / "bundle"
    code = main(["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile", "--kaggle-owner", "someone"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    checks = json.loads((out / "verification.json").read_text())
    halves = {c["model"]: c for c in checks if c["precision"] == "fp16" and c["file"].endswith(".onnx")}
    assert sorted(halves) == sorted(KINDS)
    assert all(c["passed"] for c in checks)
    assert halves["lnmean"]["kept_fp32"] == {"LayerNormalization": 1}
    assert halves["bilinear"]["kept_fp32"] == {}  # Resize converts once the stale type entries are gone
    report = (out / "report.md").read_text()
    assert "- lnmean (fp16.onnx): kept in fp32: LayerNormalization x1" in report
    assert "- nearest (fp16.onnx): kept in fp32: none" in report
    assert "lnmean: fp16 conversion fails at LayerNormalization; keeping it in fp32" in captured.out
    import onnx

    resize = [n for n in onnx.load(str(out / "models" / "bilinear" / "fp16.onnx")).graph.node if n.op_type == "Resize"]
    assert len(resize) == 2  # still there, and computing in fp16


def test_conversion_that_cannot_be_fixed_names_op_and_node(work, tmp_path, capsys, monkeypatch):
    """When no set of ops kept in fp32 gives a valid graph: the op, the node, what to do; exit 2, no bundle."""
    spec = arch_spec(work, ("lnmean",))
    real = fp16._Trials._try

    def without_layernorm_fix(self, blocked):  # as if LayerNormalization could not be kept fp32 either
        return real(self, blocked - {"LayerNormalization"})

    monkeypatch.setattr(fp16._Trials, "_try", without_layernorm_fix)
    out = tmp_path / "bundle"
    err = fails_cleanly(capsys, main, ["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile"],
                        "model 'lnmean'", "fp16 variant cannot be made", "op LayerNormalization (node '",
                        "Drop the fp16 variant")
    assert "nor with every op type of the graph kept in fp32" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]


def test_search_finds_the_smallest_set_when_errors_name_nothing():
    """The bisection, with a conversion that passes only when both Resize and TopK stay fp32."""

    class Trials:
        def __init__(self):
            self.seen = []

        def error(self, blocked):
            self.seen.append(blocked)
            return "" if {"Resize", "TopK"} <= blocked else "checker: (1) vs (10)"

    trials = Trials()
    ops = ["Conv", "Relu", "Resize", "Add", "Gemm", "TopK", "Softmax", "Mul"]
    assert fp16._smallest_set(trials, frozenset(), ops) == {"Resize", "TopK"}
    assert len(trials.seen) <= 10
    assert fp16._smallest_set(Trials(), frozenset(), ["Conv", "Relu"]) is None


def test_error_messages_name_ops():
    types = {"node_norm": "LayerNormalization", "proj": "MatMul"}
    assert fp16.named_ops("Inference error(s): (op_type:LayerNormalization, node name: node_norm): x", types) == [
        ("LayerNormalization", "node_norm")]
    assert fp16.named_ops("Type Error: Type (tensor(float16)) of output arg (mean) of node (node_norm) does not", types) == [
        ("LayerNormalization", "node_norm")]
    assert fp16.named_ops("Could not find an implementation for Resize(19) node with name 'up'", types) == [("Resize", "up")]
    assert fp16.named_ops("[TypeInferenceError] Inferred elem type differs: (1) vs (10)", types) == []
