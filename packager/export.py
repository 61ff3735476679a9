"""torch -> ONNX export and its checks (the fp16 copy is :mod:`packager.fp16`).

The torch.export-based (dynamo) exporter is tried first and the TorchScript
exporter is the fallback; which one produced the file is recorded. Every
file then passes ``onnx.checker`` (full check) and shape inference. Weights
are embedded (``external_data=False``) so each variant is one file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from packager.spec import ModelSpec
from runtime.errors import ExportError

OPSET = 20
_OP_PATTERNS = (
    re.compile(r"OpOverload\(op='([\w.]+)'"),
    re.compile(r"operator '([\w:.]+)'"),
    re.compile(r"\b(aten[.:]{1,2}[\w.]+)"),
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str  # "dynamo" | "torchscript" | "onnx-file"
    fallback_reason: str = ""


def failing_op(message: str) -> str:
    """The op an exporter choked on, read off its error message ('' if none is named)."""
    for pattern in _OP_PATTERNS:
        m = pattern.search(message)
        if m:
            return m.group(1)
    return ""


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' chatter (warnings, logs, prints); errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _output_names(spec: ModelSpec, n: int) -> list[str]:
    return [spec.output] + [f"{spec.output}_{k}" for k in range(1, n)]


def export_model(model, spec: ModelSpec, example: dict[str, np.ndarray], dest: Path) -> ExportResult:
    """Export ``model`` to ``dest`` with a dynamic batch dimension; check the file.

    A text model's inputs (``[batch, sequence]`` token ids) also get a dynamic
    sequence dimension, up to its ``max_length``.
    """
    import torch

    args = tuple(torch.from_numpy(np.ascontiguousarray(example[i.name])) for i in spec.inputs)
    names = [i.name for i in spec.inputs]
    with torch.no_grad():
        out = model(*args)
    n_out = len(out) if isinstance(out, (tuple, list)) else 1
    out_names = _output_names(spec, n_out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    batch = torch.export.Dim("batch", min=1)
    dims = {0: batch}
    axes = {0: "batch"}
    if spec.text is not None:
        dims[1] = torch.export.Dim("sequence", min=1, max=max(spec.text.max_length, 2))
        axes[1] = "sequence"
    try:
        with _quiet():
            torch.onnx.export(
                model, args, str(dest), dynamo=True, external_data=False, opset_version=OPSET,
                input_names=names, output_names=out_names, dynamic_shapes=tuple(dict(dims) for _ in args),
            )
        exporter = "dynamo"
    except Exception as exc:
        errors.append(f"dynamo: {type(exc).__name__}: {exc}")
        try:
            with _quiet():
                torch.onnx.export(
                    model, args, str(dest), dynamo=False, opset_version=17, input_names=names, output_names=out_names,
                    dynamic_axes={**{n: dict(axes) for n in names}, **{n: {0: "batch"} for n in out_names}},
                )
            exporter = "torchscript"
        except Exception as exc2:
            errors.append(f"torchscript: {type(exc2).__name__}: {exc2}")
            op = failing_op(errors[0]) or failing_op(errors[1])
            what = f"op {op!r} has no ONNX conversion" if op else "both exporters failed"
            raise ExportError(
                f"model {spec.name!r} cannot be exported to ONNX: {what}. Tried the torch.export-based exporter "
                f"({_first_line(errors[0])}) and the TorchScript exporter ({_first_line(errors[1])}). "
                "Rewrite that part of the model with supported ops, or export it yourself and give `onnx = \"model.onnx\"`."
            ) from exc2
    check_onnx(dest, spec.name)
    return ExportResult(path=dest, exporter=exporter, fallback_reason=_first_line(errors[0]) if errors else "")


def _first_line(text: str) -> str:
    summary = re.search(r"Exception summary\s*\|?\s*(.+?)(?:\n\n|\Z)", text, re.S)
    line = (summary.group(1) if summary else text).strip().splitlines()[-1 if summary else 0]
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:300]


def check_onnx(path: Path, name: str) -> None:
    """onnx.checker full check plus shape inference; ExportError on failure."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        onnx.shape_inference.infer_shapes_path(str(path), str(path), check_type=True, strict_mode=False)
    except Exception as exc:
        raise ExportError(f"model {name!r}: {path.name} fails the ONNX checker: {str(exc)[:500]}") from exc


def copy_onnx(src: Path, dest: Path, name: str) -> ExportResult:
    """An already-exported ONNX model, re-saved with its weights embedded, and checked."""
    import onnx

    if not src.is_file():
        raise ExportError(f"model {name!r}: onnx file {src} not found")
    try:
        model = onnx.load(str(src))  # pulls external data in from beside src
    except Exception as exc:
        raise ExportError(f"model {name!r}: {src} is not a readable ONNX file: {exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dest), save_as_external_data=False)
    check_onnx(dest, name)
    return ExportResult(path=dest, exporter="onnx-file")


__all__ = ["ExportResult", "check_onnx", "copy_onnx", "export_model", "failing_op"]
