"""The ensemble spec: one TOML file describing models, data and submission.

Every key is documented in docs/spec.md. Paths are relative to the spec
file. Parsing validates everything it can without torch, and reports each
problem as a :class:`~runtime.errors.SpecError` naming the key, what it got
and what was expected.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import SpecError
from runtime.manifest import ACTIVATIONS, COMBINERS, SUBMISSION_MODES, TTA_TRANSFORMS, DataSpec, ImageSpec, InputSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
PRECISIONS = ("fp32", "fp16")
SOURCES = ("factory", "torchscript", "exported_program", "onnx")
#: What a member's bundle files can be: the ONNX file (always), the torch.export program.
ARTIFACTS = ("onnx", "torch")


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
    # The artifacts to carry; None: ONNX, and the torch program where its export and parity succeed.
    artifacts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SubmissionSpecIn:
    mode: str
    columns: tuple[str, ...]  # values: output columns; argmax: the one label column
    classes: tuple[str, ...]


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


def _err(where: str, msg: str) -> SpecError:
    return SpecError(f"spec {where}: {msg}")


def _get(table: dict, key: str, where: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = ()) -> Any:
    if key not in table:
        if default is ...:
            raise _err(where, f"missing required key {key!r}")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _err(where, f"{key} = {value!r} should be a {expected}")
    if choices and value not in choices:
        raise _err(where, f"{key} = {value!r}; expected one of: {', '.join(map(str, choices))}")
    return value


def _numbers(table: dict, key: str, where: str, default: list) -> tuple[float, ...]:
    """A list of numbers (one per channel, or one for all)."""
    values = _get(table, key, where, list, default)
    if not values or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        raise _err(where, f"{key} = {values!r}; expected a non-empty list of numbers, e.g. [0.485, 0.456, 0.406]")
    return tuple(float(x) for x in values)


def _path(root: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else root / p


def _expand_columns(pattern: str | list, header: list[str] | None, exclude: str, where: str) -> tuple[str, ...]:
    if isinstance(pattern, list):
        return tuple(str(c) for c in pattern)
    if header is None:
        raise _err(where, f"columns = {pattern!r} is a pattern, but the test data is not here to expand it; list the columns explicitly")
    cols = tuple(c for c in header if c != exclude and fnmatch.fnmatchcase(c, pattern))
    if not cols:
        raise _err(where, f"columns = {pattern!r} matches no column of the test data (columns: {', '.join(header[:12])} ...)")
    return cols


def _parse_input(t: dict, where: str, header: list[str] | None, id_column: str, images: bool) -> InputSpec:
    name = _get(t, "name", where, str)
    dtype = _get(t, "dtype", where, str, "float32", DTYPES)
    shape = _get(t, "shape", where, list)
    if not shape or not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
        raise _err(where, f"shape = {shape!r}; expected a list like [\"batch\", 1, 8, 8] (a string for a symbolic dimension)")
    if isinstance(shape[0], int):
        raise _err(where, f"shape = {shape!r}: the first (batch) dimension must be symbolic, e.g. \"batch\"")
    image = None
    columns: tuple[str, ...] = ()
    if images:
        it = _get(t, "image", where, dict, {})
        size = tuple(_get(it, "size", f"{where}.image", list, [d for d in shape[-2:]]))
        if len(size) != 2 or not all(isinstance(d, int) for d in size):
            raise _err(f"{where}.image", f"size = {list(size)!r}; expected [height, width] in pixels")
        image = ImageSpec(
            size=size,
            mean=_numbers(it, "mean", f"{where}.image", [0.0]),
            std=_numbers(it, "std", f"{where}.image", [1.0]),
            scale=_get(it, "scale", f"{where}.image", float, 1.0 / 255.0),
            channels=_get(it, "channels", f"{where}.image", int, 3, (1, 3)),
            layout=_get(it, "layout", f"{where}.image", str, "NCHW", ("NCHW", "NHWC")),
        )
    else:
        columns = _expand_columns(t.get("columns", "*"), header, id_column, where)
        fixed = [d for d in shape[1:] if isinstance(d, int)]
        size = 1
        for d in fixed:
            size *= d
        if len(fixed) == len(shape) - 1 and size != len(columns):
            raise _err(where, f"shape {shape} needs {size} values per row but {len(columns)} column(s) were selected")
    return InputSpec(name=name, dtype=dtype, shape=tuple(shape), columns=columns, image=image)


def _parse_variant(t: dict, where: str, default_tta: tuple[str, ...]) -> VariantSpec:
    tta = tuple(_get(t, "tta", where, list, list(default_tta)))
    bad = [x for x in tta if x not in TTA_TRANSFORMS]
    if bad or not tta:
        raise _err(where, f"tta = {list(tta)!r}; expected a non-empty list of: {', '.join(TTA_TRANSFORMS)}")
    size = _get(t, "image_size", where, list, None)
    if size is not None and (len(size) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                      for d in size)):
        raise _err(where, f"image_size = {size!r}; expected [height, width] in pixels, e.g. [224, 224]")
    vf = _get(t, "value_factor", where, float, 1.0)
    if not 0 < vf <= 1:
        raise _err(where, f"value_factor = {vf}; expected a number in (0, 1]")
    return VariantSpec(
        name=_get(t, "name", where, str), precision=_get(t, "precision", where, str, "fp32", PRECISIONS),
        tta=tta, image_size=tuple(size) if size else None, value_factor=vf,
    )


def _parse_model(t: dict, i: int, root: Path, header: list[str] | None, data: DataSpec) -> ModelSpec:
    name = _get(t, "name", f"[[model]] #{i + 1}", str)
    where = f"[[model]] {name!r}"
    given = [s for s in SOURCES if s in t]
    if len(given) != 1:
        raise _err(where, f"give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
    source = given[0]
    factory, path = "", None
    if source == "factory":
        factory = _get(t, "factory", where, str)
        if ":" not in factory:
            raise _err(where, f"factory = {factory!r}; expected \"module:function\", e.g. \"models:make_cnn\"")
        ck = t.get("checkpoint")
        path = _path(root, _get(t, "checkpoint", where, str)) if ck is not None else None
    else:
        path = _path(root, _get(t, source, where, str))
    inputs_t = _get(t, "input", where, list)
    inputs = tuple(_parse_input(x, f"{where} input #{n + 1}", header, data.id_column, data.format == "images") for n, x in enumerate(inputs_t))
    if len({x.name for x in inputs}) != len(inputs):
        raise _err(where, "two inputs share a name")
    precision = _get(t, "precision", where, str, "fp32", PRECISIONS)
    tta = tuple(_get(t, "tta", where, list, ["none"]))
    full = _parse_variant({"name": precision, "precision": precision, "tta": list(tta)}, where, tta)
    variants = (full, *(_parse_variant(v, f"{where} variant #{n + 1}", tta) for n, v in enumerate(_get(t, "variant", where, list, []))))
    if len({v.name for v in variants}) != len(variants):
        raise _err(where, f"variant names must be unique (the full model is named {full.name!r})")
    weight = _get(t, "weight", where, float, 1.0)
    if weight <= 0:
        raise _err(where, f"weight = {weight}; expected a positive number")
    batch = _get(t, "batch_size", where, int, 64)
    if batch < 1:
        raise _err(where, f"batch_size = {batch}; expected at least 1")
    sample = _get(t, "sample_inputs", where, str, "")
    artifacts = _get(t, "artifacts", where, list, None)
    if artifacts is not None:
        bad = [a for a in artifacts if a not in ARTIFACTS]
        if bad or "onnx" not in artifacts or len(set(artifacts)) != len(artifacts):
            raise _err(where, f"artifacts = {artifacts!r}; expected [\"onnx\"] or [\"onnx\", \"torch\"] (the ONNX file "
                       "is always carried: it is what every backend but torch runs, and the torch backend's fallback)")
        if "torch" in artifacts and source == "onnx":
            raise _err(where, "artifacts lists \"torch\", but the model is given as an ONNX file: there is no torch model "
                       "to export; give a factory, torchscript or exported_program source, or drop \"torch\"")
        artifacts = tuple(artifacts)
    return ModelSpec(
        name=name, source=source, path=path, factory=factory, factory_kwargs=_get(t, "factory_kwargs", where, dict, {}),
        inputs=inputs, output=_get(t, "output", where, str, "output"),
        activation=_get(t, "activation", where, str, "none", ACTIVATIONS), weight=weight,
        score=_get(t, "score", where, float, None), batch_size=batch, variants=variants,
        sample_inputs=_path(root, sample) if sample else None,
        atol=_get(t, "atol", where, float, None), rtol=_get(t, "rtol", where, float, None), artifacts=artifacts,
    )


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
    name = _get(raw, "name", "top level", str, path.stem)
    d = _get(raw, "data", "top level", dict)
    fmt = _get(d, "format", "[data]", str, "table", ("table", "images"))
    test_path = _path(root, _get(d, "test", "[data]", str))
    data = DataSpec(
        format=fmt, test=test_path.name, id_column=_get(d, "id_column", "[data]", str),
        image_column=_get(d, "image_column", "[data]", str, "" if fmt == "table" else ...),
        image_dir=_get(d, "image_dir", "[data]", str, ""),
    )
    sample_path = _path(root, _get(d, "sample_submission", "[data]", str))
    header = _header(test_path)
    s = _get(raw, "submission", "top level", dict, {})
    mode = _get(s, "mode", "[submission]", str, "values", SUBMISSION_MODES)
    sample_header = _header(sample_path)
    if sample_header is None:
        raise _err("[data]", f"sample_submission = {sample_path} not found (it fixes the submission's columns and row order)")
    if data.id_column not in sample_header:
        raise _err("[data]", f"the sample submission has no id column {data.id_column!r}; its columns: {', '.join(sample_header)}")
    out_cols = [c for c in sample_header if c != data.id_column]
    if mode == "argmax":
        if len(out_cols) != 1:
            raise _err("[submission]", f"mode = \"argmax\" writes one label column, but the sample submission has {out_cols}")
        classes = tuple(str(c) for c in _get(s, "classes", "[submission]", list))
    else:
        classes = ()
    models_t = _get(raw, "model", "top level", list)
    if not models_t:
        raise _err("top level", "no [[model]] given; add at least one")
    models = tuple(_parse_model(t, i, root, header, data) for i, t in enumerate(models_t))
    if len({m.name for m in models}) != len(models):
        raise _err("[[model]]", "model names must be unique")
    e = _get(raw, "ensemble", "top level", dict, {})
    fb = _get(e, "fallback", "[ensemble]", str, "")
    return Spec(
        name=name, root=root, data=data, test_path=test_path, sample_submission=sample_path,
        submission=SubmissionSpecIn(mode=mode, columns=tuple(out_cols), classes=classes), models=models,
        combiner=_get(e, "combiner", "[ensemble]", str, "mean", COMBINERS),
        fallback=_path(root, fb) if fb else None, verify_rows=_get(raw, "verify_rows", "top level", int, 256),
    )


__all__ = ["ModelSpec", "Spec", "SubmissionSpecIn", "VariantSpec", "load_spec"]
