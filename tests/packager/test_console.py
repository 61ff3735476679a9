"""The packager's progress goes through logging (ninefit.package, .profile, .push): silent as a library, on stdout
from the ``ninefit`` command, as it was printed before."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]

# A leftover of a `ninefit package` that was killed (its process is gone): sweeping it logs one line.
SWEEP = """
import subprocess, sys
from pathlib import Path
from packager.build import _sweep_leftovers
dest = Path(sys.argv[1])
def leftover(tag="x"):
    gone = subprocess.Popen([sys.executable, "-c", "pass"]); gone.wait()
    (dest.parent / f".{dest.name}.tmp-{gone.pid}-{tag}").mkdir(parents=True, exist_ok=True)
leftover()
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=100)


def test_as_a_library_the_packager_says_nothing_unless_told(tmp_path):
    quiet = _python(SWEEP + "_sweep_leftovers(dest)\n", str(tmp_path / "a" / "bundle"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""
    told = _python("import logging\nlogging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')\n" + SWEEP
                   + "_sweep_leftovers(dest)\n", str(tmp_path / "b" / "bundle"))
    assert told.stderr.startswith("ninefit.package: removed .bundle.tmp-") and "killed before it finished" in told.stderr


def test_the_command_shows_the_progress_on_stdout_as_printed(tmp_path):
    shown = _python(SWEEP + "from packager.cli.console import show_progress, silenced\nshow_progress()\nshow_progress()\n"
                    "_sweep_leftovers(dest)\nleftover('y')\nwith silenced():\n    _sweep_leftovers(dest)\n"
                    "assert not list(dest.parent.glob('.bundle.tmp-*'))\n",
                    str(tmp_path / "c" / "bundle"))
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()  # once, however often the handler was asked for; none while silenced
    assert line.startswith("removed .bundle.tmp-") and line.endswith("killed before it finished") and not shown.stderr
