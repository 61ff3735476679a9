"""A duration without its unit is refused by every command that takes one (``--time-limit 9`` was 9 seconds,
silently), with a message asking for the unit; and the notebook always carries its limit with a unit."""

from __future__ import annotations

import pytest

from packager.cli import main
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("command, flag", [
    ("estimate", "--time-limit"), ("estimate", "--margin"), ("run", "--time-limit"), ("run", "--margin"),
    ("run", "--reserve"), ("notebook", "--time-limit"), ("notebook", "--margin"), ("simulate", "--time-limit"),
])
def test_a_bare_number_is_refused_by_every_command(digits_bundle, digits_dir, tmp_path, capsys, command, flag):
    written = tmp_path / "out"
    argv = {"estimate": ["--rows", "1000", "--calibration", str(tmp_path / "cal.json")],
            "run": ["--data", str(digits_dir / "data"), "-o", str(written)],
            "notebook": ["-o", str(written)],
            "simulate": ["--data", str(digits_dir / "data"), "--keep", str(written)]}[command]
    extra = ["--time-limit", "2h"] if flag != "--time-limit" and command in ("run", "estimate") else []
    fails_cleanly(capsys, main, [command, str(digits_bundle), *argv, *extra, flag, "9"],
                  "duration '9' has no unit", "9h, 9m or 9s")
    assert not written.exists()


def test_the_notebook_limit_keeps_its_unit(digits_bundle, tmp_path):
    """Seconds given from Python become ``"3600s"`` in the notebook, which reads TIME_LIMIT with the same parser."""
    from packager.offline.notebook import build_notebook
    from runtime.settings import parse_duration

    nb = build_notebook(digits_bundle, competition="c", time_limit=3600)
    assert nb.metadata["ninefit"]["time_limit"] == "3600s"
    params = nb.cells[1].source
    assert "'NINEFIT_TIME_LIMIT', '3600s')" in params
    assert parse_duration(nb.metadata["ninefit"]["time_limit"]) == 3600.0
