"""A damaged file under the bundle's hooks/ is the user's code or data modified: it never runs, and costs what it feeds.

Through the CLI: the features hook's module or side file takes out the hook
and the members its columns feed (a member reading only the table's own
columns still runs); the postprocess hook's module takes out the formatting of
every row (the submission is the fallback's) and is never imported; a helper
file under hooks/ counts against both hooks. Nothing is called harmless.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime.cli import main
from tests.fixtures import projects

pytestmark = pytest.mark.timeout(300)

_SECOND_MODEL = '''
[[model]]
name = "raw"
factory = "tests.fixtures.models:linear"
factory_kwargs = { n_in = 1, n_out = 1 }
checkpoint = "raw.pt"
batch_size = 4
  [[model.input]]
  name = "x"
  shape = ["batch", 1]
  columns = ["sales"]
'''


def _package(spec: Path, out: Path) -> Path:
    from packager.build import package

    package(spec, out)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    """The groupby project with a second member reading only the table's own column: (project, bundle)."""
    folder = tmp_path_factory.mktemp("stores") / "p"
    spec, _ = projects.make_groupby(folder, extra_data="")
    spec.write_text(spec.read_text() + _SECOND_MODEL)
    projects.linear_checkpoint(folder / "raw.pt", [[1.0]])
    return folder, _package(spec, folder.parent / "bundle")


@pytest.fixture(scope="module")
def post(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("post") / "p"
    spec, _ = projects.make_postprocess(folder)
    return folder, _package(spec, folder.parent / "bundle")


def _damaged_copy(bundle: Path, dest: Path, rel: str, text: str) -> Path:
    import shutil

    shutil.copytree(bundle, dest)
    path = dest / rel
    path.write_text(path.read_text() + text)
    return dest


def _run(bundle: Path, data: Path, tmp_path: Path, capsys) -> tuple[int, str, dict, list[str]]:
    out = tmp_path / "submission.csv"
    code = main(["run", str(bundle), "--data", str(data), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    return code, err, report, out.read_text().splitlines()


@pytest.mark.parametrize("rel", ["hooks/features.py", "hooks/lookup/stores.csv"])
def test_damaged_features_code_or_data_removes_the_hook_and_the_members_it_feeds(stores, rel, tmp_path, capsys):
    folder, bundle = stores
    marker = tmp_path / "hook-ran"
    extra = f"\nfrom pathlib import Path as _P\n_P({str(marker)!r}).write_text('ran')\n" if rel.endswith(".py") \
        else "Z,9\n"
    damaged = _damaged_copy(bundle, tmp_path / "bundle", rel, extra)
    code, err, report, lines = _run(damaged, folder / "data", tmp_path, capsys)
    assert code == 1, err
    assert not marker.exists()  # the modified hook never ran
    assert f"DAMAGED BUNDLE FILE {rel}: modified" in err and "the features hook" in err
    assert "nothing the run reads" not in err
    (entry,) = report["damage"]
    assert entry["file"] == rel and "the features hook" in entry["effect"] and "member 'lin'" in entry["effect"]
    assert "member 'raw'" not in entry["effect"]
    status = {m["name"]: (m["status"], m.get("reason", "")) for m in report["members"]}
    assert status["lin"][0] == "failed" and rel in status["lin"][1]
    assert status["raw"][0] == "done"  # it reads no column of the hook: it still runs, on every row
    assert report["covered_rows"] == report["rows"] == 24
    sales = {r[0]: r[2] for r in projects.store_rows()}
    assert lines[1:] == [f"{i},{float(np.float32(s)):.9g}" for i, s in sales.items()]  # raw's prediction: sales


def test_a_damaged_postprocess_hook_is_never_imported_and_every_row_falls_back(post, tmp_path, capsys):
    folder, bundle = post
    marker = tmp_path / "hook-imported"
    damaged = _damaged_copy(bundle, tmp_path / "bundle", "hooks/post.py",
                            f"\nfrom pathlib import Path as _P\n_P({str(marker)!r}).write_text('imported')\n")
    code, err, report, lines = _run(damaged, folder / "data", tmp_path, capsys)
    assert code == 1 and not marker.exists()
    assert "the postprocess hook, which writes every row" in err
    assert [m["status"] for m in report["members"]] == ["failed"]
    assert report["covered_rows"] == 0
    assert lines[0] == "id,p" and {line.split(",")[1] for line in lines[1:]} == {"0.5"}  # the sample's values


def test_a_damaged_helper_file_under_hooks_counts_against_every_hook(stores):
    from runtime.bundle import check_files
    from runtime.manifest import Manifest

    _, bundle = stores
    manifest = Manifest.load(bundle)
    files = dict(manifest.files, **{"hooks/helper.py": "0" * 64})
    from dataclasses import replace

    damage = check_files(bundle, replace(manifest, files=files))  # listed, missing on disk
    (entry,) = damage.files
    assert entry.features and not entry.postprocess and entry.members == ("lin",)
    assert damage.usable(manifest).data.features == ""
