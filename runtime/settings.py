"""Environment variables and duration strings, parsed in one place."""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from runtime.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|m|s|ms)?\s*$", re.IGNORECASE)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable; anything unrecognised is a :class:`UsageError` naming it."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"environment variable {name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def env_modules(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Comma-separated Python module names in an environment variable (empty: none).

    Raises:
        UsageError: naming the variable and the entry that is not a module name.
    """
    raw = (os.environ if environ is None else environ).get(name, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if not _MODULE_NAME.match(n):
            raise UsageError(f"{name}={raw!r}: {n!r} is not a module name (expected e.g. mypkg.backends, comma-separated)")
    return names


def env_choice(name: str, choices: Sequence[str], default: str, environ: Mapping[str, str] | None = None) -> str:
    """One of ``choices`` (case-insensitive) from an environment variable; unset or empty: ``default``.

    Raises:
        UsageError: naming the variable, its value and the accepted values.
    """
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise UsageError(f"environment variable {name}={raw!r} is not one of: {', '.join(choices)} (unset it for {default})")
    return value


def env_count(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """A positive whole number from an environment variable; unset or empty: ``default``.

    Raises:
        UsageError: naming the variable and its value.
    """
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"environment variable {name}={raw!r} is not a positive whole number (unset it for {default})")
    return value


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"9h"``, ``"540m"``, ``"32400s"``, ``"250ms"`` or ``"1h30m"``.

    A number written without a unit is refused (``"9"`` would be 9 seconds to
    the parser, and very likely 9 hours to the person who typed it), except
    ``"0"``, which is the same in every unit. A number (``int``/``float``) from
    Python is taken as seconds: its type says so.

    Raises:
        UsageError: naming the text and the accepted forms.
    """
    if isinstance(text, (int, float)):
        return float(text)
    clean = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", clean):
        if float(clean) == 0:
            return 0.0
        n = float(clean)
        hint = (f"{n:g}h is {n * 60:g}m or {n * 3600:g}s" if n <= 48
                else f"{n:g}s is {n / 60:.4g}m" + (f" or {n / 3600:.4g}h" if n >= 3600 else ""))
        raise UsageError(f"duration {text!r} has no unit; write the one you mean: {n:g}h, {n:g}m or {n:g}s "
                         f"({hint})")
    parts = re.findall(r"\d+(?:\.\d+)?\s*(?:ms|h|m|s)", clean, re.IGNORECASE)
    if not parts or "".join(p.replace(" ", "") for p in parts) != clean.replace(" ", ""):
        raise UsageError(f"cannot read duration {text!r}; expected e.g. 9h, 540m, 32400s, 1h30m")
    total = 0.0
    for p in parts:
        m = _DURATION.match(p)
        assert m is not None, f"{p!r} was found by a pattern _DURATION accepts"
        total += float(m.group(1)) * _UNITS[m.group(2).lower()]
    return total


__all__ = ["env_choice", "env_count", "env_flag", "env_modules", "parse_duration"]
