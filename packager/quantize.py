"""int8 copies of fp32 ONNX files: dynamic for MatMul/Gemm graphs, static QDQ calibrated on real rows for conv ones.

onnxruntime's quantization tools (``onnxruntime.quantization``):

- **dynamic** (:func:`quantize_dynamic`): the weights of MatMul/Gemm (and attention) nodes are stored int8,
  their activations quantized at run time per batch. No calibration; the speed-up is in the matrix
  products, so it suits encoders and MLPs. Its int8 kernels are VNNI's (``vpdpbusd``) where the CPU has
  them, AVX2's ``vpmaddubsw`` elsewhere.
- **static** (:func:`quantize_static`, QDQ format): weights and activations int8, the activations' ranges
  calibrated (min/max) on the real sample rows; Conv, MatMul, Gemm, pooling and the element-wise ops
  between them run on int8 tensors. It suits convolutional models, whose convolutions dynamic quantization
  leaves slow (ConvInteger).

``quantize = "auto"`` (the default) picks by the op mix: a graph with at least as many Conv nodes as
MatMul/Gemm nodes is quantized statically, any other dynamically. What stays in float is counted from the
quantized graph (:attr:`Int8Result.kept_float`) and said in report.md. Whether the copy is accurate enough is
the accuracy guard's business (:mod:`packager.guard`), measured on the same rows the rung would change.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import ExportError

LOG = logging.getLogger("ninefit.package")

#: ``quantize`` values of an int8 rung.
QUANTIZE_MODES = ("auto", "dynamic", "static")
#: Rows of the sample the static calibration reads (min/max of each activation), at most.
CALIBRATION_ROWS = 128
#: Batch of the calibration passes.
CALIBRATION_BATCH = 16

_CONV = ("Conv", "ConvTranspose")
_MATMUL = ("MatMul", "Gemm", "Attention")
#: Nodes that are quantization itself, or already integer: not "kept in float".
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
              "QLinearConv", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm",
              "QAttention", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool"}
#: Ops that move or reshape data without arithmetic: not worth naming as float work.
_SHAPE_OPS = {"Shape", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Concat", "Slice",
              "Constant", "ConstantOfShape", "Identity", "Cast", "Expand", "Range", "Split", "Equal", "Where",
              "Not", "Less", "Greater", "Tile", "NonZero", "ScatterND", "Size"}


@dataclass(frozen=True)
class Int8Result:
    """An int8 file and how it was made.

    Attributes:
        path: The int8 ONNX file.
        mode: "dynamic" or "static" (QDQ).
        why: Why that mode ("quantize = \"static\" in the spec", "auto: 20 Conv against 1 MatMul/Gemm node(s)").
        kept_float: Op type -> nodes of that type left in float (no int8 input), shape ops left out.
        quantized: Op type -> nodes of that type computing on int8 tensors.
        calibration: The rows the activations' ranges were calibrated on ("" for dynamic).
    """

    path: Path
    mode: str
    why: str
    kept_float: dict[str, int] = field(default_factory=dict)
    quantized: dict[str, int] = field(default_factory=dict)
    calibration: str = ""

    def describe(self) -> str:
        """``static QDQ (auto: ...): int8 Conv 20, Gemm 1; float: Softmax 1 (calibrated on ...)``."""
        def show(counts: dict[str, int]) -> str:
            return ", ".join(f"{op} {n}" for op, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))) or "none"
        kind = "static QDQ" if self.mode == "static" else "dynamic"
        cal = f"; calibrated on {self.calibration}" if self.calibration else ""
        return f"{kind} ({self.why}): int8 {show(self.quantized)}; stays float: {show(self.kept_float)}{cal}"


def op_mix(path: Path) -> tuple[int, int]:
    """(Conv nodes, MatMul/Gemm nodes) of the graph at ``path`` (its subgraphs' nodes not counted)."""
    import onnx

    ops = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return sum(ops[o] for o in _CONV), sum(ops[o] for o in _MATMUL)


def choose_mode(path: Path, asked: str) -> tuple[str, str]:
    """(mode, why): the spec's ``quantize``, else by the op mix (see the module docstring)."""
    if asked in ("dynamic", "static"):
        return asked, f'quantize = "{asked}" in the spec'
    conv, mm = op_mix(path)
    if conv == 0 and mm == 0:
        raise ExportError(f"{path.name} has no Conv, MatMul or Gemm node: int8 quantization would change nothing "
                          "that costs time; drop the int8 variant")
    mode = "static" if conv and conv >= mm else "dynamic"
    return mode, f"auto: {conv} Conv against {mm} MatMul/Gemm node(s)"


class _Rows:
    """onnxruntime's CalibrationDataReader over the sample rows, in batches (subclassed lazily: see _reader)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def calibration_feeds(feed: dict[str, np.ndarray], rows: int = CALIBRATION_ROWS,
                      batch: int = CALIBRATION_BATCH) -> list[dict[str, np.ndarray]]:
    """The first ``rows`` sample rows in batches of ``batch``."""
    n = min(rows, len(next(iter(feed.values()))))
    return [{k: np.ascontiguousarray(v[a:a + batch]) for k, v in feed.items()} for a in range(0, n, batch)]


def _counts(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(kept float, quantized) op counts of a quantized graph: a node computes on int8 tensors when it is an
    integer op, or when one of its inputs comes from a DequantizeLinear (QDQ)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    kept: Counter[str] = Counter()
    quantized: Counter[str] = Counter()
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            continue
        if n.op_type in _QUANT_OPS or any(i in dq for i in n.input):
            quantized[n.op_type] += 1
        elif n.op_type not in _SHAPE_OPS:
            kept[n.op_type] += 1
    return dict(kept), dict(quantized)


def quantize_int8(src: Path, dest: Path, name: str, asked: str, feed: dict[str, np.ndarray] | None,
                  feeds: Sequence[dict[str, np.ndarray]] | None = None, rows_source: str = "") -> Int8Result:
    """int8 copy of ``src`` at ``dest``.

    Args:
        src: The fp32 ONNX file.
        dest: Where the int8 file goes.
        name: The member, for messages.
        asked: ``quantize`` of the rung: "auto", "dynamic" or "static".
        feed: The sample rows (static calibration reads the first :data:`CALIBRATION_ROWS`).
        feeds: Batches to calibrate on instead (a text model's padded windows).
        rows_source: Where the rows came from, for the report.

    Raises:
        ExportError: No op to quantize, no rows to calibrate on, or onnxruntime's tools failed (named).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    mode, why = choose_mode(src, asked)
    dest.parent.mkdir(parents=True, exist_ok=True)
    calibration = ""
    try:
        with tempfile.TemporaryDirectory(prefix="ninefit-int8-") as tmp:
            if mode == "dynamic":
                quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8)
            else:
                batches = list(feeds) if feeds is not None else calibration_feeds(feed) if feed is not None else []
                if not batches:
                    raise ExportError(f"model {name!r}: static int8 quantization calibrates on real rows, and there "
                                      "are none (give sample_inputs, or the test data)")
                rows = sum(len(next(iter(b.values()))) for b in batches)
                calibration = f"{rows} rows" + (f" of {rows_source}" if rows_source else "")
                reader = type("SampleRows", (_Rows, CalibrationDataReader), {})(batches)
                quantize_static(str(src), str(dest), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibration_providers=["CPUExecutionProvider"],
                                extra_options={"CalibTensorRangeSymmetric": False},
                                calibration_cache_path=Path(tmp) / "calibration")
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime's tools raise anything; say which model and which mode
        dest.unlink(missing_ok=True)
        raise ExportError(f"model {name!r}: {mode} int8 quantization failed: {type(exc).__name__}: "
                          f"{str(exc)[:400]}. Try the other mode (quantize = \"{'static' if mode == 'dynamic' else 'dynamic'}\" "
                          "in its [[model.variant]]), or drop the int8 variant") from exc
    kept, quantized = _counts(dest)
    if not quantized:
        dest.unlink(missing_ok=True)
        raise ExportError(f"model {name!r}: {mode} int8 quantization quantized no node of {src.name} ({why}); "
                          f"try quantize = \"{'static' if mode == 'dynamic' else 'dynamic'}\", or drop the int8 variant")
    result = Int8Result(path=dest, mode=mode, why=why, kept_float=kept, quantized=quantized, calibration=calibration)
    LOG.info(f"{name}: int8 {result.describe()}")
    return result


__all__ = ["CALIBRATION_BATCH", "CALIBRATION_ROWS", "QUANTIZE_MODES", "Int8Result", "calibration_feeds",
           "choose_mode", "op_mix", "quantize_int8"]
