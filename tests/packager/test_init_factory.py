"""init = "factory": a factory that loads its own trained weights is packaged as trained, and said so; a
factory with neither a checkpoint nor an init is still refused."""

from __future__ import annotations

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(300)

MODELS = '''
import torch
from torch import nn


def make(weights: str):
    """Builds the net and loads this fold's trained weights itself, as many users' factories do."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.load_state_dict(torch.load(weights))
    return model
'''


def _project(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(3)
    trained = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    torch.save(trained.state_dict(), tmp_path / "fold0.pt")
    (tmp_path / "models.py").write_text(MODELS)
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    rows = "".join(f"{i}," + ",".join(f"{v:.6f}" for v in row) + "\n" for i, row in enumerate(x))
    (tmp_path / "test.csv").write_text("id,a,b,c,d\n" + rows)
    (tmp_path / "sample.csv").write_text("id,target\n" + "".join(f"{i},0\n" for i in range(30)))
    spec = tmp_path / "ninefit.toml"
    spec.write_text('[data]\ntest = "test.csv"\nid_column = "id"\nsample_submission = "sample.csv"\n\n'
                    '[[model]]\nname = "net"\nfactory = "models:make"\n'
                    f'factory_kwargs = {{ weights = "{tmp_path / "fold0.pt"}" }}\n'
                    'init = "factory"\n'
                    '  [[model.input]]\n  name = "x"\n  shape = ["batch", 4]\n  columns = ["a", "b", "c", "d"]\n')
    return spec, trained, x


def test_a_factory_that_loads_its_own_weights_is_reported_trained(tmp_path, capsys):
    import torch

    spec, trained, x = _project(tmp_path)
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile"]) == 0
    out = capsys.readouterr().out
    assert 'init = "factory": the factory models:make loads its own trained weights' in out
    assert "random initial weights" not in out
    member = Manifest.load(bundle).members[0]
    assert member.trained and member.init == "factory" and member.source == "factory"
    report = (bundle / "report.md").read_text()
    assert "| trained (loaded by the factory itself) |" in report and "Untrained" not in report
    sub = tmp_path / "s.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path), "-o", str(sub)]) == 0
    got = np.loadtxt(sub, delimiter=",", skiprows=1, usecols=1)
    with torch.no_grad():
        want = trained(torch.from_numpy(x)).numpy()[:, 0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_silent_case_is_still_refused(tmp_path, capsys):
    spec, _, _ = _project(tmp_path)
    spec.write_text(spec.read_text().replace('init = "factory"\n', ""))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "has no checkpoint, so the model would be packaged with random, untrained weights",
                  'init = "factory" when the factory loads its own trained weights')
    spec.write_text(spec.read_text().replace('factory = "models:make"\n',
                                             'factory = "models:make"\ninit = "factory"\ncheckpoint = "fold0.pt"\n'))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  'init = "factory" says the factory loads its own trained weights, but a checkpoint is given too')
