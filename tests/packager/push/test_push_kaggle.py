"""`ninefit push` driving the real Kaggle CLI (the pinned `kaggle` package) against Kaggle on loopback.

Each test runs the whole command: the CLI is started as a program, sends its
requests to the stand-in (tests/packager/push/kaggle_standin.py), and the test
reads what the stand-in received and what ninefit printed. Credentials are the
CLI's own (KAGGLE_USERNAME / KAGGLE_KEY set for it by the fixture).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from packager.cli import main
from tests.packager.push.kaggle_standin import Dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(importlib.util.find_spec("kaggle") is None,
                       reason="the Kaggle CLI is not installed (pip install -e '.[test]' pins it)"),
]

COMPETITION = "digit-recognizer"
KERNEL = "alice/digit-recognizer-ninefit"


def push(bundle: Path, tmp_path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    argv = ["push", str(bundle), "--competition", COMPETITION, "--notebook", str(tmp_path / "nb" / "submission.ipynb"),
            "--poll-interval", "0.05", *extra]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_new_dataset_is_created_made_ready_and_the_notebook_pushed(bundle, tmp_path, capsys, kaggle):
    code, out, err = push(bundle, tmp_path, capsys)
    assert code == 0, out + err
    # The dataset: created private, every top-level entry of the bundle uploaded (folders as zips), processed.
    ds = kaggle.datasets["alice/digits"]
    assert ds.private and ds.version == 1 and ds.title == "digits"
    entries = {p.name for p in bundle.iterdir()} - {"dataset-metadata.json"}
    assert len(ds.files[0]) == len(entries) and all(kaggle.blobs[t] > 0 for t in ds.files[0])
    # The notebook was pushed only after the new version was ready, and only once.
    methods = kaggle.methods()
    assert methods.count("SaveKernel") == 1 and "CreateDatasetVersion" not in methods
    first_ready = max(i for i, (m, _) in enumerate(kaggle.calls) if m == "GetDataset")
    assert methods.index("SaveKernel") > first_ready
    # What Kaggle received for the notebook, field by field.
    saved = kaggle.kernels[KERNEL].versions[0]
    assert saved["slug"] == KERNEL and saved["newTitle"] == "digit recognizer ninefit"
    assert saved["language"] == "python" and saved["kernelType"] == "notebook"
    assert saved["isPrivate"] is True and saved["enableGpu"] is True and saved.get("enableInternet", False) is False
    assert saved["machineShape"] == "NvidiaTeslaT4"
    assert saved["datasetDataSources"] == ["alice/digits"] and saved["competitionDataSources"] == [COMPETITION]
    nb = json.loads(saved["text"])
    params = next(c["source"] for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "'/kaggle/input/digits'" in params and f"'/kaggle/input/{COMPETITION}'" in params and "'t4x2'" in params
    # Nothing submitted; the exact command printed; each step printed as it ran.
    assert not kaggle.submissions and "CreateCodeSubmission" not in methods
    assert (f"kaggle competitions submit -c {COMPETITION} -k {KERNEL} -v 1 -f submission.csv "
            "-m 'ninefit push, version 1'") in out
    for step in ("$ kaggle --version", "$ kaggle datasets status alice/digits", "$ kaggle datasets create -p",
                 "dataset: version 1 is ready", "$ kaggle kernels push -p", "sent: dataset alice/digits: created"):
        assert step in out, step


def test_existing_dataset_gets_a_new_version_and_a_stale_ready_is_waited_out(bundle, tmp_path, capsys, kaggle):
    kaggle.datasets["alice/digits"] = Dataset("digits", version=1, files=[["old"]])
    kaggle.processing_polls, kaggle.stale_ready_polls = 3, 1  # first says "ready" (version 1), then processing
    code, out, err = push(bundle, tmp_path, capsys, "-m", "second try")
    assert code == 0, out + err
    methods = kaggle.methods()
    assert "CreateDataset" not in methods and methods.count("CreateDatasetVersion") == 1
    body = next(b for m, b in kaggle.calls if m == "CreateDatasetVersion")
    assert body["body"]["versionNotes"] == "second try"
    assert kaggle.datasets["alice/digits"].version == 2
    assert "ready, version 1; waiting for version 2" in out  # the stale answer did not count
    # SaveKernel came after the status that showed version 2.
    status_calls = [i for i, (m, _) in enumerate(kaggle.calls) if m == "GetDataset"]
    assert methods.index("SaveKernel") > status_calls[-1]
    assert "-v 1 -f submission.csv -m 'second try'" in out


def test_submit_waits_for_the_run_then_submits_that_version(bundle, tmp_path, capsys, kaggle):
    code, out, err = push(bundle, tmp_path, capsys, "--submit")
    assert code == 0, out + err
    assert [b["kernelVersion"] for b in kaggle.submissions] == [1]
    sub = kaggle.submissions[0]
    assert sub["competitionName"] == COMPETITION and sub["kernelSlug"] == "digit-recognizer-ninefit"
    assert sub["fileName"] == "submission.csv"
    polls = [b for m, b in kaggle.calls if m == "GetKernelSessionStatus"]
    assert len(polls) == 3 and all(b["versionLabel"] == "v1" for b in polls)
    assert "Submission ref: 1001" in out and "notebook: version 1 ran to completion" in out


def test_a_failed_run_is_not_submitted(bundle, tmp_path, capsys, kaggle):
    kaggle.kernel_error = "Notebook Threw Exception"
    code, out, err = push(bundle, tmp_path, capsys, "--submit")
    assert code == 1
    assert not kaggle.submissions and "CreateCodeSubmission" not in kaggle.methods()
    assert "ended error on Kaggle: Notebook Threw Exception" in err and "Not submitted" in err
    assert "Sent: dataset alice/digits: created" in err and "notebook alice/digit-recognizer-ninefit version 1" in err


def test_a_refused_credential_stops_before_anything_is_sent(bundle, tmp_path, capsys, kaggle, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "revoked-key")
    code, out, err = push(bundle, tmp_path, capsys)
    assert code == 1 and "Traceback" not in err
    assert "Kaggle refused the credentials" in err and "Nothing was sent" in err
    assert "Authentication required to call the Kaggle API." in out  # the CLI's own instructions
    assert kaggle.methods() == ["GetDatasetStatus"] and not kaggle.blobs and not kaggle.datasets
    assert "sent:" not in out


def test_a_missing_credential_gets_the_clis_instructions(bundle, tmp_path, capsys, kaggle, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    code, out, err = push(bundle, tmp_path, capsys)
    assert code == 1
    assert "kaggle auth login" in out and "https://www.kaggle.com/settings/api" in out
    assert "Kaggle refused the credentials, or the Kaggle CLI has none" in err
    assert kaggle.calls == []  # stopped at `kaggle --version`


def test_a_failed_upload_creates_nothing_and_pushes_nothing(bundle, tmp_path, capsys, kaggle):
    kaggle.fail_uploads = True
    code, out, err = push(bundle, tmp_path, capsys)
    assert code == 1 and "Traceback" not in err
    methods = kaggle.methods()
    assert "PUT" in methods and "CreateDataset" not in methods and "SaveKernel" not in methods
    assert not kaggle.datasets and not kaggle.kernels
    assert "kaggle datasets create failed" in err and "The dataset alice/digits was not created" in err
    assert "Upload unsuccessful" in err
    assert "sent:" not in out and "is ready" not in out
