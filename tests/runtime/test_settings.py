"""Environment variables and durations, parsed in one place."""

from __future__ import annotations

import pytest

from runtime.settings import env_flag, env_modules, parse_duration

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("text, seconds", [
    ("9h", 32400), ("540m", 32400), ("32400s", 32400), ("1h30m", 5400), ("0.3s", 0.3),
    ("2.5m", 150), ("250ms", 0.25), (" 12 s ", 12), (90, 90), (1.5, 1.5), ("0", 0.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, hint", [
    ("9", "write the one you mean: 9h, 9m or 9s (9h is 540m or 32400s)"),
    ("32400", "32400h, 32400m or 32400s (32400s is 540m or 9h)"), (" 1.5 ", "1.5h, 1.5m or 1.5s"),
])
def test_a_bare_number_is_refused_and_asked_for_its_unit(text, hint):
    """``9`` would be 9 seconds to the parser and most likely 9 hours to whoever typed it: neither is guessed."""
    with pytest.raises(ValueError, match="has no unit") as info:
        parse_duration(text)
    assert hint in str(info.value)


@pytest.mark.parametrize("text", ["9 hours", "", "h", "-5m", "1d", "5m later"])
def test_bad_durations_name_the_accepted_forms(text):
    with pytest.raises(ValueError, match="expected e.g. 9h, 540m, 32400s, 1h30m"):
        parse_duration(text)


def test_env_flag(monkeypatch):
    monkeypatch.delenv("NINEFIT_X", raising=False)
    assert env_flag("NINEFIT_X") is False and env_flag("NINEFIT_X", default=True) is True
    for raw, value in [("1", True), ("Yes", True), ("on", True), ("0", False), ("off", False), ("", False)]:
        monkeypatch.setenv("NINEFIT_X", raw)
        assert env_flag("NINEFIT_X") is value
    monkeypatch.setenv("NINEFIT_X", "maybe")
    with pytest.raises(ValueError, match="NINEFIT_X='maybe' is not a boolean"):
        env_flag("NINEFIT_X")


def test_env_modules():
    assert env_modules("P", {}) == []
    assert env_modules("P", {"P": " a.b , c ,"}) == ["a.b", "c"]
    with pytest.raises(ValueError, match="'x/y.py' is not a module name"):
        env_modules("P", {"P": "x/y.py"})


def test_bad_cudf_flag_is_a_data_error(monkeypatch, tmp_path):
    from runtime.data.testdata import read_table
    from runtime.errors import UsageError

    (tmp_path / "t.csv").write_text("id,x\n1,2\n")
    monkeypatch.setenv("NINEFIT_CUDF", "perhaps")
    with pytest.raises(UsageError, match="NINEFIT_CUDF='perhaps' is not a boolean"):
        read_table(tmp_path / "t.csv")
