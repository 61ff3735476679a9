"""The table of published GPU figures (``packager/data/gpu_figures.toml``), loaded and checked.

Each ``[[figure]]`` is one throughput a source publishes for a model at a size, batch, precision and
backend on one GPU (``GPU_FIGURES.md`` beside the table says how each was read); each ``[sources.<key>]``
describes one source document. :func:`load_figures` reads the table and refuses, with the row and the
field named, anything the GPU estimate could not stand on: a row citing no known source, a throughput
that is not a positive number, a throughput derived from a latency that does not match it, an unknown
GPU, precision, backend or kind of model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from runtime.errors import DataError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TABLE = Path(__file__).resolve().parents[2] / "data" / "gpu_figures.toml"
SCHEMA_VERSION = 1
GPUS = ("T4", "L4", "A100", "H100")
PRECISIONS = ("fp32", "tf32", "fp16", "int8", "fp8")
BACKENDS = ("TensorRT", "ONNX Runtime CUDA EP", "ONNX Runtime TensorRT EP", "PyTorch eager", "PyTorch TorchScript",
            "TensorFlow 2")
KINDS = ("transformer_encoder", "cnn", "cnn_depthwise", "detection", "segmentation_3d")
REBUILDS = ("exact", "approximate")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SOURCE_FIELDS = ("title", "repo", "path", "commit", "date", "software", "method", "url")


class FigureTableError(DataError):
    """The table of published figures is damaged: which row, which field, what was expected."""


@dataclass(frozen=True)
class Source:
    """One source document: where it is (repository, path, commit) and how it measured."""

    key: str
    title: str
    repo: str
    path: str
    commit: str
    date: str
    software: str
    method: str
    url: str


@dataclass(frozen=True)
class Figure:
    """One published figure: a throughput (items per second per GPU) and what it was measured on.

    ``input_shape`` is one item's input (``[seq_len]`` for an encoder, ``[C, H, W]`` for an image, ``[C, D, H, W]``
    for a volume); ``holdout`` marks a row the estimate is checked on, not fitted on; ``rebuild`` says whether a
    model rebuilt from ``arch`` at ``input_shape`` does the published work (``exact``) or not quite
    (``approximate``, ``rebuild_note`` says why).
    """

    id: str
    holdout: bool
    gpu: str
    gpu_variant: str
    n_gpus: int
    model: str
    kind: str
    input_shape: tuple[int, ...]
    batch: int
    precision: str
    backend: str
    backend_detail: str
    throughput: float
    throughput_published: bool
    conditions: str
    rebuild: str
    source: str
    source_url: str
    source_quote: str
    arch: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    rebuild_note: str = ""
    regime: str = ""
    latency_ms: float | None = None

    @property
    def seconds_per_batch(self) -> float:
        """Seconds one GPU takes for one batch of ``batch`` items at the published throughput."""
        return self.batch / self.throughput

    @property
    def family(self) -> str:
        """The model's family as the table names it (``bert-base``, ``resnet50 v1.5``...)."""
        return str(self.arch.get("name") or self.model)


@dataclass(frozen=True)
class FigureTable:
    """The whole table: its sources by key and its figures in file order."""

    sources: dict[str, Source]
    figures: tuple[Figure, ...]
    path: Path

    def figure(self, figure_id: str) -> Figure:
        for f in self.figures:
            if f.id == figure_id:
                return f
        raise KeyError(f"no figure {figure_id!r} in {self.path}")

    @property
    def fitted(self) -> tuple[Figure, ...]:
        return tuple(f for f in self.figures if not f.holdout)

    @property
    def held_out(self) -> tuple[Figure, ...]:
        return tuple(f for f in self.figures if f.holdout)


def _fail(path: Path, where: str, message: str) -> FigureTableError:
    return FigureTableError(f"{path}: {where}: {message}")


class _Row:
    """Typed access to one TOML table, each failure naming the row and the field."""

    def __init__(self, path: Path, where: str, data: Any):
        if not isinstance(data, dict):
            raise _fail(path, where, f"expected a table, got {type(data).__name__}")
        self.path, self.where, self.data = path, where, data

    def get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is not ...:
                return default
            raise _fail(self.path, self.where, f"field {key!r} is missing; expected {expected}")
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise _fail(self.path, self.where, f"field {key!r} = {value!r}; expected {expected}")
        return value

    def text(self, key: str, expected: str = "a non-empty string", default: Any = ...) -> str:
        value = self.get(key, str, expected, default)
        if value is not default and not value.strip():
            raise _fail(self.path, self.where, f"field {key!r} is empty; expected {expected}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, f"one of {', '.join(choices)}")
        if value not in choices:
            raise _fail(self.path, self.where, f"field {key!r} = {value!r}; expected one of {', '.join(choices)}")
        return value

    def positive(self, key: str, kind: type = float, default: Any = ...) -> Any:
        expected = "a positive integer" if kind is int else "a positive number"
        value = self.get(key, (int,) if kind is int else (int, float), expected, default)
        if value is default:
            return value
        if not (value > 0 and math.isfinite(value)):
            raise _fail(self.path, self.where, f"field {key!r} = {value!r}; expected {expected}")
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _source(path: Path, key: str, data: Any) -> Source:
    row = _Row(path, f"[sources.{key}]", data)
    values = {name: row.text(name) for name in _SOURCE_FIELDS}
    if not _COMMIT.match(values["commit"]):
        raise _fail(path, row.where, f"field 'commit' = {values['commit']!r}; expected a 40-digit git commit")
    return Source(key=key, **values)


def _figure(path: Path, index: int, data: Any, sources: dict[str, Source]) -> Figure:
    where = f"figure {index + 1}" + (f" ({data.get('id')!r})" if isinstance(data, dict) and "id" in data else "")
    row = _Row(path, where, data)
    source_key = row.text("source")
    if source_key not in sources:
        raise _fail(path, where, f"field 'source' = {source_key!r} names no [sources] table; expected one of "
                    f"{', '.join(sorted(sources))}")
    source = sources[source_key]
    if row.text("source_repo") != source.repo:
        raise _fail(path, where, f"field 'source_repo' = {row.data['source_repo']!r}; expected {source.repo!r}, "
                    f"the repository of [sources.{source_key}]")
    commit = row.text("source_commit")
    if not _COMMIT.match(commit):
        raise _fail(path, where, f"field 'source_commit' = {commit!r}; expected a 40-digit git commit")
    shape = row.get("input_shape", list, "a list of positive integers (one item's input)")
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise _fail(path, where, f"field 'input_shape' = {shape!r}; expected a list of positive integers")
    fig = Figure(
        id=row.text("id"), holdout=row.get("holdout", bool, "true or false"), gpu=row.choice("gpu", GPUS),
        gpu_variant=row.text("gpu_variant"), n_gpus=row.positive("n_gpus", int), model=row.text("model"),
        kind=row.choice("kind", KINDS), input_shape=tuple(shape), batch=row.positive("batch", int),
        precision=row.choice("precision", PRECISIONS), backend=row.choice("backend", BACKENDS),
        backend_detail=row.text("backend_detail"), throughput=float(row.positive("throughput")),
        throughput_published=row.get("throughput_published", bool, "true or false"),
        conditions=row.text("conditions"), rebuild=row.choice("rebuild", REBUILDS), source=source_key,
        source_url=row.text("source_url"), source_quote=row.text("source_quote"),
        arch=row.get("arch", dict, "an inline table of the architecture"),
        rebuild_note=row.text("rebuild_note", default=""), regime=row.text("regime", default=""),
        latency_ms=row.positive("latency_ms", default=None),
    )
    _check_consistent(path, where, row, fig)
    return fig


def _check_consistent(path: Path, where: str, row: _Row, fig: Figure) -> None:
    """A throughput derived from a latency matches it; a per-GPU figure is the system's over its GPUs."""
    if not fig.throughput_published:
        if fig.latency_ms is None:
            raise _fail(path, where, "throughput_published = false but no 'latency_ms': expected the published "
                        "per-batch latency the throughput is derived from")
        derived = fig.batch * 1000.0 / fig.latency_ms
        if abs(derived - fig.throughput) > 1e-3 * derived:
            raise _fail(path, where, f"throughput {fig.throughput:g} does not match batch * 1000 / latency_ms = "
                        f"{derived:.4g}; expected the derived figure to 4 significant digits")
    if row.get("per_gpu_normalised", bool, "true or false", False):
        raw = row.positive("raw_throughput")
        if abs(raw / fig.n_gpus - fig.throughput) > 1e-3 * fig.throughput:
            raise _fail(path, where, f"throughput {fig.throughput:g} is not raw_throughput {raw:g} / n_gpus "
                        f"{fig.n_gpus}; expected the per-GPU share")
    if fig.kind == "transformer_encoder" and "seq_len" in row.data and row.data["seq_len"] != fig.input_shape[0]:
        raise _fail(path, where, f"seq_len {row.data['seq_len']!r} differs from input_shape {list(fig.input_shape)}")
    if fig.rebuild == "approximate" and not fig.rebuild_note:
        raise _fail(path, where, "rebuild = 'approximate' without a 'rebuild_note' saying why")


@lru_cache(maxsize=4)
def load_figures(path: str | Path | None = None) -> FigureTable:
    """Read and check the table (default: the one shipped with ninefit).

    Raises:
        FigureTableError: Not readable, not TOML, or a row or source is missing a field, has one of the
            wrong kind or out of range, cites an unknown source, or repeats another row's ``id``.
    """
    path = Path(path) if path is not None else TABLE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FigureTableError(f"cannot read the table of published GPU figures {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FigureTableError(f"{path} is not valid TOML ({exc}); expected the table of published GPU "
                               "figures (see GPU_FIGURES.md)") from exc
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise FigureTableError(f"{path}: schema_version = {raw.get('schema_version')!r}; expected {SCHEMA_VERSION}")
    if not isinstance(raw.get("sources"), dict) or not raw["sources"]:
        raise FigureTableError(f"{path}: no [sources.<key>] tables; every figure must cite one")
    sources = {key: _source(path, key, data) for key, data in raw["sources"].items()}
    rows = raw.get("figure")
    if not isinstance(rows, list) or not rows:
        raise FigureTableError(f"{path}: no [[figure]] rows")
    figures = tuple(_figure(path, i, data, sources) for i, data in enumerate(rows))
    seen: set[str] = set()
    for f in figures:
        if f.id in seen:
            raise FigureTableError(f"{path}: figure id {f.id!r} appears twice; expected unique ids")
        seen.add(f.id)
    return FigureTable(sources=sources, figures=figures, path=path)


__all__ = ["BACKENDS", "GPUS", "KINDS", "PRECISIONS", "TABLE", "Figure", "FigureTable", "FigureTableError", "Source",
           "load_figures"]
