"""Environment variables and duration strings, parsed in one place."""

from __future__ import annotations

import os
import re

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|m|s|ms)?\s*$", re.IGNORECASE)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, None: 1.0}


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable; anything unrecognised is a ValueError naming it."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"9h"``, ``"540m"``, ``"32400s"``, ``"32400"`` or ``"1h30m"``.

    Raises:
        ValueError: naming the text and the accepted forms.
    """
    if isinstance(text, (int, float)):
        return float(text)
    parts = re.findall(r"\d+(?:\.\d+)?\s*(?:ms|h|m|s)?", text.strip(), re.IGNORECASE)
    if not parts or "".join(p.replace(" ", "") for p in parts) != text.strip().replace(" ", ""):
        raise ValueError(f"cannot read duration {text!r}; expected e.g. 9h, 540m, 32400s, 1h30m")
    total = 0.0
    for p in parts:
        m = _DURATION.match(p)
        total += float(m.group(1)) * _UNITS[m.group(2).lower() if m.group(2) else None]
    return total


__all__ = ["env_flag", "parse_duration"]
