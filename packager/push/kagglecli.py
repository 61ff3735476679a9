"""The official Kaggle CLI, run as a program, and what its output means.

ninefit never talks to Kaggle itself and never reads, stores or prints a
credential: every call is ``kaggle ...`` (the pinned ``kaggle`` package of the
``[kaggle]`` extra, run as ``python -m kaggle`` from ninefit's environment, or
the ``kaggle`` on ``PATH``) with ninefit's environment passed through, so the
CLI authenticates as it always does (``KAGGLE_API_TOKEN``, ``~/.kaggle``,
``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``KAGGLE_CONFIG_DIR``) and its endpoint is
the CLI's own (``KAGGLE_API_ENVIRONMENT``, proxies).

The CLI (2.2.5) exits 0 on some failures (``Dataset creation error: ...``,
``Kernel push error: ...``) and reports others only in words, so each step's
output is read for the sentence of success, never trusted by its exit status
alone. Parsers here turn that output into facts or a :class:`KaggleError`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from runtime.errors import KaggleError, PackagingError

#: The Kaggle CLI ninefit is tested with (the ``[kaggle]`` extra pins it).
PINNED_CLI = "2.2.5"
#: What the CLI prints when it has no credential or Kaggle refused it (HTTP 401).
AUTH_HELP = "Authentication required to call the Kaggle API."
_NOT_FOUND = "The resource was not found."
_PROGRESS = re.compile(r"\d+%\|")  # the CLI's upload progress bars (tqdm)


@dataclass(frozen=True)
class Result:
    """One finished CLI call: its arguments, exit status and output (stdout and stderr merged)."""

    args: tuple[str, ...]
    code: int
    output: str

    @property
    def refused(self) -> bool:
        """The CLI has no credential, or Kaggle refused the one it sent (its instructions are in the output)."""
        return AUTH_HELP in self.output

    def excerpt(self, lines: int = 6) -> str:
        text = [ln.strip() for ln in self.output.splitlines()
                if ln.strip() and AUTH_HELP not in ln and not _PROGRESS.search(ln)]
        return " | ".join(text[-lines:]) or "(no output)"


@dataclass(frozen=True)
class KaggleCli:
    """How to start the Kaggle CLI here.

    Attributes:
        argv: The program (``(python, "-m", "kaggle")`` or ``("/usr/bin/kaggle",)``).
        where: Where it was found, for the log.
    """

    argv: tuple[str, ...]
    where: str

    @staticmethod
    def shown(args: Sequence[str]) -> str:
        """The command as a user would type it: ``kaggle datasets status alice/digits``."""
        return shlex.join(["kaggle", *args])

    def run(self, args: Sequence[str], echo: Callable[[str], None], timeout: float = 3600.0) -> Result:
        """Runs ``kaggle ARGS``, echoing each line of its output as it comes."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, env=env, errors="replace")
        except OSError as exc:
            raise KaggleError(f"Cannot start the Kaggle CLI ({' '.join(self.argv)}): {exc}. Nothing more was "
                              "sent.") from exc
        lines = []
        with proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                echo(f"    | {line.rstrip()}")
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        return Result(tuple(args), code, "".join(lines))


def find_cli(explicit: str | None = None) -> KaggleCli:
    """The Kaggle CLI: ``explicit`` (a command), else ninefit's own ``kaggle`` package, else ``PATH``.

    Raises:
        PackagingError: None is installed (with how to install it).
    """
    if explicit:
        argv = tuple(shlex.split(explicit))
        if not argv or shutil.which(argv[0]) is None:
            raise PackagingError(f"--kaggle-cli {explicit!r}: {argv[0] if argv else 'nothing'} is not a program "
                                 "here. Expected the Kaggle CLI's command, e.g. 'kaggle' or '/path/to/kaggle'.")
        return KaggleCli(argv, f"--kaggle-cli {explicit}")
    if importlib.util.find_spec("kaggle") is not None:
        return KaggleCli((sys.executable, "-m", "kaggle"), f"{sys.executable} -m kaggle")
    found = shutil.which("kaggle")
    if found:
        return KaggleCli((found,), found)
    raise PackagingError(
        "The Kaggle CLI is not installed. Expected `pip install \"ninefit[kaggle]\"` (the official `kaggle` "
        f"package, {PINNED_CLI}) in ninefit's environment, or a `kaggle` on PATH; `--dry-run` works without it.")


def _fail(step: str, result: Result, what: str) -> KaggleError:
    if result.refused:
        return KaggleError(f"{step}: Kaggle refused the credentials, or the Kaggle CLI has none (its instructions "
                           f"are printed above). {what}")
    return KaggleError(f"{step} failed (exit {result.code}): {result.excerpt()}. {what}")


def cli_version(result: Result) -> str:
    """``2.2.5`` from ``kaggle --version``; a missing credential already shows here.

    Raises:
        KaggleError: The CLI did not run, or has no credential.
    """
    match = re.search(r"Kaggle (?:CLI|API) (\S+)", result.output)
    if result.refused or result.code != 0 or not match:
        raise _fail("kaggle --version", result, "Nothing was sent.")
    return match.group(1)


def dataset_state(result: Result) -> tuple[str, int] | None:
    """``(status, current version)`` from ``kaggle datasets status REF --format json(...)``; None: no such dataset.

    Raises:
        KaggleError: Refused credentials, or any other failure.
    """
    if result.code != 0:
        if _NOT_FOUND in result.output and not result.refused:
            return None
        raise _fail("kaggle datasets status", result, "Nothing was sent.")
    try:
        data = json.loads(result.output.strip().splitlines()[-1])
        return str(data["status"]).lower(), int(data.get("current_version_number") or 0)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise KaggleError(f"kaggle datasets status printed {result.excerpt()!r}, not the JSON asked for ({exc}). "
                          f"Expected Kaggle CLI {PINNED_CLI} (`pip install \"ninefit[kaggle]\"`).") from exc


def check_upload(result: Result, *, new: bool, ref: str) -> str:
    """The URL Kaggle gave a created dataset or new version.

    Raises:
        KaggleError: The upload or the creation failed (the CLI exits 0 on some of these).
    """
    ok = re.search(r"(?:Dataset is being created|Dataset version is being created)\. Please check progress at (\S+)",
                   result.output)
    if result.code != 0 or result.refused or not ok:
        what = (f"The dataset {ref} was not created" if new else f"No new version of {ref} was made; Kaggle keeps "
                "the previous one") + ": nothing was sent after it (the notebook was not pushed)."
        raise _fail("kaggle datasets " + ("create" if new else "version"), result, what)
    return ok.group(1)


def pushed_version(result: Result, ref: str) -> int:
    """The notebook version ``kaggle kernels push`` made.

    Raises:
        KaggleError: The push failed, or Kaggle did not attach a source the
            notebook needs (it would fail on Kaggle).
    """
    match = re.search(r"Kernel version (\d+) successfully pushed", result.output)
    if result.code != 0 or result.refused or not match:
        raise _fail("kaggle kernels push", result, f"The notebook {ref} was not pushed (the dataset upload above "
                    "stands).")
    dropped = re.findall(r"The following are not valid (\w+) sources and could not be added to the kernel: (.*)",
                         result.output)
    if dropped:
        lost = "; ".join(f"{kind}: {names.strip()}" for kind, names in dropped)
        raise KaggleError(f"Kaggle saved notebook {ref} version {match.group(1)} but did not attach {lost}: that "
                          "version cannot find its inputs, so it is not submitted. Check the names (and that the "
                          "dataset is ready), then push again.")
    return int(match.group(1))


def kernel_status(result: Result) -> tuple[str, str]:
    """``(status, failure message)`` from ``kaggle kernels status REF``, status lowercase (``complete``).

    Raises:
        KaggleError: The CLI failed.
    """
    match = re.search(r'has status "(?:KernelWorkerStatus\.)?(\w+)"', result.output)
    if result.code != 0 or result.refused or not match:
        raise _fail("kaggle kernels status", result, "The notebook version stands; nothing was submitted.")
    failure = re.search(r'Failure message: "(.*)"', result.output)
    return match.group(1).lower(), failure.group(1) if failure else ""


def check_submit(result: Result, competition: str) -> str:
    """Kaggle's answer to ``kaggle competitions submit`` (its message and submission ref).

    Raises:
        KaggleError: The submission was not made.
    """
    if result.code != 0 or result.refused:
        raise _fail("kaggle competitions submit", result, f"Nothing was submitted to {competition}.")
    return result.excerpt(3)


__all__ = ["AUTH_HELP", "PINNED_CLI", "KaggleCli", "Result", "check_submit", "check_upload", "cli_version",
           "dataset_state", "find_cli", "kernel_status", "pushed_version"]
