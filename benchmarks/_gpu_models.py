"""The models behind the published GPU figures (``packager/data/gpu_figures.toml``), built at random weights.

Nothing is downloaded: the transformers are built from ``transformers`` configs with the sizes each row's
``arch`` names, the CNNs, the detector and the 3D U-Nets in plain torch here (torchvision is not needed), as the
sources describe them:

* ``bert``: ``BertForQuestionAnswering`` (layers, hidden, heads, intermediate; vocabulary 30,522, or the row's);
* ``bert-encoder``: FasterTransformer's baseline, a ``BertEncoder`` stack alone (no embeddings, no head), fed
  hidden states;
* ``deberta``: ``DebertaV2ForSequenceClassification`` as TensorRT's DeBERTa demo builds it
  (``deberta_pytorch2onnx.py``: vocabulary 128,203, relative attention over 256 positions, p2c + c2p),
  exported at each row's sequence length and batch (ONNX shape inference cannot follow its relative
  positions through symbolic ones, and would count their tensors as 0 bytes);
* ``resnet``: ResNet v1.5 bottlenecks (ResNet-50; ResNeXt-101 32x4d; SE-ResNeXt-101 32x4d with squeeze and
  excitation of ratio 16);
* ``efficientnet``: EfficientNet-B0's MBConv stages, scaled by width / depth (B4: 1.4 / 1.8);
* ``retinanet``: a ResNeXt-50 32x4d backbone, an FPN (P3-P7, 256 channels) and the two heads (4 convolutions
  each, 9 anchors, 264 classes); post-processing (NMS) is not part of the graph;
* ``unet3d``: a 3D U-Net of six levels (32, 64, 128, 256, 320, 320 filters), instance norm, as nnU-Net's and
  MLPerf's KiTS19 model lay out a 128^3 patch.

:func:`export` writes one ONNX graph per model (dynamic batch, and sequence for the transformers), cached by
name under a folder: a figure at another batch or sequence length is the same graph counted at its sizes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from pathlib import Path

import torch
from torch import nn


def model_key(figure) -> str:
    """The graph a figure is counted on: its family, sizes and input (not its batch or sequence length)."""
    a = figure.arch
    name = str(a.get("name", figure.model)).lower()
    if figure.kind == "transformer_encoder":
        if "deberta" in name:  # exported at its sequence length: shape inference cannot follow its relative
            return f"deberta-v2-rel256-s{figure.input_shape[0]}-b{figure.batch}"  # positions through symbolic ones
        if "encoder stack" in name:
            return f"bert-encoder-l{a['layers']}-h{a['hidden']}"
        return f"bert-l{a['layers']}-h{a['hidden']}-v{a.get('vocab', 30522)}"
    if figure.kind == "segmentation_3d":
        return f"unet3d-c{figure.input_shape[0]}"
    if figure.kind == "detection":
        return f"retinanet-rx50-{figure.input_shape[-1]}"
    if "efficientnet" in name:
        return f"{name.split()[0]}-{figure.input_shape[-1]}"
    if "se-resnext101" in name:
        return "se-resnext101-32x4d-224"
    if "resnext101" in name:
        return "resnext101-32x4d-224"
    return "resnet50-224"


def symbolic_sequence(figure) -> bool:
    """Whether the figure's graph has a symbolic sequence dim (a transformer other than DeBERTa)."""
    return figure.kind == "transformer_encoder" and not model_key(figure).startswith("deberta")


# -- CNNs ----------------------------------------------------------------------------------------------------------

class _SE(nn.Module):
    def __init__(self, channels: int, reduced: int, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1), act()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, groups: int, width_per_group: int, se: bool):
        super().__init__()
        width = planes * width_per_group // 64 * groups
        out = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out), *([_SE(out, out // 16)] if se else []))
        self.down = (nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                     if stride != 1 or cin != out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


class ResNet(nn.Module):
    """ResNet v1.5 (the stride on the 3x3 convolution); ``features=True`` returns C3, C4, C5 (a backbone)."""

    def __init__(self, layers: list[int], groups: int = 1, width_per_group: int = 64, se: bool = False,
                 classes: int = 1000, features: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, n in enumerate(layers):
            planes = 64 * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(_Bottleneck(cin, planes, 2 if j == 0 and i > 0 else 1, groups, width_per_group, se))
                cin = planes * 4
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.features = features
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        if self.features:
            return outs[1:]
        return self.fc(x.mean((2, 3)))


def _round_filters(c: int, width: float) -> int:
    c = c * width
    new = max(8, int(c + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * c else new)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU()]
        layers += [nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid),
                   nn.SiLU(), _SE(mid, max(1, int(cin * 0.25)), nn.SiLU),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
       (6, 3, 1, 320, 1)]


class EfficientNet(nn.Module):
    """EfficientNet: B0's stages scaled by ``width`` (filters, rounded to 8) and ``depth`` (repeats, rounded up)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, classes: int = 1000):
        super().__init__()
        stem = _round_filters(32, width)
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.SiLU()]
        cin = stem
        for expand, kernel, stride, out, repeats in _B0:
            cout = _round_filters(out, width)
            for j in range(int(math.ceil(depth * repeats))):
                layers.append(_MBConv(cin, cout, expand, kernel, stride if j == 0 else 1))
                cin = cout
        head = _round_filters(1280, width)
        layers += [nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(head, classes)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class RetinaNet(nn.Module):
    """MLPerf's RetinaNet without its post-processing: ResNeXt-50 32x4d, FPN P3-P7, classification and box heads."""

    def __init__(self, classes: int = 264, anchors: int = 9, channels: int = 256):
        super().__init__()
        self.backbone = ResNet([3, 4, 6, 3], groups=32, width_per_group=4, features=True)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in (512, 1024, 2048))
        self.smooth = nn.ModuleList(nn.Conv2d(channels, channels, 3, 1, 1) for _ in range(3))
        self.p6, self.p7 = nn.Conv2d(channels, channels, 3, 2, 1), nn.Conv2d(channels, channels, 3, 2, 1)

        def head(out: int) -> nn.Sequential:
            convs = [m for _ in range(4) for m in (nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU())]
            return nn.Sequential(*convs, nn.Conv2d(channels, anchors * out, 3, 1, 1))

        self.cls, self.box = head(classes), head(4)
        self.classes = classes

    def forward(self, x):
        c3, c4, c5 = self.backbone(x)
        l3, l4, l5 = (lat(c) for lat, c in zip(self.lateral, (c3, c4, c5)))
        l4 = l4 + nn.functional.interpolate(l5, size=l4.shape[-2:], mode="nearest")
        l3 = l3 + nn.functional.interpolate(l4, size=l3.shape[-2:], mode="nearest")
        p3, p4, p5 = (s(p) for s, p in zip(self.smooth, (l3, l4, l5)))
        p6 = self.p6(p5)
        p7 = self.p7(torch.relu(p6))
        levels = (p3, p4, p5, p6, p7)
        logits = torch.cat([self.cls(p).flatten(2) for p in levels], 2)
        boxes = torch.cat([self.box(p).flatten(2) for p in levels], 2)
        return logits, boxes


class _ConvBlock3d(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(nn.Conv3d(cin, cout, 3, stride, 1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01),
                         nn.Conv3d(cout, cout, 3, 1, 1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01))


class UNet3d(nn.Module):
    """A six-level 3D U-Net (filters min(2**(5+i), 320), strides 1, 2, 2, 2, 2, 2), transposed-conv decoder."""

    def __init__(self, in_channels: int, classes: int = 3, levels: int = 6):
        super().__init__()
        filters = [min(2 ** (5 + i), 320) for i in range(levels)]
        self.down = nn.ModuleList(_ConvBlock3d(in_channels if i == 0 else filters[i - 1], f, 1 if i == 0 else 2)
                                  for i, f in enumerate(filters))
        self.up = nn.ModuleList(nn.ConvTranspose3d(filters[i + 1], filters[i], 2, 2) for i in range(levels - 1))
        self.dec = nn.ModuleList(_ConvBlock3d(2 * filters[i], filters[i], 1) for i in range(levels - 1))
        self.out = nn.Conv3d(filters[0], classes, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], 1))
        return self.out(x)


# -- transformers --------------------------------------------------------------------------------------------------

class _Encoder(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, hidden):
        out = self.encoder(hidden)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state


def _transformer(figure) -> tuple[nn.Module, tuple, dict]:
    import transformers

    a = figure.arch
    name = str(a.get("name", figure.model)).lower()
    if "deberta" in name:
        cfg = transformers.DebertaV2Config(
            vocab_size=128203, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
            type_vocab_size=0, max_position_embeddings=max(512, figure.input_shape[0]), relative_attention=True,
            max_relative_positions=256, pos_att_type=["p2c", "c2p"])
        ids = torch.ones(figure.batch, figure.input_shape[0], dtype=torch.long)
        return transformers.DebertaV2ForSequenceClassification(cfg), (ids, ids), {}
    cfg = transformers.BertConfig(vocab_size=int(a.get("vocab", 30522)), hidden_size=a["hidden"],
                                  num_hidden_layers=a["layers"], num_attention_heads=a["heads"],
                                  intermediate_size=a["intermediate"], max_position_embeddings=512)
    if "encoder stack" in name:
        from transformers.models.bert.modeling_bert import BertEncoder

        hidden = torch.zeros(2, 16, a["hidden"])
        return _Encoder(BertEncoder(cfg)), (hidden,), {0: "batch", 1: "sequence"}
    model = transformers.BertForQuestionAnswering(cfg)
    ids = torch.ones(2, 16, dtype=torch.long)
    return model, (ids, ids), {0: "batch", 1: "sequence"}


def build(figure) -> tuple[nn.Module, tuple, dict]:
    """(the model at random weights in eval mode, example inputs, the dynamic dims of every input)."""
    torch.manual_seed(0)
    a, shape = figure.arch, list(figure.input_shape)
    name = str(a.get("name", figure.model)).lower()
    if figure.kind == "transformer_encoder":
        model, args, dims = _transformer(figure)
        return model.eval(), args, dims
    if figure.kind == "segmentation_3d":
        model: nn.Module = UNet3d(shape[0])
    elif figure.kind == "detection":
        model = RetinaNet(int(a.get("classes", 264)))
    elif "efficientnet-b4" in name:
        model = EfficientNet(1.4, 1.8)
    elif "efficientnet" in name:
        model = EfficientNet()
    elif "resnext101" in name:
        model = ResNet([3, 4, 23, 3], groups=32, width_per_group=4, se="se-" in name)
    else:
        model = ResNet([3, 4, 6, 3])
    return model.eval(), (torch.zeros(1, *shape),), {0: "batch"}


def export(figure, folder: Path) -> Path:
    """The figure's model exported to ONNX under ``folder`` (once per :func:`model_key`), dynamic batch
    (and sequence); torch's exporter traces with fake tensors, so a 128^3 volume costs no compute here."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_key(figure)}.onnx"
    if path.is_file():
        return path
    model, args, dims = build(figure)
    shapes = tuple({k: torch.export.Dim(v, min=1 if v == "batch" else 2) for k, v in dims.items()} for _ in args)
    shapes = shapes if dims else None
    tmp = path.with_suffix(".tmp.onnx")
    for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(tmp), dynamo=True, dynamic_shapes=shapes, opset_version=18,
                          external_data=True)
    for extra in folder.glob(tmp.name + ".data"):
        extra.rename(folder / (path.name + ".data"))
    _relink(tmp, path)
    return path


def _relink(tmp: Path, path: Path) -> None:
    """Point the graph at its renamed external-data file and move it into place."""
    import onnx

    proto = onnx.load(str(tmp), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = path.name + ".data"
    onnx.save(proto, str(path))
    tmp.unlink()


__all__ = ["EfficientNet", "ResNet", "RetinaNet", "UNet3d", "build", "export", "model_key", "symbolic_sequence"]
