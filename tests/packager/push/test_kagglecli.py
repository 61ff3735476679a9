"""What the Kaggle CLI's output means: success only where it says so, whatever its exit status."""

from __future__ import annotations

import pytest

from packager.push.kagglecli import (
    AUTH_HELP,
    Result,
    check_submit,
    check_upload,
    cli_version,
    dataset_state,
    find_cli,
    kernel_status,
    pushed_version,
)
from runtime.errors import KaggleError, PackagingError

pytestmark = pytest.mark.timeout(60)
NOT_FOUND = "Not found\n\nThe resource was not found. Check the spelling of the reference you passed.\n"


def r(output: str, code: int = 0) -> Result:
    return Result(("x",), code, output)


def test_version_and_a_missing_credential_at_version_time():
    assert cli_version(r("Kaggle CLI 2.2.5\n")) == "2.2.5"
    with pytest.raises(KaggleError, match="refused the credentials, or the Kaggle CLI has none"):
        cli_version(r(f"{AUTH_HELP}\n...\nKaggle CLI 2.2.5\n"))


def test_dataset_status():
    assert dataset_state(r('{"status": "ready", "current_version_number": 3}')) == ("ready", 3)
    assert dataset_state(r('{"status": "blobs_received"}')) == ("blobs_received", 0)
    assert dataset_state(r(NOT_FOUND, 1)) is None
    with pytest.raises(KaggleError, match="refused"):
        dataset_state(r(f"{AUTH_HELP}\n", 1))
    with pytest.raises(KaggleError, match="500 Server Error"):
        dataset_state(r("500 Server Error\n\nThis is a problem on Kaggle's side", 1))
    with pytest.raises(KaggleError, match="not the JSON asked for"):
        dataset_state(r("ready\n"))


def test_upload_succeeds_only_with_the_sentence_of_success():
    url = "https://www.kaggle.com/datasets/alice/digits"
    assert check_upload(r(f"Your private Dataset is being created. Please check progress at {url}\n"),
                        new=True, ref="alice/digits") == url
    assert check_upload(r(f"Dataset version is being created. Please check progress at {url}\n"),
                        new=False, ref="alice/digits") == url
    # The CLI exits 0 on these: still failures.
    with pytest.raises(KaggleError, match="was not created"):
        check_upload(r('Dataset creation error: The requested slug "digits" is already in use\n'), new=True,
                     ref="alice/digits")
    with pytest.raises(KaggleError, match="No new version of alice/digits was made"):
        check_upload(r("Dataset version creation error: files missing\n"), new=False, ref="alice/digits")
    with pytest.raises(KaggleError, match="Upload unsuccessful: models.zip"):
        check_upload(r("Starting upload for file models.zip\n 40%|####  | 4/10\nUpload unsuccessful: models.zip\n", 1),
                     new=True, ref="alice/digits")


def test_kernel_push():
    ok = "Kernel version 7 successfully pushed.  Please check progress at https://www.kaggle.com/code/alice/x\n"
    assert pushed_version(r(ok), "alice/x") == 7
    with pytest.raises(KaggleError, match="was not pushed"):
        pushed_version(r("Kernel push error: Notebook not found\n"), "alice/x")  # exit 0 in the CLI
    dropped = "The following are not valid dataset sources and could not be added to the kernel: ['alice/digits']\n"
    with pytest.raises(KaggleError, match=r"version 7 but did not attach dataset: \['alice/digits'\]"):
        pushed_version(r(dropped + ok), "alice/x")


def test_kernel_status_and_submit():
    assert kernel_status(r('alice/x/2 has status "KernelWorkerStatus.RUNNING"\n')) == ("running", "")
    assert kernel_status(r('alice/x has status "error"\nFailure message: "Notebook Threw Exception"\n')) == (
        "error", "Notebook Threw Exception")
    with pytest.raises(KaggleError, match="nothing was submitted"):
        kernel_status(r("404 Client Error\n", 1))
    assert "Submission ref: 12" in check_submit(r("Submission ref: 12\nSuccessfully submitted to c\n"), "c")
    with pytest.raises(KaggleError, match="Nothing was submitted to c"):
        check_submit(r("Could not find competition or notebook\n", 1), "c")


def test_an_explicit_cli_must_exist():
    with pytest.raises(PackagingError, match="not a program here"):
        find_cli("/nonexistent/kaggle")
    assert find_cli("python3 -m kaggle").argv == ("python3", "-m", "kaggle")
