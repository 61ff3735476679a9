"""The accuracy guard of a low-precision rung: its predictions against the fp32 model's on the real sample rows.

An int8, bf16 or OpenVINO rung is not compared element by element with torch (int8 is never within fp32's
tolerances, nor meant to be): what matters is whether it changes the submission. So both the fp32 ONNX file
(onnxruntime, CPU) and the rung (on the backend it will run on: onnxruntime, or OpenVINO at its precision)
predict the same sample rows, in the member's batches, and two figures are measured:

* **agreement**: the share of rows whose submitted answer is the same as fp32's, by the submission mode: the
  arg-max (``argmax``, and ``values`` with several outputs: the class a row would be given), the top-k set
  (``topk``), every label's threshold (``multilabel``: a row agrees when all its labels do), one output's 0.5
  threshold (a sigmoid output), else the value within 1e-2 relative (a regression);
* **mean absolute difference** of the probabilities (the member's activation; a softmax of raw outputs where
  the mode reads classes; the raw values of a regression), over every value of every row.

Defaults (``min_agreement`` 0.99, ``max_mean_abs_diff`` 0.01; a spec may tighten or loosen either): one row in
a hundred changing its label moves an accuracy score by at most 0.01 and usually far less (a flipped row is
mostly a near tie, as often right as wrong), which is below the noise between two folds of the same model,
while an int8 rung worth having saves a third of the time or more; a mean probability shift of 0.01 is under a
log-loss's rounding where no label changes. A rung outside either is left out of the bundle with the measured
figures in the message; one within gets its agreement as its value factor unless the spec gives one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.backends import get as get_backend
from runtime.backends.base import BackendOptions, Runner
from runtime.manifest import SubmissionSpec

#: A regression row agrees when its value is within this share of fp32's (or of 1, near zero).
VALUE_RTOL = 1e-2


@dataclass(frozen=True)
class GuardResult:
    """One rung measured against fp32 on the sample rows."""

    model: str
    variant: str
    precision: str
    backend: str
    file: str
    rows: int
    samples: str
    compared: str  # what "agreement" compared: "arg-max", "top-3 set", "labels at their thresholds"...
    agreement: float
    mean_abs_diff: float
    min_agreement: float
    max_mean_abs_diff: float
    how: str = ""  # how the file was made (int8: dynamic or static, what stays float)

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement and self.mean_abs_diff <= self.max_mean_abs_diff

    def reason(self) -> str:
        """Why the rung is left out ("" when it passed)."""
        if self.passed:
            return ""
        low = self.agreement < self.min_agreement
        high = self.mean_abs_diff > self.max_mean_abs_diff
        return (f"measured {self.compared} agreement {self.agreement:.2%} {'<' if low else '>='} min_agreement "
                f"{self.min_agreement:.2%}, mean abs diff {self.mean_abs_diff:.3g} {'>' if high else '<='} "
                f"max_mean_abs_diff {self.max_mean_abs_diff:g}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def probabilities(values: np.ndarray, activation: str, mode: str) -> np.ndarray:
    """Rows x values as the ensemble sees them: the member's activation, else a softmax where the mode reads
    classes from several outputs, else the raw values."""
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if activation == "softmax" or (activation == "none" and mode in ("argmax", "topk") and x.shape[1] > 1):
        return _softmax(x)
    if activation == "sigmoid" or (activation == "none" and mode == "multilabel"):
        return 1.0 / (1.0 + np.exp(-x))
    return x


def agreement(ref: np.ndarray, got: np.ndarray, submission: SubmissionSpec, activation: str) -> tuple[float, str]:
    """(share of rows whose answer agrees, what was compared) on probabilities (:func:`probabilities`)."""
    mode = submission.mode
    if mode == "topk" and submission.k and ref.shape[1] > 1:
        k = min(submission.k, ref.shape[1])
        a = np.sort(np.argsort(-ref, axis=1)[:, :k], axis=1)
        b = np.sort(np.argsort(-got, axis=1)[:, :k], axis=1)
        return float(np.mean(np.all(a == b, axis=1))), f"top-{k} set"
    if mode == "multilabel":
        t = np.asarray(submission.thresholds or (0.5,), dtype=np.float64)
        return float(np.mean(np.all((ref >= t) == (got >= t), axis=1))), "labels at their thresholds"
    if ref.shape[1] > 1:
        return float(np.mean(ref.argmax(1) == got.argmax(1))), "arg-max"
    if activation == "sigmoid":
        return float(np.mean((ref[:, 0] >= 0.5) == (got[:, 0] >= 0.5))), "label at 0.5"
    close = np.abs(ref - got) <= VALUE_RTOL * np.maximum(np.abs(ref), 1.0)
    return float(np.mean(close[:, 0])), f"value within {VALUE_RTOL:g} relative"


def _run(runner: Runner, feeds: Sequence[dict[str, np.ndarray]], output: str) -> np.ndarray:
    with runner:
        outs = [np.asarray(runner.infer(f)[output]) for f in feeds]
    return np.concatenate([o.reshape(len(o), -1) for o in outs])


def rung_runner(path: Path, name: str, precision: str, backend: str) -> Runner:
    """The rung as it will run on a CPU: OpenVINO at its precision, else onnxruntime's CPU provider."""
    if backend == "openvino":
        return get_backend("openvino").load(path, name, BackendOptions(precision=precision))
    return get_backend("onnxruntime").load(path, name, BackendOptions(providers=("CPUExecutionProvider",)))


def guard(model: str, variant: str, precision: str, backend: str, fp32: Path, path: Path,
          feeds: Sequence[dict[str, np.ndarray]], output: str, activation: str, submission: SubmissionSpec,
          samples: str, min_agreement: float, max_mean_abs_diff: float, how: str = "") -> GuardResult:
    """Measure the rung at ``path`` against the fp32 file on ``feeds`` (the sample rows, in batches)."""
    ref_raw = _run(rung_runner(fp32, f"{model}/fp32", "fp32", "onnxruntime"), feeds, output)
    got_raw = _run(rung_runner(path, f"{model}/{variant}", precision, backend), feeds, output)
    ref = probabilities(ref_raw, activation, submission.mode)
    got = probabilities(got_raw, activation, submission.mode)
    share, compared = agreement(ref, got, submission, activation)
    diff = np.abs(ref - got)
    mad = float(np.mean(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0
    return GuardResult(model=model, variant=variant, precision=precision, backend=backend or "onnxruntime",
                       file=path.name, rows=len(ref), samples=samples, compared=compared, agreement=share,
                       mean_abs_diff=mad, min_agreement=min_agreement, max_mean_abs_diff=max_mean_abs_diff, how=how)


__all__ = ["VALUE_RTOL", "GuardResult", "agreement", "guard", "probabilities", "rung_runner"]
