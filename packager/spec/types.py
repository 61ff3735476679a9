"""What a spec says, once parsed and checked: :class:`Spec`, its models (:class:`ModelSpec`, their rungs
:class:`VariantSpec`), its submission (:class:`SubmissionSpecIn`) and its features hook (:class:`HooksIn`),
and the values a key may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.manifest import DataSpec, InputSpec, ServeSpec, TextSpec

DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
PRECISIONS = ("fp32", "fp16", "int8", "bf16")
#: How an int8 rung is quantized (packager.quantize): by the op mix, weights only (activations at run time), or
#: weights and activations calibrated on the sample rows (QDQ).
QUANTIZE = ("auto", "dynamic", "static")
#: The backend a rung is bound to: "" (the run's own), or OpenVINO on the CPU (bf16 rungs always).
RUNG_BACKENDS = ("", "onnxruntime", "openvino")
#: The accuracy guard's defaults for a low-precision rung (packager.guard; docs/spec.md says why these).
MIN_AGREEMENT = 0.99
MAX_MEAN_ABS_DIFF = 0.01
#: Where a model comes from: torch (a factory, TorchScript, an exported program), an ONNX file, a boosted-tree
#: or scikit-learn model (converted to ONNX, checked against the library's own predictions), a Hugging Face
#: ``save_pretrained`` folder, or a timm architecture with its checkpoint (packager.sources).
SOURCES = ("factory", "torchscript", "exported_program", "onnx", "lightgbm", "xgboost", "catboost", "sklearn",
           "transformers", "timm")
#: Sources converted from another library's model to ONNX (no torch model; parity with the library's own predict).
NATIVE_SOURCES = ("lightgbm", "xgboost", "catboost", "sklearn")
#: Native sources with boosting rounds (the ``rounds`` rung).
BOOSTED_SOURCES = ("lightgbm", "xgboost", "catboost")
#: ``task`` of a ``transformers`` folder: what the model head computes, one vector per text row.
TASKS = ("sequence-classification", "feature-extraction", "token-classification", "multiple-choice")
#: What a converted classifier gives: class probabilities (default), or the raw margins (log-odds).
PREDICTIONS = ("probability", "margin")
#: What a member's bundle files can be: the ONNX file (always), the torch.export program.
ARTIFACTS = ("onnx", "torch")
#: ``init`` values of a factory model without a checkpoint (the only way to package one): "random", its random
#: initial weights on purpose (untrained); "factory", the factory loads its own trained weights.
INITS = ("random", "factory")


@dataclass(frozen=True)
class VariantSpec:
    name: str
    precision: str = "fp32"
    tta: tuple[str, ...] = ("none",)
    image_size: tuple[int, int] | None = None
    value_factor: float = 1.0
    rounds: int = 0  # boosted trees: the first ``rounds`` boosting rounds (0: all of them)
    value_factor_given: bool = True  # False: measured when packaging (a rounds rung without value_factor)
    quantize: str = "auto"  # int8 rungs: one of QUANTIZE
    backend: str = ""  # one of RUNG_BACKENDS
    min_agreement: float = MIN_AGREEMENT  # the accuracy guard of int8, bf16 and OpenVINO rungs
    max_mean_abs_diff: float = MAX_MEAN_ABS_DIFF

    @property
    def guarded(self) -> bool:
        """Whether the rung is checked by the accuracy guard against fp32 (not by parity with torch)."""
        return self.precision in ("int8", "bf16") or self.backend == "openvino"


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
    # Converted sources (packager.sources): the table columns feeding a tree or scikit-learn model (None: its
    # own feature names), probabilities or margins, the share of rows allowed to differ from the library's own
    # predictions, a transformers folder's task, a timm architecture's keyword arguments.
    columns: tuple[str, ...] | None = None
    prediction: str = "probability"
    rows_tolerance: float = 0.001
    task: str = ""
    timm_kwargs: dict[str, Any] = field(default_factory=dict)

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
    serve: ServeSpec | None = None  # [serve]: the evaluation-API shape (None: a submission file only)


__all__ = ["ARTIFACTS", "BOOSTED_SOURCES", "DTYPES", "INITS", "MAX_MEAN_ABS_DIFF", "MIN_AGREEMENT", "NATIVE_SOURCES",
           "PRECISIONS", "PREDICTIONS", "QUANTIZE", "RUNG_BACKENDS", "SOURCES",
           "TASKS", "HooksIn", "ModelSpec", "Spec", "SubmissionSpecIn",
           "VariantSpec"]
