"""``[[model]]`` tables: a model's source and weights, its inputs (table columns, images or text), its
rungs and its tolerances, parsed into :class:`~packager.spec.types.ModelSpec`."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from packager.spec.sources import check_variants, hf_text_table, parse_converted, source_path
from packager.spec.tables import (
    _bad,
    _check_keys,
    _count,
    _err,
    _get,
    _is_size,
    _missing,
    _numbers,
    _path,
    _positive,
    _show,
    _strings,
    _tables,
)
from packager.spec.types import (
    ARTIFACTS,
    DTYPES,
    INITS,
    MAX_MEAN_ABS_DIFF,
    MIN_AGREEMENT,
    NATIVE_SOURCES,
    PRECISIONS,
    QUANTIZE,
    RUNG_BACKENDS,
    SOURCES,
    ModelSpec,
    VariantSpec,
)
from runtime.manifest import (
    ACTIVATIONS,
    TEXT_FEEDS,
    TEXT_REDUCTIONS,
    TEXT_TRUNCATIONS,
    TTA_TRANSFORMS,
    DataSpec,
    ImageSpec,
    InputSpec,
    TextSpec,
)

# Model names become folder names in the bundle (models/<name>/).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: What each ``init`` packages, for messages.
_INIT_MEANS = {"random": "packages the factory's random initial weights",
               "factory": "says the factory loads its own trained weights"}

HOOKED: list[str] = []  # the "header" of a table a features hook adds columns to: patterns are refused


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
        elif header is HOOKED:
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
    rounds = _get(t, "rounds", where, int, 0, valid=lambda x: x >= 1,
                  expected="a whole number of boosting rounds, at least 1 (the rung keeps the first N)")
    precision = _get(t, "precision", where, str, "fp32", PRECISIONS)
    low = _low_precision(t, where, precision)
    return VariantSpec(
        name=_get(t, "name", where, str, valid=bool, expected="a non-empty string"),
        precision=precision, tta=tta, image_size=tuple(size) if size else None, value_factor=vf, rounds=rounds,
        # A rounds rung's value factor is measured when packaging unless the spec gives one; so is a guarded
        # rung's (its agreement with fp32 on the sample rows).
        value_factor_given="value_factor" in t or not (rounds or precision in ("int8", "bf16")
                                                       or low["backend"] == "openvino"),
        **low,
    )


def _low_precision(t: dict, where: str, precision: str) -> dict[str, Any]:
    """``quantize``, ``backend`` and the guard's tolerances of a rung (docs/spec.md, "CPU rungs")."""
    quantize = _get(t, "quantize", where, str, "auto", QUANTIZE)
    if "quantize" in t and precision != "int8":
        raise _err(where, f'quantize applies to an int8 rung (precision = "int8"); this rung is {precision}')
    backend = _get(t, "backend", where, str, "openvino" if precision == "bf16" else "", RUNG_BACKENDS)
    if precision == "bf16" and backend != "openvino":
        raise _err(where, 'a bf16 rung runs on OpenVINO (backend = "openvino", the default for bf16): onnxruntime '
                          "has no bf16 CPU kernels for most ops")
    if precision == "fp16" and backend == "openvino":
        raise _err(where, 'backend = "openvino" runs fp32, bf16 or int8 rungs on the CPU; an fp16 rung is for a GPU')
    guarded = precision in ("int8", "bf16") or backend == "openvino"
    for key in ("min_agreement", "max_mean_abs_diff"):
        if key in t and not guarded:
            raise _err(where, f"{key} is the accuracy guard of an int8, bf16 or OpenVINO rung; this rung is "
                              f"{precision} (its parity with the torch model is checked with atol/rtol)")
    share = "a share of rows in (0, 1], e.g. 0.995 (99.5 % of the rows keep their fp32 label)"
    return {
        "quantize": quantize, "backend": backend,
        "min_agreement": _get(t, "min_agreement", where, float, MIN_AGREEMENT, valid=lambda x: 0 < x <= 1,
                              expected=share),
        "max_mean_abs_diff": _get(t, "max_mean_abs_diff", where, float, MAX_MEAN_ABS_DIFF,
                                  valid=lambda x: x >= 0, expected="a number >= 0, e.g. 0.005"),
    }


def _label(t: Any, i: int) -> str:
    """A table's name for messages: its own ``name`` when it has a usable one, else its position."""
    name = t.get("name") if isinstance(t, dict) else None
    return repr(name) if isinstance(name, str) and name else f"#{i + 1}"


def parse_model(t: dict, i: int, root: Path, header: list[str] | None, data: DataSpec) -> ModelSpec:
    where = f"[[model]] {_label(t, i)}"
    _check_keys(t, where, "model")
    name = _get(t, "name", where, str, valid=lambda s: bool(_NAME.fullmatch(s)),
                expected="a name of letters, digits, '_', '.' or '-' (it names the model's folder in the bundle)")
    source, factory, path, init = _source(t, where, root)
    factory_kwargs = _get(t, "factory_kwargs", where, dict, {})
    converted = parse_converted(t, where, source, data)
    text, inputs = _inputs(t, where, name, root, header, data, source, path)
    precision = _get(t, "precision", where, str, "fp32", PRECISIONS[:2])  # int8 and bf16 are rungs of an fp32 model
    tta = _get(t, "tta", where, list, ["none"], expected=f"a non-empty array of: {', '.join(_show(x) for x in TTA_TRANSFORMS)}")
    full = _parse_variant({"name": precision, "precision": precision, "tta": tta}, where, tuple(tta))
    variants = (full, *(_parse_variant(v, f"[[model.variant]] {_label(v, n)} of model {name!r}", full.tta)
                        for n, v in enumerate(_tables(t, "variant", where, "[[model.variant]]", []))))
    if text is not None and any(v.tta != ("none",) or v.image_size for v in variants):
        raise _err(where, "a text model has no test-time augmentation or image size: leave out tta and image_size")
    if len({v.name for v in variants}) != len(variants):
        raise _err(where, f"variant names must be unique (the full model is named {full.name!r})")
    check_variants(variants, where, source)
    sample = _get(t, "sample_inputs", where, str, "")
    artifacts = _artifacts(t, where, source)
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
        init=init, missing=missing, fill_value=fill, text=text, artifacts=artifacts, **converted,
    )


def _source(t: dict, where: str, root: Path) -> tuple[str, str, Path | None, str]:
    """(source, factory, the weights' or model file's path, init): exactly one source; a factory needs a
    checkpoint, or ``init = "random"`` to be packaged untrained on purpose; a file carries its own weights."""
    given = [s for s in SOURCES if s in t]
    if len(given) != 1:
        raise _err(where, f"give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
    source = given[0]
    init = _get(t, "init", where, str, "", INITS)
    factory, path = "", None
    if source in NATIVE_SOURCES or source == "transformers":
        path = source_path(t, where, source, root)
        for key in ("checkpoint", "factory_kwargs", "init"):
            if key in t:
                raise _err(where, f"{key} does not apply to a {source} model: {source} = ... is a file that carries "
                                  "its own trained weights")
        return source, factory, path, init
    if source == "timm":
        factory = _get(t, "timm", where, str, valid=bool, expected='a timm architecture name, e.g. "resnet18"')
        if "factory_kwargs" in t:
            raise _err(where, "factory_kwargs applies to a factory; a timm model's keyword arguments are timm_kwargs")
        if init == "factory":
            raise _err(where, 'init = "factory" applies to a factory that loads its own weights; a timm model loads '
                              'its checkpoint: give checkpoint = "path/to/weights.pt"')
        if "checkpoint" in t and init:
            raise _err(where, f'init = "{init}" packages timm\'s initial weights, but a checkpoint is given too; give one')
        if "checkpoint" in t:
            path = _path(root, _get(t, "checkpoint", where, str, valid=bool, expected="the path of a state_dict file"))
        elif not init:
            raise _err(where, f'timm = "{factory}" has no checkpoint, so the model would be packaged with random, '
                              'untrained weights (ninefit never downloads pretrained ones). Give checkpoint = '
                              '"path/to/weights.pt" (the state_dict you trained), or init = "random" on purpose')
        return source, factory, path, init
    if source == "factory":
        factory = _get(t, "factory", where, str, valid=lambda s: ":" in s,
                       expected='"module:function", e.g. "models:make_cnn"')
        if "checkpoint" in t:
            if init:
                raise _err(where, f'init = "{init}" {_INIT_MEANS[init]}, but a checkpoint is given too; '
                                  "give one of them (the checkpoint, for trained weights)")
            path = _path(root, _get(t, "checkpoint", where, str, valid=bool, expected="the path of a state_dict file"))
        elif not init:
            raise _err(where, f'factory = "{factory}" has no checkpoint, so the model would be packaged with random, '
                              'untrained weights (and still pass its parity check). Give checkpoint = "path/to/weights.pt" '
                              '(a state_dict saved with torch.save), init = "factory" when the factory loads its own '
                              'trained weights, or init = "random" to package it untrained on purpose')
    else:
        path = _path(root, _get(t, source, where, str, valid=bool, expected=f"the path of the {source} file"))
        for key in ("checkpoint", "factory_kwargs", "init"):
            if key in t:
                raise _err(where, f"{key} applies only to a factory model; {source} = ... is a file that carries its own weights")
    return source, factory, path, init


def _inputs(t: dict, where: str, name: str, root: Path, header: list[str] | None, data: DataSpec,
            source: str = "factory", path: Path | None = None) -> tuple[TextSpec | None, tuple[InputSpec, ...]]:
    """(the text spec of a text model, the model's inputs): ``[model.text]``'s feeds, else ``[[model.input]]``.

    A tree or scikit-learn model's input is found when packaging (its feature names); a timm model's
    ``[[model.input]]`` may be left out (its pretrained config's size, mean and std); a transformers folder's
    tokenizer is the folder's own unless ``[model.text]`` names one.
    """
    text = None
    if source in NATIVE_SOURCES:
        return None, ()
    if source == "timm" and "input" not in t:
        return None, ()
    if data.format == "text":
        table = _get(t, "text", where, dict, expected="a table, written [model.text]")
        if source == "transformers":
            table = hf_text_table(table, path)
        text = _parse_text(table, f"[model.text] of model {name!r}", root, header)
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
    return text, inputs


def _artifacts(t: dict, where: str, source: str) -> tuple[str, ...] | None:
    """The artifacts to carry (None: ONNX, and the torch program where its export and parity succeed)."""
    artifacts = _get(t, "artifacts", where, list, None, expected='["onnx"] or ["onnx", "torch"]')
    if artifacts is None:
        return None
    bad = [a for a in artifacts if a not in ARTIFACTS]
    if bad or "onnx" not in artifacts or len(set(artifacts)) != len(artifacts):
        raise _err(where, f"artifacts = {artifacts!r}; expected [\"onnx\"] or [\"onnx\", \"torch\"] (the ONNX file "
                   "is always carried: it is what every backend but torch runs, and the torch backend's fallback)")
    if "torch" in artifacts and source == "onnx":
        raise _err(where, "artifacts lists \"torch\", but the model is given as an ONNX file: there is no torch model "
                   "to export; give a factory, torchscript or exported_program source, or drop \"torch\"")
    return tuple(artifacts)


__all__ = ["HOOKED", "parse_model"]
