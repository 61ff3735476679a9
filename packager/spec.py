"""The ensemble spec: one TOML file describing models, data and submission.

Every key is documented in docs/spec.md. Paths are relative to the spec
file. Parsing validates everything it can without torch, and reports each
problem as a :class:`~runtime.errors.SpecError` naming the key, its table,
what it got and what was expected. The spec is strict: a key this parser does
not know is an error (with the closest valid key), never silently ignored,
because a misspelt ``wieght`` or ``chekpoint`` would otherwise package a
wrong ensemble that passes every check.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from runtime.errors import SpecError
from runtime.manifest import (
    ACTIVATIONS,
    COMBINERS,
    MISSING_POLICIES,
    RLE_ORDERS,
    SUBMISSION_MODES,
    TEXT_FEEDS,
    TEXT_REDUCTIONS,
    TEXT_TRUNCATIONS,
    TTA_TRANSFORMS,
    DataSpec,
    ImageSpec,
    InputSpec,
    TextSpec,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
PRECISIONS = ("fp32", "fp16")
SOURCES = ("factory", "torchscript", "exported_program", "onnx")
#: What a member's bundle files can be: the ONNX file (always), the torch.export program.
ARTIFACTS = ("onnx", "torch")
#: ``init`` values of a factory model without a checkpoint (the only way to package one).
INITS = ("random",)

#: The keys each table of the spec accepts, and nothing else. A new key is
#: added here (one line), parsed below and documented in docs/spec.md.
_KEYS: dict[str, tuple[str, ...]] = {
    "top": ("name", "verify_rows", "data", "submission", "ensemble", "model"),
    "data": ("test", "id_column", "sample_submission", "format", "image_column", "image_dir", "missing", "fill_value",
             "features", "features_files", "features_group"),
    "submission": ("mode", "classes", "k", "thresholds", "separator", "empty", "targets", "id_format", "mask_shape",
                   "rle_order", "threshold", "postprocess"),
    "ensemble": ("combiner", "fallback"),
    "model": (
        "name", *SOURCES, "checkpoint", "factory_kwargs", "init", "weight", "score", "output", "activation",
        "batch_size", "precision", "tta", "sample_inputs", "atol", "rtol", "missing", "fill_value", "input", "variant",
        "text", "artifacts",
    ),
    "model.input": ("name", "dtype", "shape", "columns", "image"),
    "model.text": ("columns", "tokenizer", "inputs", "max_length", "truncation", "stride", "max_windows", "reduce",
                   "max_tokens", "pad_id"),
    "model.input.image": ("size", "mean", "std", "scale", "channels", "layout"),
    "model.variant": ("name", "precision", "tta", "image_size", "value_factor"),
}

_TOP = "the top level"
# Model names become folder names in the bundle (models/<name>/).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class VariantSpec:
    name: str
    precision: str = "fp32"
    tta: tuple[str, ...] = ("none",)
    image_size: tuple[int, int] | None = None
    value_factor: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # one of SOURCES
    path: Path | None  # checkpoint / torchscript / exported program / onnx file
    factory: str = ""  # "module:function" when source == "factory"
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    output: str = "output"
    activation: str = "none"
    weight: float = 1.0
    score: float | None = None
    batch_size: int = 64
    variants: tuple[VariantSpec, ...] = ()  # the full model first
    sample_inputs: Path | None = None
    atol: float | None = None
    rtol: float | None = None
    init: str = ""  # "random": a factory model packaged without a checkpoint, on purpose
    missing: str = ""  # non-finite inputs: "" = the [data] policy
    fill_value: float | None = None
    text: TextSpec | None = None  # text models; its tokenizer is the user's path until packaged
    # The artifacts to carry; None: ONNX, and the torch program where its export and parity succeed.
    artifacts: tuple[str, ...] | None = None

    @property
    def trained(self) -> bool:
        """False only for a factory model the spec packages with its random initial weights."""
        return self.init != "random"


@dataclass(frozen=True)
class SubmissionSpecIn:
    mode: str
    columns: tuple[str, ...]  # values: output columns; argmax: the one label column
    classes: tuple[str, ...]
    # The keys of the other modes (runtime.manifest.SubmissionSpec documents each); the hook's module
    # path (postprocess) is the user's until packaged.
    options: dict[str, Any] = field(default_factory=dict)
    postprocess_path: Path | None = None


#: [submission] keys each mode takes beyond ``mode``.
_MODE_KEYS = {
    "values": (), "argmax": ("classes",), "topk": ("classes", "k", "separator"),
    "multilabel": ("classes", "thresholds", "separator", "empty"), "long": ("targets", "id_format"),
    "rle": ("mask_shape", "rle_order", "threshold", "empty"), "postprocess": ("postprocess",),
}
_HOOK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*")
_HOOK_EXPECTED = '"module:function", the module a .py file next to the spec, e.g. "features:make_features"'


@dataclass(frozen=True)
class HooksIn:
    """The features hook as the spec names it: its module and side files on this machine."""

    module: Path | None = None  # the hook's .py file
    files: tuple[Path, ...] = ()  # side files, as given (relative to the spec's folder)


@dataclass(frozen=True)
class Spec:
    name: str
    root: Path  # folder of the spec file
    data: DataSpec
    test_path: Path  # the test table (or image index) on this machine
    sample_submission: Path
    submission: SubmissionSpecIn
    models: tuple[ModelSpec, ...]
    combiner: str = "mean"
    fallback: Path | None = None
    verify_rows: int = 256
    hooks: HooksIn = HooksIn()


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


def _strings(table: dict, key: str, where: str, default: Any, expected: str) -> tuple[str, ...] | None:
    values = _get(table, key, where, list, default, expected=expected)
    if values is None:
        return None
    if not values or not all(isinstance(x, str) and x for x in values):
        raise _bad(key, where, values, expected)
    return tuple(values)


def _path(root: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else root / p


_HOOKED: list[str] = []  # the "header" of a table a features hook adds columns to: patterns are refused


def _expand_columns(pattern: str | list, header: list[str] | None, exclude: str, where: str) -> tuple[str, ...]:
    if isinstance(pattern, list):
        return tuple(pattern)
    if header is None:
        raise _err(where, f"columns = {pattern!r} is a pattern, but the test data is not here to expand it; list the columns explicitly")
    cols = tuple(c for c in header if c != exclude and fnmatch.fnmatchcase(c, pattern))
    if not cols:
        raise _err(where, f"columns = {pattern!r} matches no column of the test data (columns: {', '.join(header[:12])} ...)")
    return cols


def _parse_image(t: dict, where: str, shape: list) -> ImageSpec:
    it = _get(t, "image", where, dict, {})
    where = f"the image table of {where}"
    _check_keys(it, where, "model.input.image")
    size_expected = "[height, width] in pixels (positive integers), e.g. [224, 224]"
    size = _get(it, "size", where, list, [d for d in shape[-2:]], expected=size_expected)
    if len(size) != 2 or not all(_is_size(d) for d in size):
        raise _bad("size", where, size, size_expected)
    return ImageSpec(
        size=tuple(size),
        mean=_numbers(it, "mean", where, [0.0]),
        std=_numbers(it, "std", where, [1.0], positive=True),
        scale=_get(it, "scale", where, float, 1.0 / 255.0, valid=_positive, expected="a positive number, e.g. 0.00392157 (1/255)"),
        channels=_get(it, "channels", where, int, 3, (1, 3)),
        layout=_get(it, "layout", where, str, "NCHW", ("NCHW", "NHWC")),
    )


def _parse_input(t: dict, where: str, header: list[str] | None, id_column: str, images: bool) -> InputSpec:
    _check_keys(t, where, "model.input")
    name = _get(t, "name", where, str, valid=bool, expected="a non-empty string: the ONNX input name")
    dtype = _get(t, "dtype", where, str, "float32", DTYPES)
    shape_expected = 'an array like ["batch", 1, 8, 8]: a string for a symbolic dimension, else a positive integer'
    shape = _get(t, "shape", where, list, expected=shape_expected)
    if not shape or not all((isinstance(d, str) and d) or _is_size(d) for d in shape):
        raise _bad("shape", where, shape, shape_expected)
    if isinstance(shape[0], int):
        raise _bad("shape", where, shape, 'a symbolic first (batch) dimension, e.g. ["batch", 1, 8, 8]')
    image = None
    columns: tuple[str, ...] = ()
    if images:
        if "columns" in t:
            raise _err(where, 'columns applies to table data only; with [data] format = "images" each input is an image '
                              "(set how it is decoded in its image table)")
        image = _parse_image(t, where, shape)
    else:
        if "image" in t:
            raise _err(where, 'image applies only with [data] format = "images"; this spec reads a table '
                              "(select the input's values with columns)")
        cols_expected = 'a glob over the test columns (e.g. "px*") or a non-empty array of column names'
        pattern = _get(t, "columns", where, (str, list), "*", expected=cols_expected)
        if isinstance(pattern, list):
            _strings(t, "columns", where, ..., cols_expected)
        elif header is _HOOKED:
            raise _err(where, f"columns = {_show(pattern)} is a pattern, but with [data] features the columns are the "
                              "test table's plus the hook's, known only when it runs; list the input's columns by name")
        columns = _expand_columns(pattern, header, id_column, where)
        fixed = [d for d in shape[1:] if isinstance(d, int)]
        size = 1
        for d in fixed:
            size *= d
        if len(fixed) == len(shape) - 1 and size != len(columns):
            raise _err(where, f"shape {shape} needs {size} values per row but {len(columns)} column(s) were selected")
    return InputSpec(name=name, dtype=dtype, shape=tuple(shape), columns=columns, image=image)


def _count(table: dict, key: str, where: str, default: int, low: int = 1) -> int:
    """A whole number of at least ``low``."""
    return _get(table, key, where, int, default, valid=lambda x: x >= low, expected=f"a whole number >= {low}")


def _parse_text(t: dict, where: str, root: Path, header: list[str] | None) -> TextSpec:
    """``[model.text]``: the text columns, the tokenizer and how rows become windows (docs/spec.md)."""
    _check_keys(t, where, "model.text")
    columns = _get(t, "columns", where, list)
    if not 1 <= len(columns) <= 2 or not all(isinstance(c, str) and c for c in columns):
        raise _err(where, f"columns = {columns!r}; expected one text column, or two for a pair, e.g. [\"text\"]")
    if header is not None and [c for c in columns if c not in header]:
        missing = [c for c in columns if c not in header]
        raise _err(where, f"columns {missing} are not in the test data (its columns: {', '.join(header[:12])})")
    inputs = _get(t, "inputs", where, list, ["input_ids", "attention_mask"])
    if not inputs or len(set(inputs)) != len(inputs) or not all(x in TEXT_FEEDS for x in inputs) \
            or "input_ids" not in inputs:
        raise _err(where, f"inputs = {inputs!r}; expected the model's inputs in its order, each one of "
                          f"{', '.join(TEXT_FEEDS)}, with input_ids among them")
    max_length = _count(t, "max_length", where, 512, 2)
    truncation = _get(t, "truncation", where, str, "windows", TEXT_TRUNCATIONS)
    stride = _count(t, "stride", where, 0, 0)
    if stride * 2 > max_length:
        raise _err(where, f"stride = {stride}; windows share stride tokens, so it must be at most half of "
                          f"max_length ({max_length})")
    pad_id = _get(t, "pad_id", where, int, -1)  # -1: found in the tokenizer when packaging
    if "pad_id" in t and pad_id < 0:
        raise _err(where, f"pad_id = {pad_id}; expected a token id >= 0 (leave it out to take the tokenizer's)")
    return TextSpec(
        columns=tuple(columns), tokenizer=str(_path(root, _get(t, "tokenizer", where, str))), inputs=tuple(inputs),
        max_length=max_length, truncation=truncation, stride=stride,
        max_windows=_count(t, "max_windows", where, 64), reduce=_get(t, "reduce", where, str, "mean", TEXT_REDUCTIONS),
        max_tokens=_count(t, "max_tokens", where, 0, 0), pad_id=pad_id,
    )


def _parse_variant(t: dict, where: str, default_tta: tuple[str, ...]) -> VariantSpec:
    _check_keys(t, where, "model.variant")
    tta_expected = f"a non-empty array of: {', '.join(_show(x) for x in TTA_TRANSFORMS)}"
    tta = tuple(_get(t, "tta", where, list, list(default_tta), expected=tta_expected))
    if not tta or any(x not in TTA_TRANSFORMS for x in tta):
        raise _bad("tta", where, list(tta), tta_expected)
    size_expected = "[height, width] in pixels (positive integers), e.g. [224, 224]"
    size = _get(t, "image_size", where, list, None, expected=size_expected)
    if size is not None and (len(size) != 2 or not all(_is_size(d) for d in size)):
        raise _bad("image_size", where, size, size_expected)
    vf = _get(t, "value_factor", where, float, 1.0, valid=lambda x: 0 < x <= 1,
              expected="a number in (0, 1]: the share of the model's value this rung delivers")
    return VariantSpec(
        name=_get(t, "name", where, str, valid=bool, expected="a non-empty string"),
        precision=_get(t, "precision", where, str, "fp32", PRECISIONS),
        tta=tta, image_size=tuple(size) if size else None, value_factor=vf,
    )


def _label(t: Any, i: int) -> str:
    """A table's name for messages: its own ``name`` when it has a usable one, else its position."""
    name = t.get("name") if isinstance(t, dict) else None
    return repr(name) if isinstance(name, str) and name else f"#{i + 1}"


def _parse_model(t: dict, i: int, root: Path, header: list[str] | None, data: DataSpec) -> ModelSpec:
    where = f"[[model]] {_label(t, i)}"
    _check_keys(t, where, "model")
    name = _get(t, "name", where, str, valid=lambda s: bool(_NAME.fullmatch(s)),
                expected="a name of letters, digits, '_', '.' or '-' (it names the model's folder in the bundle)")
    given = [s for s in SOURCES if s in t]
    if len(given) != 1:
        raise _err(where, f"give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
    source = given[0]
    init = _get(t, "init", where, str, "", INITS)
    factory, path = "", None
    if source == "factory":
        factory = _get(t, "factory", where, str, valid=lambda s: ":" in s,
                       expected='"module:function", e.g. "models:make_cnn"')
        if "checkpoint" in t:
            if init:
                raise _err(where, f'init = "{init}" packages the factory\'s initial weights, but a checkpoint is given too; '
                                  "give one of them (the checkpoint, for trained weights)")
            path = _path(root, _get(t, "checkpoint", where, str, valid=bool, expected="the path of a state_dict file"))
        elif not init:
            raise _err(where, f'factory = "{factory}" has no checkpoint, so the model would be packaged with random, '
                              'untrained weights (and still pass its parity check). Give checkpoint = "path/to/weights.pt" '
                              '(a state_dict saved with torch.save), or init = "random" to package it untrained on purpose')
    else:
        path = _path(root, _get(t, source, where, str, valid=bool, expected=f"the path of the {source} file"))
        for key in ("checkpoint", "factory_kwargs", "init"):
            if key in t:
                raise _err(where, f"{key} applies only to a factory model; {source} = ... is a file that carries its own weights")
    factory_kwargs = _get(t, "factory_kwargs", where, dict, {})
    text = None
    if data.format == "text":
        text = _parse_text(_get(t, "text", where, dict, expected="a table, written [model.text]"),
                           f"[model.text] of model {name!r}", root, header)
        if "input" in t:
            raise _err(where, "a text model takes its inputs from [model.text] inputs; leave out [[model.input]]")
        inputs = tuple(InputSpec(name=n, dtype="int64", shape=("batch", "sequence")) for n in text.inputs)
    else:
        if "text" in t:
            raise _err(where, f"[model.text] needs [data] format = \"text\" (the data format is {data.format!r})")
        inputs = tuple(
            _parse_input(x, f"[[model.input]] {_label(x, n)} of model {name!r}", header, data.id_column, data.format == "images")
            for n, x in enumerate(_tables(t, "input", where, "[[model.input]]"))
        )
    if len({x.name for x in inputs}) != len(inputs):
        raise _err(where, "two inputs share a name")
    precision = _get(t, "precision", where, str, "fp32", PRECISIONS)
    tta = _get(t, "tta", where, list, ["none"], expected=f"a non-empty array of: {', '.join(_show(x) for x in TTA_TRANSFORMS)}")
    full = _parse_variant({"name": precision, "precision": precision, "tta": tta}, where, tuple(tta))
    variants = (full, *(_parse_variant(v, f"[[model.variant]] {_label(v, n)} of model {name!r}", full.tta)
                        for n, v in enumerate(_tables(t, "variant", where, "[[model.variant]]", []))))
    if text is not None and any(v.tta != ("none",) or v.image_size for v in variants):
        raise _err(where, "a text model has no test-time augmentation or image size: leave out tta and image_size")
    if len({v.name for v in variants}) != len(variants):
        raise _err(where, f"variant names must be unique (the full model is named {full.name!r})")
    sample = _get(t, "sample_inputs", where, str, "")
    artifacts = _get(t, "artifacts", where, list, None, expected='["onnx"] or ["onnx", "torch"]')
    if artifacts is not None:
        bad = [a for a in artifacts if a not in ARTIFACTS]
        if bad or "onnx" not in artifacts or len(set(artifacts)) != len(artifacts):
            raise _err(where, f"artifacts = {artifacts!r}; expected [\"onnx\"] or [\"onnx\", \"torch\"] (the ONNX file "
                       "is always carried: it is what every backend but torch runs, and the torch backend's fallback)")
        if "torch" in artifacts and source == "onnx":
            raise _err(where, "artifacts lists \"torch\", but the model is given as an ONNX file: there is no torch model "
                       "to export; give a factory, torchscript or exported_program source, or drop \"torch\"")
        artifacts = tuple(artifacts)
    missing, fill = _missing(t, where, data.missing)
    tolerance = "a number >= 0"
    return ModelSpec(
        name=name, source=source, path=path, factory=factory, factory_kwargs=factory_kwargs,
        inputs=inputs, output=_get(t, "output", where, str, "output", valid=bool, expected="a non-empty string: the output's name"),
        activation=_get(t, "activation", where, str, "none", ACTIVATIONS),
        weight=_get(t, "weight", where, float, 1.0, valid=_positive, expected="a positive number (the ensemble weight), e.g. 0.6"),
        score=_get(t, "score", where, float, None, valid=_positive, expected="a positive validation score, higher is better"),
        batch_size=_get(t, "batch_size", where, int, 64, valid=_positive, expected="a whole number of rows, at least 1"),
        variants=variants, sample_inputs=_path(root, sample) if sample else None,
        atol=_get(t, "atol", where, float, None, valid=lambda x: x >= 0, expected=tolerance),
        rtol=_get(t, "rtol", where, float, None, valid=lambda x: x >= 0, expected=tolerance),
        init=init, missing=missing, fill_value=fill, text=text, artifacts=artifacts,
    )


def _parse_submission(s: dict, out_cols: list[str], root: Path) -> SubmissionSpecIn:
    """[submission]: the mode, its keys (and no other mode's), checked against the sample's columns."""
    where = "[submission]"
    post = _get(s, "postprocess", where, str, "", valid=lambda v: bool(_HOOK.fullmatch(v)),
                expected='"module:function", the module a .py file next to the spec, e.g. "post:to_submission"')
    mode = _get(s, "mode", where, str, "postprocess" if post else "values", SUBMISSION_MODES)
    if mode == "postprocess" and not post:
        raise _err(where, 'mode = "postprocess" needs postprocess = "module:function", the hook that writes the rows')
    for key in s:
        if key != "mode" and key not in _MODE_KEYS[mode]:
            users = [m for m, keys in _MODE_KEYS.items() if key in keys]
            raise _err(where, f"{key} applies only with mode = {' or '.join(_show(m) for m in users)}; "
                              f"this spec's mode is {_show(mode)}")
    if mode in ("argmax", "topk", "multilabel", "long", "rle") and len(out_cols) != 1:
        raise _err(where, f"mode = \"{mode}\" writes one column after the id, but the sample submission has "
                          f"{len(out_cols)}: {out_cols}")
    opts: dict[str, Any] = {}
    classes: tuple[str, ...] = ()
    if mode in ("argmax", "topk", "multilabel"):
        labels = 'a non-empty array of labels (strings or integers), one per output index, e.g. ["cat", "dog"]'
        values = _get(s, "classes", where, list, expected=labels)
        if not values or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in values):
            raise _bad("classes", where, values, labels)
        classes = tuple(str(c) for c in values)
        if len(set(classes)) != len(classes):
            raise _bad("classes", where, values, "labels that are all different")
    if mode in ("topk", "multilabel"):
        opts["separator"] = _get(s, "separator", where, str, " ", valid=bool, expected='a non-empty string, e.g. " "')
        if any(opts["separator"] in c for c in classes):
            raise _err(where, f"separator = {_show(opts['separator'])} occurs inside a label; the labels could not be "
                              "told apart in the written cell")
    if mode == "topk":
        opts["k"] = _get(s, "k", where, int, valid=lambda k: 1 <= k <= len(classes),
                         expected=f"a whole number of labels per row, 1 to {len(classes)} (the number of classes)")
    if mode == "multilabel":
        expected = f"a number, or an array of {len(classes)} numbers (one per class)"
        thr = _get(s, "thresholds", where, (float, list), 0.5, expected=expected)
        thr = [thr] if isinstance(thr, float) else thr
        if len(thr) not in (1, len(classes)) or not all(_is_number(x) for x in thr):
            raise _bad("thresholds", where, s["thresholds"], expected)
        opts["thresholds"] = tuple(float(x) for x in thr)
    if mode in ("multilabel", "rle"):
        opts["empty"] = _get(s, "empty", where, str, "")
    if mode == "long":
        expected = 'a non-empty array of target names, one per output index, e.g. ["A", "B"]'
        targets = _strings(s, "targets", where, ..., expected)
        if len(set(targets)) != len(targets):
            raise _bad("targets", where, list(targets), "target names that are all different")
        opts["targets"] = targets
        opts["id_format"] = _get(s, "id_format", where, str, "{id}_{target}",
                                 valid=lambda f: "{id}" in f and "{target}" in f,
                                 expected='a string holding {id} and {target}, e.g. "{id}_{target}"')
    if mode == "rle":
        expected = "[height, width] of the mask (positive integers), e.g. [64, 64]"
        shape = _get(s, "mask_shape", where, list, expected=expected)
        if len(shape) != 2 or not all(_is_size(d) for d in shape):
            raise _bad("mask_shape", where, shape, expected)
        opts["mask_shape"] = tuple(shape)
        opts["rle_order"] = _get(s, "rle_order", where, str, "column", RLE_ORDERS)
        opts["threshold"] = _get(s, "threshold", where, float, 0.5)
    path = None
    if post:
        opts["postprocess"] = post
        path = root / f"{post.split(':')[0]}.py"
        if not path.is_file():
            raise _err(where, f"postprocess = {_show(post)}: module file {path} not found (the hook's module is a .py "
                              "file next to the spec)")
    return SubmissionSpecIn(mode=mode, columns=tuple(out_cols), classes=classes, options=opts, postprocess_path=path)


def _header(path: Path) -> list[str] | None:
    """Column names of the test table, when it is here (CSV header / Parquet schema)."""
    if not path.is_file():
        return None
    import csv

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, ValueError, csv.Error) as exc:  # pyarrow's errors are OSError / ValueError subclasses
        raise SpecError(f"{path} cannot be read for its column names ({type(exc).__name__}: {exc}); "
                        "expected a UTF-8 CSV file or a Parquet file") from exc


def _parse_data(raw: dict, root: Path) -> tuple[DataSpec, Path, Path]:
    d = _get(raw, "data", _TOP, dict, expected="a table, written [data]")
    _check_keys(d, "[data]", "data")
    fmt = _get(d, "format", "[data]", str, "table", ("table", "images", "text"))
    if fmt != "images":
        for key in ("image_column", "image_dir"):
            if key in d:
                raise _err("[data]", f'{key} applies only with format = "images"; this spec reads {fmt} (format = "{fmt}")')
    test_path = _path(root, _get(d, "test", "[data]", str, valid=bool, expected="the path of the test table"))
    missing, fill = _missing(d, "[data]", "")
    features = _get(d, "features", "[data]", str, "", valid=lambda v: bool(_HOOK.fullmatch(v)), expected=_HOOK_EXPECTED)
    if not features:
        for key in ("features_files", "features_group"):
            if key in d:
                raise _err("[data]", f"{key} applies only with a features hook (features = {_HOOK_EXPECTED})")
    elif fmt != "table":
        raise _err("[data]", f'features applies to table data only (format = "table"); this spec reads {fmt}')
    files_expected = "an array of paths relative to the spec's folder, inside it (e.g. [\"lookup.csv\"])"
    files = _strings(d, "features_files", "[data]", [], files_expected) if "features_files" in d else ()
    for f in files or ():
        rel = Path(f)
        if rel.is_absolute() or ".." in rel.parts:
            raise _bad("features_files", "[data]", list(files), files_expected)
        if not (root / rel).is_file():
            raise _err("[data]", f"features_files: {f!r} not found (looked for {root / rel}); each side file the "
                                 "hook reads must be a file in the spec's folder or below it")
    hooks = HooksIn()
    if features:
        module = root / f"{features.split(':')[0]}.py"
        if not module.is_file():
            raise _err("[data]", f"features = {_show(features)}: module file {module} not found (the hook's module "
                                 "is a .py file next to the spec)")
        hooks = HooksIn(module=module, files=tuple(Path(f) for f in files or ()))
    data = DataSpec(
        format=fmt, test=test_path.name, id_column=_get(d, "id_column", "[data]", str, valid=bool, expected="a column name"),
        image_column=_get(d, "image_column", "[data]", str, ... if fmt == "images" else "", valid=bool, expected="a column name"),
        image_dir=_get(d, "image_dir", "[data]", str, ""),
        missing=missing or "skip", fill_value=0.0 if fill is None else fill,
        features=features, features_files=tuple(files or ()),
        features_group=_get(d, "features_group", "[data]", str, "", valid=bool, expected="a column name"),
    )
    sample_path = _path(root, _get(d, "sample_submission", "[data]", str, valid=bool, expected="the path of the sample submission"))
    return data, test_path, sample_path, hooks


def load_spec(path: str | os.PathLike) -> Spec:
    """Parse and validate a spec file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except IsADirectoryError:
        raise SpecError(f"spec file {path} is a folder; expected the TOML spec file (e.g. {path / 'ninefit.toml'})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {path} is not UTF-8 text ({exc}); expected a TOML file") from None
    except OSError as exc:
        raise SpecError(f"spec file {path} cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid TOML: {exc}") from exc
    root = path.parent.resolve()
    _check_keys(raw, _TOP, "top")
    name = _get(raw, "name", _TOP, str, path.stem, valid=bool, expected="a non-empty string")
    data, test_path, sample_path, hooks = _parse_data(raw, root)
    header = _header(test_path)
    if header is not None and data.features_group and data.features_group not in header:
        raise _err("[data]", f"features_group = {data.features_group!r} is not a column of the test table (its columns: "
                             f"{', '.join(header[:12])})")
    if data.features:
        header = _HOOKED
    s = _get(raw, "submission", _TOP, dict, {}, expected="a table, written [submission]")
    _check_keys(s, "[submission]", "submission")
    sample_header = _header(sample_path)
    if sample_header is None:
        raise _err("[data]", f"sample_submission = {sample_path} not found (it fixes the submission's columns and row order)")
    if data.id_column not in sample_header:
        raise _err("[data]", f"the sample submission has no id column {data.id_column!r}; its columns: {', '.join(sample_header)}")
    out_cols = [c for c in sample_header if c != data.id_column]
    submission = _parse_submission(s, out_cols, root)
    models_t = _tables(raw, "model", _TOP, "[[model]]")
    if not models_t:
        raise _err(_TOP, "no [[model]] given; add at least one")
    models = tuple(_parse_model(t, i, root, header, data) for i, t in enumerate(models_t))
    if len({m.name for m in models}) != len(models):
        raise _err("[[model]]", "model names must be unique")
    e = _get(raw, "ensemble", _TOP, dict, {}, expected="a table, written [ensemble]")
    _check_keys(e, "[ensemble]", "ensemble")
    fb = _get(e, "fallback", "[ensemble]", str, "")
    return Spec(
        name=name, root=root, data=data, test_path=test_path, sample_submission=sample_path,
        submission=submission, models=models, hooks=hooks,
        combiner=_get(e, "combiner", "[ensemble]", str, "mean", COMBINERS),
        fallback=_path(root, fb) if fb else None,
        verify_rows=_get(raw, "verify_rows", _TOP, int, 256, valid=_positive, expected="a whole number of rows, at least 1"),
    )


__all__ = ["HooksIn", "ModelSpec", "Spec", "SubmissionSpecIn", "VariantSpec", "load_spec"]
