"""The evaluation-API notebook: its cells, a plain ``predict``, and the serve()/run_local_gateway branches.

The notebook's code cells are run as one script in a process of their own
(as a kernel would run them, the bundle's vendored runtime imported), with a
competition package written here standing in for Kaggle's
``kaggle_evaluation``: its server class records what the notebook handed it
and what it called.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from packager.cli import main
from packager.offline.notebook import PARAMETERS_TAG, build_notebook, write_notebook
from packager.offline.serve_notebook import SERVE_TAG
from runtime.errors import PackagingError
from tests.packager.offline.conftest import serve_variant

pytestmark = pytest.mark.timeout(300)
SERVER = "kaggle_evaluation.digits_inference_server:DigitsInferenceServer"
#: Kaggle's package, as far as the notebook sees it: a server class taking predict, serve(), run_local_gateway().
FAKE_SERVER = '''
import json, os, types
import polars as pl


class DigitsInferenceServer:
    def __init__(self, *listeners):
        (fn,) = listeners
        self.fn = fn
        self.record = {"plain_function": isinstance(fn, types.FunctionType), "name": fn.__name__}

    def serve(self):
        self.record["served"] = True
        self._write()

    def run_local_gateway(self, data_paths=None):
        self.record["paths"] = list(data_paths)
        test, sample = pl.read_csv(data_paths[0]), pl.read_csv(data_paths[1])
        out = self.fn(test[:5], sample[:5])
        self.record["answer"] = out.to_dicts()
        self._write()

    def _write(self):
        with open(os.environ["FAKE_SERVER_RECORD"], "w") as f:
            json.dump(self.record, f)
'''


@pytest.fixture
def competition(digits_dir, tmp_path) -> Path:
    """The digits data with the fake kaggle_evaluation package beside it."""
    d = tmp_path / "competition"
    shutil.copytree(digits_dir / "data", d)
    (d / "kaggle_evaluation").mkdir()
    (d / "kaggle_evaluation" / "__init__.py").write_text("")
    (d / "kaggle_evaluation" / "digits_inference_server.py").write_text(FAKE_SERVER)
    return d


@pytest.fixture
def bundle(served_bundle, tmp_path) -> Path:
    return serve_variant(served_bundle, tmp_path / "bundle", server=SERVER,
                         gateway_paths=["test.csv", "sample_submission.csv"])


def code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def run_cells(nb, tmp_path: Path, bundle: Path, data: Path, **env: str) -> subprocess.CompletedProcess:
    """The notebook's code cells as one script, in a process of its own, pointed at ``bundle`` and ``data``."""
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(c.source for c in code(nb)))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NINEFIT_", "KAGGLE_"))}
    environ.update(NINEFIT_BUNDLE_DIR=str(bundle), NINEFIT_DATA_DIR=str(data), NINEFIT_TIME_LIMIT="10m",
                   NINEFIT_SERVE_REPORT=str(tmp_path / "serve_report.jsonl"),
                   FAKE_SERVER_RECORD=str(tmp_path / "record.json"), **env)
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=240)


def test_the_serving_notebook_has_its_cells_and_a_plain_predict(bundle):
    nb = build_notebook(bundle, competition="digits", time_limit="9h")
    nbformat.validate(nb)
    cells = code(nb)
    assert [c.id for c in cells] == ["ninefit-parameters", "ninefit-install", "ninefit-serve"]
    assert PARAMETERS_TAG in cells[0].metadata.tags and SERVE_TAG in cells[2].metadata.tags
    assert cells[0].source.startswith("import time\n\nNINEFIT_START = time.time()")
    for name in ("BUNDLE_DIR", "DATA_DIR", "TIME_LIMIT", "TARGET", "BACKEND", "REPORT"):
        assert f"\n{name} = os.environ.get(" in cells[0].source
    assert ("DATA_DIR = _find_input(DATA_DIR, 'test.csv' if os.environ.get('NINEFIT_SERVE_STANDIN') == '1' "
            "else 'kaggle_evaluation')") in cells[1].source
    assert "_install_wheels(BUNDLE_DIR)" in cells[1].source
    tree = ast.parse(cells[2].source)
    predict = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "predict"]
    assert len(predict) == 1  # a plain, module-level function named predict: what every server version takes
    args = predict[0].args
    assert (args.vararg.arg, args.kwarg.arg, args.args) == ("args", "kwargs", [])
    branch = [n for n in tree.body if isinstance(n, ast.If)][-1]
    assert branch is tree.body[-1]  # nothing after the branch: on the rerun nothing after serve() runs
    assert "KAGGLE_IS_COMPETITION_RERUN" in ast.unparse(branch.test)
    assert ast.unparse(branch.body[-1]) == "server.serve()"  # the rerun: serve() is the last thing that runs
    assert "_local_gateway(server, DATA_DIR, SERVE.gateway_paths)" in ast.unparse(branch.orelse)
    assert nb.metadata.ninefit["serve"] is True


def test_off_the_rerun_the_competitions_local_gateway_runs_on_the_public_paths(bundle, competition, tmp_path):
    nb = build_notebook(bundle, time_limit="10m")
    done = run_cells(nb, tmp_path, bundle, competition)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["plain_function"] and record["name"] == "predict" and "served" not in record
    assert record["paths"] == [str(competition / "test.csv"), str(competition / "sample_submission.csv")]
    first = (competition / "test.csv").read_text().splitlines()[1:6]
    assert [r["id"] for r in record["answer"]] == [line.split(",")[0] for line in first]  # the batch's rows, in order
    assert set(record["answer"][0]) == {"id", "label"}
    assert f"inference server: kaggle_evaluation.digits_inference_server.DigitsInferenceServer from {competition}" \
        in done.stdout
    calls = (tmp_path / "serve_report.jsonl").read_text().splitlines()
    assert len(calls) == 1 and json.loads(calls[0])["rows"] == 5  # the predictor's report, where REPORT says


def test_on_the_rerun_serve_is_called(bundle, competition, tmp_path):
    done = run_cells(build_notebook(bundle, time_limit="10m"), tmp_path, bundle, competition,
                     KAGGLE_IS_COMPETITION_RERUN="1")
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["served"] and "paths" not in record


def test_a_server_module_that_does_not_import_fails_naming_it_and_the_folder(bundle, competition, tmp_path):
    (competition / "kaggle_evaluation" / "digits_inference_server.py").unlink()
    done = run_cells(build_notebook(bundle, time_limit="10m"), tmp_path, bundle, competition)
    assert done.returncode != 0
    assert "ImportError: cannot import 'kaggle_evaluation.digits_inference_server', the competition's inference " \
           "server module" in done.stderr
    assert f"from {competition}" in done.stderr
    assert not (tmp_path / "record.json").exists()  # never a silent stand-in on Kaggle


def test_without_the_competitions_package_the_data_folder_is_not_found(bundle, competition, tmp_path):
    shutil.rmtree(competition / "kaggle_evaluation")
    done = run_cells(build_notebook(bundle, time_limit="10m"), tmp_path, bundle, competition)
    assert done.returncode != 0
    assert f"FileNotFoundError: {competition} has no kaggle_evaluation" in done.stderr


def test_the_stand_in_serves_only_where_asked(bundle, competition, tmp_path):
    done = run_cells(build_notebook(bundle, time_limit="10m"), tmp_path, bundle, competition,
                     NINEFIT_SERVE_STANDIN="1")
    assert done.returncode == 0, done.stderr
    assert "inference server: ninefit's stand-in" in done.stdout and "no local gateway" in done.stdout
    assert not (tmp_path / "record.json").exists()


def test_the_cli_writes_the_serving_notebook_and_refuses_a_margin(bundle, tmp_path, capsys):
    out = tmp_path / "serve.ipynb"
    assert main(["notebook", str(bundle), "-o", str(out), "--competition", "digits"]) == 0
    nb = nbformat.read(str(out), as_version=4)
    assert code(nb)[-1].id == "ninefit-serve" and "'/kaggle/input/digits'" in code(nb)[0].source
    with pytest.raises(PackagingError, match="a serving bundle keeps the runtime's margin"):
        write_notebook(bundle, tmp_path / "x.ipynb", margin="10m")
