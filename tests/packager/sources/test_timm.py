"""A timm architecture with its trained checkpoint as an image member through the CLI: built without
downloading, the checkpoint loaded strictly, the image input from the pretrained config; a name timm does not
know and a checkpoint of another shape refused, the keys named.

timm imports torchvision, which must match the torch beside it: PyPI's torchvision wheels need a CUDA torch,
so beside the CPU torch `make test` installs these tests are skipped, saying why.
"""

from __future__ import annotations

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly
from tests.fixtures.images import IMAGE_DATA, write_images, write_index

try:
    import timm
except (ImportError, RuntimeError) as exc:  # RuntimeError: a torchvision built for another torch
    pytest.skip(f"timm does not import here ({type(exc).__name__}: {str(exc)[:120]}); it needs a torchvision "
                "matching this torch", allow_module_level=True)

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ARCH = "test_resnet"  # timm's own tiny test architecture


def _project(tmp_path, lines: str):
    files = write_images(tmp_path / "data" / "images", 6, size=(40, 48))
    write_index(tmp_path / "data", [f"i{k}" for k in range(6)], files, sample=["a", "b", "c"])
    spec = tmp_path / "ninefit.toml"
    spec.write_text(IMAGE_DATA + f'\n[[model]]\nname = "net"\ntimm = "{ARCH}"\nactivation = "softmax"\n'
                                 f'batch_size = 4\n{lines}')
    return spec


def _checkpoint(path, **kwargs):
    import torch

    torch.manual_seed(1)
    model = timm.create_model(ARCH, pretrained=False, **kwargs)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return model


def test_a_timm_model_packages_with_its_pretrained_config(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://host.invalid")  # a download would fail, not fetch
    model = _checkpoint(tmp_path / "net.pt", num_classes=3)
    spec = _project(tmp_path, 'checkpoint = "net.pt"\ntimm_kwargs = { num_classes = 3 }\n')
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile", "--target", "cpu"]) == 0
    member = Manifest.load(bundle).members[0]
    cfg = model.pretrained_cfg
    image = member.inputs[0].image
    assert member.source == "timm" and member.trained and member.inputs[0].name == "pixels"
    assert image.size == tuple(cfg["input_size"][1:]) and image.mean == pytest.approx(cfg["mean"])
    assert image.std == pytest.approx(cfg["std"])
    assert "trained (timm checkpoint)" in (bundle / "report.md").read_text()
    out = tmp_path / "s.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path / "data"), "-o", str(out)]) == 0
    got = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_an_unknown_name_and_a_checkpoint_that_does_not_match(tmp_path, capsys):
    import torch

    _checkpoint(tmp_path / "net.pt", num_classes=3)
    spec = _project(tmp_path, 'checkpoint = "net.pt"\ntimm_kwargs = { num_classes = 4 }\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "does not match the model timm 'test_resnet' builds", "of another shape")
    state = torch.load(tmp_path / "net.pt")
    state["extra.weight"] = torch.zeros(2)
    del state[next(iter(state))]
    torch.save(state, tmp_path / "net.pt")
    spec.write_text(spec.read_text().replace("num_classes = 4", "num_classes = 3"))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "missing 1:", "unexpected 1: extra.weight")
    spec.write_text(spec.read_text().replace(f'timm = "{ARCH}"', 'timm = "resnet_181"'))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "has no architecture 'resnet_181'; did you mean")
