"""Reading the spec's TOML tables strictly: each value checked for its kind and range, each unknown key refused
with the closest valid one, every message naming the key, its table, what it got and what was expected."""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import math
from pathlib import Path
from types import EllipsisType
from typing import Any, Callable

from packager.spec.types import SOURCES
from runtime.errors import SpecError
from runtime.manifest import MISSING_POLICIES

#: The keys each table of the spec accepts, and nothing else. A new key is
#: added here (one line), parsed below and documented in docs/spec.md.
_KEYS: dict[str, tuple[str, ...]] = {
    "top": ("name", "verify_rows", "data", "submission", "ensemble", "model", "serve"),
    "data": ("test", "id_column", "sample_submission", "format", "image_column", "image_dir", "missing", "fill_value",
             "features", "features_files", "features_group"),
    "submission": ("mode", "classes", "k", "thresholds", "separator", "empty", "targets", "id_format", "mask_shape",
                   "rle_order", "threshold", "postprocess"),
    "ensemble": ("combiner", "fallback"),
    "serve": ("server", "gateway_paths", "arguments", "table", "sample", "files", "response_timeout_s", "expected_rows",
              "expected_batches", "batch_by", "batch_rows", "order", "output", "include_id", "scalar", "fallback",
              "startup_limit_s"),
    "model": (
        "name", *SOURCES, "checkpoint", "factory_kwargs", "init", "weight", "score", "output", "activation",
        "batch_size", "precision", "tta", "sample_inputs", "atol", "rtol", "missing", "fill_value", "input", "variant",
        "text", "artifacts", "columns", "prediction", "rows_tolerance", "task", "timm_kwargs",
    ),
    "model.input": ("name", "dtype", "shape", "columns", "image"),
    "model.text": ("columns", "tokenizer", "inputs", "max_length", "truncation", "stride", "max_windows", "reduce",
                   "max_tokens", "pad_id"),
    "model.input.image": ("size", "mean", "std", "scale", "channels", "layout"),
    "model.variant": ("name", "precision", "tta", "image_size", "value_factor", "rounds", "quantize", "backend",
                      "min_agreement", "max_mean_abs_diff"),
}

_TOP = "the top level"


def _err(where: str, msg: str) -> SpecError:
    return SpecError(f"spec {where}: {msg}")


def _in(where: str) -> str:
    return f"at {where}" if where == _TOP else f"in {where}"


def _show(value: Any) -> str:
    """A value as it would be written in TOML (what the user typed, not Python's repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return repr(value)


def _kind(value: Any) -> str:
    """What sort of TOML value the user gave (bool first: it is an int in Python)."""
    for t, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                    (list, "an array"), (dict, "a table"), (_dt.date, "a date"), (_dt.time, "a time")):
        if isinstance(value, t):
            return name
    return type(value).__name__


#: What a key of each Python type expects, in the user's (TOML) words.
_EXPECTED = {str: "a string", float: "a number", int: "an integer", list: "an array", dict: "a table", bool: "true or false"}


def _bad(key: str, where: str, value: Any, expected: str) -> SpecError:
    """The one message for a value of the wrong type or out of range."""
    shown = _show(value)
    if len(shown) > 120:  # a whole table given where a value belongs: its start says enough
        shown = shown[:100] + " ..."
    return SpecError(f"spec: `{key}` {_in(where)} is {shown} ({_kind(value)}); expected {expected}")


def _check_keys(table: Any, where: str, keys: str) -> None:
    """Refuse any key of ``table`` that ``_KEYS[keys]`` does not list, naming the closest valid one."""
    if not isinstance(table, dict):
        return  # the caller's type check says what was expected
    allowed = _KEYS[keys]
    for key in table:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or \
            difflib.get_close_matches(key.lower(), allowed, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"the keys of this table are: {', '.join(allowed)}"
        raise SpecError(f"spec: `{key}` {_in(where)}: unknown key; {hint} (every key is documented in docs/spec.md)")


def _get(table: dict, key: str, where: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = (),
         valid: Callable[[Any], bool] | None = None, expected: str = "") -> Any:
    """``table[key]`` checked against ``kind``, ``choices`` and ``valid`` (``expected`` says what passes)."""
    if key not in table:
        if default is ...:
            raise _err(where, f"missing required key {key!r}")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _bad(key, where, table[key], expected or " or ".join(_EXPECTED.get(k, k.__name__) for k in kinds))
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(key, where, table[key], expected or "a finite number")
    if choices and value not in choices:
        raise _bad(key, where, table[key], f"one of: {', '.join(_show(c) for c in choices)}")
    if valid is not None and not valid(value):
        raise _bad(key, where, table[key], expected)
    return value


def _missing(table: dict, where: str, inherited: str) -> tuple[str, float | None]:
    """``missing`` and ``fill_value`` of one table; ``inherited`` is the policy it overrides ("" at [data])."""
    policy = _get(table, "missing", where, str, "", MISSING_POLICIES)
    fill = _get(table, "fill_value", where, float, None)
    effective = policy or inherited or "skip"
    if fill is not None and not math.isfinite(fill):
        raise _err(where, f"fill_value = {fill}; expected a finite number (it replaces NaN and inf)")
    if fill is not None and effective != "fill":
        raise _err(where, f"fill_value = {fill:g} is only used with missing = \"fill\" (the policy here is {effective!r})")
    if policy == "fill" and fill is None and not inherited == "fill":
        raise _err(where, "missing = \"fill\" needs fill_value = <number>, the value NaN and inf inputs take")
    return policy, fill


def _positive(x: float) -> bool:
    return x > 0


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_size(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _tables(table: dict, key: str, where: str, example: str, default: Any = ...) -> list[dict]:
    """An array of tables (``[[model]]``), each element checked to be a table."""
    expected = f"an array of tables, written {example} (double brackets) before each entry"
    values = _get(table, key, where, list, default, expected=expected)
    if not all(isinstance(v, dict) for v in values):
        raise _bad(key, where, values, expected)
    return values


def _numbers(table: dict, key: str, where: str, default: list, positive: bool = False) -> tuple[float, ...]:
    """A list of numbers (one per channel, or one for all)."""
    expected = f"a non-empty array of {'positive ' if positive else ''}numbers, e.g. [0.485, 0.456, 0.406]"
    values = _get(table, key, where, list, default, expected=expected)
    if not values or not all(_is_number(x) and (not positive or x > 0) for x in values):
        raise _bad(key, where, values, expected)
    return tuple(float(x) for x in values)


def _strings(table: dict, key: str, where: str, default: list[str] | EllipsisType, expected: str) -> tuple[str, ...]:
    """A non-empty array of non-empty strings (``default``, a list, where the key is absent; ``...``: required)."""
    values = _get(table, key, where, list, default, expected=expected)
    if not values or not all(isinstance(x, str) and x for x in values):
        raise _bad(key, where, values, expected)
    return tuple(values)


def _path(root: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else root / p


def _count(table: dict, key: str, where: str, default: int, low: int = 1) -> int:
    """A whole number of at least ``low``."""
    return _get(table, key, where, int, default, valid=lambda x: x >= low, expected=f"a whole number >= {low}")


__all__: list[str] = []  # the readers (``_get``, ``_bad``...) are the spec parsers' own: not an API
