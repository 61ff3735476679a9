"""ninefit's targets as Kaggle's machine shapes, from the image file; the P100 policy; the estimate names the shape."""

from __future__ import annotations

import json
import re

import pytest

from packager.cli import main
from packager.estimate.price.hardware import TARGETS, get_target
from packager.offline.image import image_facts
from packager.push.shapes import accelerator, kaggle_targets, target_of_shape
from runtime.errors import PackagingError

pytestmark = pytest.mark.timeout(120)

SHAPES = {"t4x2": "NvidiaTeslaT4", "p100": "NvidiaTeslaP100", "l4": "NvidiaL4", "a100": "NvidiaTeslaA100",
          "h100": "NvidiaH100", "rtxpro6000": "NvidiaRtxPro6000"}


def test_every_kaggle_target_has_its_shape_in_the_image_file():
    facts = image_facts()
    assert set(facts.shapes) == set(TARGETS) - {"local"}  # no target forgotten, no stray one
    assert kaggle_targets() == tuple(t for t in TARGETS if t != "local")
    assert {t: s for t, s in facts.shapes.items() if s} == SHAPES
    assert facts.shapes["cpu"] is None and facts.shapes["l4x4"] is None
    for target, shape in SHAPES.items():
        assert target_of_shape(shape) == target and target_of_shape(shape.lower()) == target
        assert facts.sources[f"shape.{target}"], target


@pytest.mark.parametrize("target", ["t4x2", "l4", "a100", "h100", "rtxpro6000"])
def test_gpu_targets_ask_for_their_shape(target):
    acc = accelerator(target)
    assert acc.machine_shape == SHAPES[target] and acc.enable_gpu and not acc.notes


def test_cpu_is_a_notebook_without_gpu_or_shape():
    acc = accelerator("cpu")
    assert acc.machine_shape is None and not acc.enable_gpu and "CPU notebook" in acc.line()
    with pytest.raises(PackagingError, match="no machine shape"):
        accelerator("cpu", machine_shape="NvidiaTeslaT4")


def test_p100_is_refused_on_the_current_image_with_the_reason():
    assert get_target("p100").compute_capability < image_facts().min_gpu_capability
    with pytest.raises(PackagingError) as err:
        accelerator("p100")
    for needle in ("Refusing target 'p100'", "sm_60", "no Pascal", "--docker-image"):
        assert needle in str(err.value), needle
    acc = accelerator("p100", docker_image="gcr.io/kaggle-gpu-images/python:v150")
    assert acc.machine_shape == "NvidiaTeslaP100"
    assert any("pins the image" in n for n in acc.notes) and any("retired" in n for n in acc.notes)


def test_l4x4_needs_a_shape_and_a_shape_must_be_its_targets():
    with pytest.raises(PackagingError, match="no machine shape for target 'l4x4'"):
        accelerator("l4x4")
    assert accelerator("l4x4", machine_shape="NvidiaL4X4").machine_shape == "NvidiaL4X4"
    with pytest.raises(PackagingError, match="shape for target 't4x2'"):
        accelerator("h100", machine_shape="NvidiaTeslaT4")


@pytest.mark.parametrize("target", ["local", "v100", ""])
def test_not_a_kaggle_target(target):
    with pytest.raises(PackagingError, match="not a Kaggle accelerator"):
        accelerator(target)


def test_estimate_names_the_machine_shape_it_priced(digits_bundle, capsys):
    main(["estimate", str(digits_bundle), "--target", "l4", "--rows", "2000"])
    header = capsys.readouterr().out.splitlines()[0]
    assert re.search(r"on NVIDIA L4 \(l4, Kaggle machine shape NvidiaL4\)", header), header
    main(["estimate", str(digits_bundle), "--target", "cpu", "--rows", "2000", "--json"])
    assert json.loads(capsys.readouterr().out)["machine_shape"] is None
    main(["estimate", str(digits_bundle), "--target", "t4x2", "--rows", "2000", "--json"])
    assert json.loads(capsys.readouterr().out)["machine_shape"] == "NvidiaTeslaT4"


def test_packaging_for_p100_warns_why_and_that_push_refuses_it(digits_dir, tmp_path, capsys):
    from packager.push.shapes import unsupported_gpu

    assert unsupported_gpu("t4x2") == "" and unsupported_gpu("cpu") == "" and "sm_60" in unsupported_gpu("p100")
    assert main(["package", str(digits_dir / "ninefit.toml"), "-o", str(tmp_path / "b"), "--target", "p100",
                 "--no-wheels", "--no-profile", "--kaggle-owner", "alice"]) == 0
    out = capsys.readouterr().out
    assert "warning: NVIDIA P100 (sm_60) is below the lowest GPU" in out and "`ninefit push` refuses it" in out
