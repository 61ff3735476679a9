"""The tabular example (examples/tabular): five LightGBM folds and an MLP, packaged and run through the CLI;
the submission must be exactly the labels of the blend the native libraries compute (LightGBM's own predict,
the torch MLP), computed here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.fixtures.tabular import read_submission

pytest.importorskip("onnxmltools")
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tabular"


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> Path:
    """A prepared copy of examples/tabular, smaller (1,500 training rows, 60 rounds a fold: seconds)."""
    dest = tmp_path_factory.mktemp("tabular") / "tabular"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("data", "boosters", "checkpoints", "work",
                                                                 "__pycache__"))
    subprocess.run([sys.executable, "prepare.py", "--train-rows", "1500", "--test-rows", "600", "--rounds", "60",
                    "--epochs", "15"], cwd=dest, check=True, capture_output=True)
    spec = dest / "ninefit.toml"
    spec.write_text(spec.read_text().replace("rounds = 100", "rounds = 30"))
    return dest


def _native_blend(folder: Path) -> tuple[list[str], np.ndarray]:
    """The blend as the libraries compute it: each fold's LightGBM predict, the MLP's softmax in torch, weighted."""
    import lightgbm as lgb
    import pandas as pd
    import torch

    from tests.fixtures.modules import load_module

    make_mlp = load_module(folder, "models").make_mlp
    prepare = load_module(folder, "prepare")
    CLASSES, FEATURES = prepare.CLASSES, prepare.FEATURES
    test = pd.read_csv(folder / "data" / "test.csv", dtype={"id": str})
    x = test[FEATURES]
    folds = [lgb.Booster(model_file=str(folder / "boosters" / f"lgb_fold{k}.txt")).predict(x) for k in range(5)]
    mlp = make_mlp()
    mlp.load_state_dict(torch.load(folder / "checkpoints" / "mlp.pt"))
    with torch.no_grad():
        net = torch.softmax(mlp.eval()(torch.tensor(np.nan_to_num(x.to_numpy(np.float32)))), dim=1).numpy()
    blend = (sum(folds) * 1.0 + net * 2.5) / (5 * 1.0 + 2.5)
    return [CLASSES[k] for k in blend.argmax(axis=1)], blend


def test_five_folds_and_a_net_give_the_native_blend_exactly(tabular, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert main(["package", str(tabular / "ninefit.toml"), "-o", str(bundle), "--no-wheels", "--no-profile"]) == 0
    manifest = Manifest.load(bundle)
    assert [m.name for m in manifest.members] == ["lgb0", "lgb1", "lgb2", "lgb3", "lgb4", "mlp"]
    assert [m.device for m in manifest.members] == ["cpu"] * 5 + [""]
    assert all(0.01 <= m.variants[1].value_factor < 1 for m in manifest.members[:5])
    out = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(tabular / "data"), "-o", str(out)]) == 0
    got = read_submission(out)
    labels, blend = _native_blend(tabular)
    top = np.sort(blend, axis=1)
    assert (top[:, -1] - top[:, -2]).min() > 1e-5  # no row so close to a tie that float32 could decide it
    assert list(got["label"]) == labels  # every row: the blend's own label
    assert len(got) == 600
