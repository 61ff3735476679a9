"""Parity of each exported file with the original torch model, on real sample data.

The ONNX side runs through the runtime's own onnxruntime backend (the very
code that will run on Kaggle), on CPU. Each output is compared element-wise
with ``|onnx - torch| <= atol + rtol * |torch|`` at batch size 1 and at the
member's batch size; tolerances depend on the precision. Classification-like
outputs also report top-1 agreement, the metric-level view of the difference.

A text model (:func:`verify_text`) is checked on windows of real test rows at
their real lengths: each of the first windows alone (batch 1, no padding), then
all of them in length-sorted batches padded to each batch's longest, exactly as
the runtime will feed them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packager.spec import ModelSpec
from runtime.backends import get as get_backend
from runtime.backends.base import BackendOptions
from runtime.data.text import Chunk, TextRows
from runtime.errors import ShapeMismatchError, ToleranceError
from runtime.manifest import TextSpec

#: (atol, rtol) per precision. fp16 keeps ~3 significant digits; Polygraphy's
#: 1e-5 default fails it, and maintainers call ~1e-2 fine for fp16.
TOLERANCES = {"fp32": (1e-4, 1e-3), "fp16": (2e-2, 2e-2)}


#: A text model's windows checked one by one at their own length (each is one session call).
SINGLE_WINDOWS = 32

@dataclass(frozen=True)
class OutputCheck:
    output: str
    batch: int
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    expected: float
    got: float
    atol: float
    rtol: float
    ok: bool
    top1_agreement: float | None = None
    # Converted tree and scikit-learn members (packager.sources.parity): the share of rows whose value is
    # outside the tolerance, and the share allowed (a float32 input can flip a split at a threshold).
    rows_differing: float | None = None
    rows_tolerance: float | None = None


@dataclass(frozen=True)
class VerifyResult:
    model: str
    variant: str
    precision: str
    file: str
    samples: str  # where the sample inputs came from
    checks: tuple[OutputCheck, ...]
    kept_fp32: dict[str, int] = field(default_factory=dict)  # fp16 files: op type -> nodes left in fp32
    reference: str = "torch"  # what the file was compared with: torch, or the library of a converted model

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def tolerances(spec: ModelSpec, precision: str) -> tuple[float, float]:
    atol, rtol = TOLERANCES[precision]
    return (spec.atol if spec.atol is not None else atol, spec.rtol if spec.rtol is not None else rtol)


def _torch_outputs(model, spec: ModelSpec, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = model(*(torch.from_numpy(np.ascontiguousarray(feed[i.name])) for i in spec.inputs))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().cpu().numpy() for o in out]


def _nan_far(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.inf, x)


def compare(output: str, batch: int, expected: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> OutputCheck:
    """One output at one batch size, element-wise."""
    e = expected.astype(np.float64)
    g = got.astype(np.float64)
    # The same non-finite value on both sides (NaN for NaN, inf for inf of one sign) is faithful;
    # any other NaN in the difference (inf - inf included) is as far off as can be.
    same = (e == g) | (np.isnan(e) & np.isnan(g))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, _nan_far(np.abs(e - g)))
        excess = np.where(same, -np.inf, _nan_far(diff - (atol + rtol * np.abs(e))))
        rel = np.where(same, 0.0, diff / np.maximum(np.abs(np.nan_to_num(e)), 1e-12))
    worst = np.unravel_index(int(np.argmax(excess)), e.shape) if e.size else ()
    agree = None
    if e.ndim == 2 and e.shape[1] > 1:
        agree = float(np.mean(np.argmax(e, axis=1) == np.argmax(np.nan_to_num(g), axis=1)))
    return OutputCheck(
        output=output, batch=batch, shape=tuple(e.shape), max_abs=float(diff.max(initial=0.0)),
        max_rel=float(rel.max(initial=0.0)), worst_index=tuple(int(i) for i in worst),
        expected=float(e[worst]) if e.size else 0.0, got=float(g[worst]) if e.size else 0.0,
        atol=atol, rtol=rtol, ok=bool(e.size == 0 or excess.max() <= 0), top1_agreement=agree,
    )


def verify_file(
    model, spec: ModelSpec, variant: str, precision: str, path: Path, samples: dict[str, np.ndarray], source: str
) -> VerifyResult:
    """Compare ``path`` against ``model`` on ``samples``; raise a ParityError on the first failure."""
    runner = get_backend("onnxruntime").load(path, f"{spec.name}/{variant}", BackendOptions(providers=("CPUExecutionProvider",)))
    return verify_runner(model, spec, variant, precision, runner, path.name, samples, source)


def verify_program(
    model, spec: ModelSpec, variant: str, precision: str, path: Path, samples: dict[str, np.ndarray], source: str
) -> VerifyResult:
    """Compare the torch.export program at ``path``, run by the runtime's torch backend on the CPU
    (an fp16 rung under autocast, as it runs on Kaggle), against ``model``."""
    from runtime.backends.torch import TorchRunner

    opts = BackendOptions(torch_device="cpu", fp16=precision == "fp16", inputs=tuple((i.name, i.dtype) for i in spec.inputs),
                          outputs=(spec.output,))
    return verify_runner(model, spec, variant, precision, TorchRunner(path, f"{spec.name}/{variant}", opts), path.name,
                         samples, source, kind="torch program")


def verify_runner(
    model, spec: ModelSpec, variant: str, precision: str, runner, file: str, samples: dict[str, np.ndarray], source: str,
    kind: str = "ONNX",
) -> VerifyResult:
    """Compare what ``runner`` (inactive) computes against ``model`` at batch 1 and the member's batch size."""
    atol, rtol = tolerances(spec, precision)
    n = len(next(iter(samples.values())))
    batches = sorted({1, min(n, spec.batch_size)})
    checks = []
    with runner:
        names: list[str] = []
        for b in batches:
            expected_all, got_all = [], []
            for start in range(0, n if b > 1 else 1, b):
                feed = {k: v[start:start + b] for k, v in samples.items()}
                expected_all.append(_torch_outputs(model, spec, feed))
                got = runner.infer(feed)
                names = list(getattr(runner, "output_names", None) or got)
                got_all.append([got[name] for name in names])
            for k, name in enumerate(names):
                e = np.concatenate([x[k] for x in expected_all])
                g = np.concatenate([x[k] for x in got_all])
                if e.shape != g.shape:
                    raise ShapeMismatchError(
                        f"model {spec.name!r} variant {variant!r}: output {name!r} has shape {g.shape} in the {kind} "
                        f"but {e.shape} in torch (batch {b})"
                    )
                checks.append(compare(name, b, e, g, atol, rtol))
    result = VerifyResult(spec.name, variant, precision, file, source, tuple(checks))
    for c in checks:
        if not c.ok:
            raise ToleranceError(
                f"model {spec.name!r} variant {variant!r} ({precision}, {kind} {file}) does not match the torch model: output "
                f"{c.output!r} at batch size {c.batch}, element {list(c.worst_index)}: {kind} {c.got:.6g} vs torch "
                f"{c.expected:.6g} (|diff| {abs(c.got - c.expected):.3g}); tolerance |diff| <= {c.atol:g} + "
                f"{c.rtol:g}*|torch|. Max abs error {c.max_abs:.3g}, max rel error {c.max_rel:.3g}"
                + (f", top-1 agreement {c.top1_agreement:.1%}" if c.top1_agreement is not None else "")
                + f" (samples: {source}). Set atol/rtol in the spec only if this difference is acceptable."
            )
    return result


def verify_text(model, m: ModelSpec, text: TextSpec, variant: str, precision: str, path: Path, rows: TextRows,
                n_rows: int, source: str) -> VerifyResult:
    """Parity of ``path`` with ``model`` on real windows at their real lengths, then in padded sorted batches."""
    import torch

    atol, rtol = tolerances(m, precision)
    chunk = Chunk.of(rows, 0, n_rows)
    runner = get_backend("onnxruntime").load(path, f"{m.name}/{variant}", BackendOptions(providers=("CPUExecutionProvider",)))
    checks = []
    with runner, torch.no_grad():
        for label, batches in (("real length", [chunk.order[i:i + 1] for i in range(min(SINGLE_WINDOWS, len(chunk.order)))]),
                               ("sorted, padded", _batches(chunk, m.batch_size, text.max_tokens))):
            expected, got = [], []
            for idx in batches:
                feed = rows.feed(text, chunk.windows[idx])
                out = model(*(torch.from_numpy(feed[i.name]) for i in m.inputs))
                out = out[0] if isinstance(out, (tuple, list)) else out
                expected.append(out.detach().cpu().numpy().reshape(len(idx), -1))
                got.append(np.asarray(runner.infer(feed)[m.output]).reshape(len(idx), -1))
            batch = 1 if label == "real length" else m.batch_size
            checks.append(compare(m.output, batch, np.concatenate(expected), np.concatenate(got), atol, rtol))
            c = checks[-1]
            if not c.ok:
                raise ToleranceError(
                    f"model {m.name!r} variant {variant!r} ({precision}) does not match the torch model on "
                    f"{label} windows: output {m.output!r} element {list(c.worst_index)}: ONNX {c.got:.6g} vs torch "
                    f"{c.expected:.6g}; tolerance |diff| <= {c.atol:g} + {c.rtol:g}*|torch| (samples: {source}). "
                    "Set atol/rtol in the spec only if this difference is acceptable.")
    return VerifyResult(m.name, variant, precision, path.name, source, tuple(checks))


def _batches(chunk: Chunk, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    return [chunk.order[pos:end] for pos, end in chunk.batches(batch_size, max_tokens)]


def text_batches(m: ModelSpec, text: TextSpec, rows: TextRows, n_rows: int) -> list[dict[str, np.ndarray]]:
    """The windows of the first ``n_rows`` rows, in length-sorted batches padded as the runtime pads them (the
    feeds a text member's guarded rungs are measured and calibrated on)."""
    chunk = Chunk.of(rows, 0, n_rows)
    return [rows.feed(text, chunk.windows[idx]) for idx in _batches(chunk, m.batch_size, text.max_tokens)]


__all__ = ["SINGLE_WINDOWS", "OutputCheck", "TOLERANCES", "VerifyResult", "compare", "tolerances", "verify_file",
           "text_batches", "verify_program", "verify_runner", "verify_text"]
