"""The bundle manifest: the contract between the packager and the runtime.

A bundle folder holds ``manifest.json`` (this schema), the ONNX files, the
runtime's own source and a checksum of every file. The packager writes it;
the runtime (inside the offline Kaggle notebook) reads it and refuses to run a
manifest written by a newer schema than it knows.

Everything here is a frozen dataclass with ``to_dict`` / ``from_dict`` so the
JSON round trip is exact and testable.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import BundleError, SchemaVersionError
from runtime.profile import Profile

#: Bumped on any change a reader of an older version could misread.
#: 2: optional torch artifacts (``Variant.torch_file``, ``Member.torch_version``,
#: ``Member.torch_skipped``) and ``Manifest.target``; version 1 manifests still load.
#: 3: hooks (``DataSpec.features*``, ``SubmissionSpec.postprocess``) and the submission formats
#: ``topk``, ``multilabel``, ``long``, ``rle`` (their keys in ``SubmissionSpec``); older manifests still load.
#: 4: ``Manifest.serve`` (:class:`ServeSpec`, the evaluation-API shape); older manifests still load.
#: 5: members converted from other libraries (``Member.source`` lightgbm, xgboost, catboost, sklearn, transformers,
#: timm), ``Member.init`` ("factory": the factory loaded its own weights), ``Member.device`` ("cpu": the graph runs
#: on the CPU whatever the target, e.g. tree ensembles) and the missing-value policy "model"; older manifests still load.
#: 6: ``Manifest.generate`` (:class:`GenerateSpec`, a causal language model answering prompts: runtime.generate);
#: older manifests still load.
#: 7: CPU rungs: ``Variant.precision`` "int8" (a quantized file) and "bf16", ``Variant.backend`` ("openvino": the
#: rung runs on OpenVINO only); older manifests still load.
SCHEMA_VERSION = 7
MANIFEST_NAME = "manifest.json"

#: Activation applied to a model's output before it enters the ensemble.
ACTIVATIONS = ("none", "softmax", "sigmoid")
#: How member outputs are combined, row by row.
COMBINERS = ("mean", "geometric_mean")
#: How the combined vector becomes submission columns.
SUBMISSION_MODES = ("values", "argmax", "topk", "multilabel", "long", "rle", "postprocess")
#: Submission modes a serving run answers: one row per test row, one cell per target.
SERVED_MODES = ("values", "argmax", "topk", "multilabel")
#: What a serving run's answer is built as: the batch's own library, or one named.
SERVE_OUTPUTS = ("auto", "pandas", "polars")
#: The order a rehearsal gateway sends the public test's batches in: shuffled, or as the file has them (time order).
SERVE_ORDERS = ("random", "file")
#: How an ``rle`` mask is flattened before its runs are counted: column by column (Fortran order,
#: the convention of most Kaggle segmentation competitions) or row by row.
RLE_ORDERS = ("column", "row")
#: Test-time-augmentation transforms a variant may apply to image-like inputs.
TTA_TRANSFORMS = ("none", "hflip", "vflip")
#: What a member does with a row whose input values are not finite (NaN, inf):
#: leave the row to the other members ("skip"), stop the run ("error"), or
#: replace those values by ``fill_value`` ("fill"), or give them to the model as they are ("model": tree
#: ensembles route a missing value down the branch they learned for it).
MISSING_POLICIES = ("skip", "error", "fill", "model")
#: Where a member's graph runs: "" (the run's device: the GPU on a GPU target), or "cpu" whatever the target
#: (ONNX Runtime has no GPU kernels for the ai.onnx.ml operators tree ensembles and scikit-learn models use).
MEMBER_DEVICES = ("", "cpu")
#: How a generative member combines its samples' answers: the most frequent (ties by GENERATE_TIES), or the first found.
GENERATE_AGGREGATIONS = ("majority", "first_valid")
#: Which of the answers tied for the lead wins: the one reached first, the smallest or the largest number.
GENERATE_TIES = ("first", "smallest", "largest")
#: A prompt longer than the context allows (context_length - max_new_tokens): the fallback answer, or its end kept.
GENERATE_TOO_LONG = ("refuse", "truncate")
#: The generation engines (runtime.generate.engines): the preferred one installed, or one named.
GENERATE_ENGINES = ("auto", "transformers", "vllm")
#: What a text member's tokenizer can feed, one model input each.
TEXT_FEEDS = ("input_ids", "attention_mask", "token_type_ids")
#: How a text longer than ``max_length`` is handled.
TEXT_TRUNCATIONS = ("windows", "head", "error")
#: How a row's window outputs are reduced to one.
TEXT_REDUCTIONS = ("mean", "max")


@dataclass(frozen=True)
class ImageSpec:
    """How an image file becomes a model input (images data only)."""

    size: tuple[int, int]  # (height, width) after resize
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1.0 / 255.0  # applied to raw 0..255 pixels before mean/std
    channels: int = 3  # 1 = grayscale, 3 = RGB
    layout: str = "NCHW"


@dataclass(frozen=True)
class InputSpec:
    """One model input: its ONNX name, dtype, shape and where its values come from.

    Shapes use a string for symbolic dimensions; the first one is the batch.
    ``columns`` lists the test-table columns flattened into ``shape[1:]``;
    ``image`` says how to decode image files instead.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    columns: tuple[str, ...] = ()
    image: ImageSpec | None = None


@dataclass(frozen=True)
class TextSpec:
    """How a text member tokenises its rows (``[data] format = "text"``; docs/spec.md).

    ``inputs`` lists, in the model's input order, what feeds each of them
    (every one an int64 ``["batch", "sequence"]`` input of the same name).
    """

    columns: tuple[str, ...]  # one text column, or two (a cross-encoder pair)
    tokenizer: str  # tokenizer.json, relative to the bundle root
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    max_length: int = 512  # tokens per window, special tokens included
    truncation: str = "windows"  # one of TEXT_TRUNCATIONS
    stride: int = 0  # windows: tokens shared by consecutive windows
    max_windows: int = 64  # windows: more for one row is an error
    reduce: str = "mean"  # one of TEXT_REDUCTIONS, over a row's windows, after the activation
    max_tokens: int = 0  # padded tokens per batch; 0: batch_size windows per batch
    pad_id: int = 0


@dataclass(frozen=True)
class Variant:
    """One rung of a member's degradation ladder (the first is the full model)."""

    name: str
    file: str  # ONNX file, relative to the bundle root
    precision: str = "fp32"
    tta: tuple[str, ...] = ("none",)
    image_size: tuple[int, int] | None = None
    value_factor: float = 1.0
    data_files: tuple[str, ...] = ()  # external-data files that travel with ``file``
    # The torch.export program (``.pt2``) of this rung, relative to the bundle root; "" when the
    # member carries ONNX only. fp16 rungs share the fp32 program and run it under autocast.
    torch_file: str = ""
    # The backend the rung is bound to: "" (the run's), "onnxruntime", or "openvino" (OpenVINO on the CPU at
    # ``precision``: its fp32, bf16 and int8 rungs; runtime.schedule.rungs leaves it out where it cannot run).
    backend: str = ""


@dataclass(frozen=True)
class Member:
    """One model of the ensemble."""

    name: str
    weight: float
    inputs: tuple[InputSpec, ...]
    output: str
    variants: tuple[Variant, ...]
    activation: str = "none"
    score: float | None = None
    batch_size: int = 64
    exporter: str = ""
    n_outputs: int = 1  # width of the output vector per row
    source: str = ""  # where the weights came from: factory, torchscript, exported_program, onnx ("" in older manifests)
    trained: bool = True  # False: a factory model packaged with its random initial weights (init = "random")
    missing: str = ""  # one of MISSING_POLICIES; "" = the data spec's
    fill_value: float | None = None  # with missing = "fill"; None = the data spec's
    text: TextSpec | None = None  # text members: how rows become token windows
    torch_version: str = ""  # torch that exported the variants' torch programs ("" without one)
    torch_skipped: str = ""  # why the member carries no torch program ("" when it does, or was not asked to)
    init: str = ""  # a factory without a checkpoint: "random" (untrained, on purpose) or "factory" (loads its own)
    device: str = ""  # one of MEMBER_DEVICES: "cpu" for a graph that runs on the CPU whatever the target

    @property
    def value(self) -> float:
        """Value used to rank members: the validation score if given, else the weight."""
        return self.weight * self.score if self.score is not None else self.weight

    def missing_policy(self, data: DataSpec) -> tuple[str, float]:
        """(policy, fill value) for non-finite inputs: the member's own, else the data spec's."""
        policy = self.missing or data.missing
        fill = self.fill_value if self.fill_value is not None else data.fill_value
        return policy, fill

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise BundleError(
            f"member {self.name!r} has no variant {name!r}; "
            f"available: {', '.join(v.name for v in self.variants)}"
        )


@dataclass(frozen=True)
class DataSpec:
    """Where the test data lives relative to ``--data`` and how rows are identified."""

    format: str  # "table" | "images" | "text"
    test: str  # file name of the table, or the index file for images
    id_column: str
    image_column: str = ""  # images: index column holding the file path
    image_dir: str = ""  # images: folder the paths are relative to
    missing: str = "skip"  # non-finite input values: one of MISSING_POLICIES (members may override)
    fill_value: float = 0.0  # the value non-finite inputs take with missing = "fill"
    # The features hook ("module:function", the module in the bundle's hooks/ folder): called per chunk of
    # the test table; what it returns is added to the table (runtime.hooks).
    features: str = ""
    features_files: tuple[str, ...] = ()  # side files it reads, relative to hooks/
    features_group: str = ""  # a column whose groups a chunk never splits ("": the hook is row-wise)
    # The hook's output columns and dtypes on the public test: a chunk where it fails is filled with zeros of them.
    features_columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SubmissionSpec:
    """How the combined ensemble output becomes ``submission.csv``."""

    id_column: str
    columns: tuple[str, ...]  # output columns after the id, in order
    mode: str = "values"  # "values": one column per output; "argmax": label column
    classes: tuple[str, ...] = ()  # argmax, topk, multilabel: label of each output index
    sample: str = "sample_submission.csv"  # file name looked up in --data
    k: int = 0  # topk: labels written per row, best first
    thresholds: tuple[float, ...] = ()  # multilabel: one per class (or one for all)
    separator: str = " "  # topk, multilabel: between labels
    empty: str = ""  # multilabel: a row with no label above its threshold; rle: an empty mask
    targets: tuple[str, ...] = ()  # long: the target of each output index
    id_format: str = "{id}_{target}"  # long: how a row id is formed from the test id and the target
    mask_shape: tuple[int, ...] = ()  # rle: (height, width) of the mask the outputs are
    rle_order: str = "column"  # rle: one of RLE_ORDERS
    threshold: float = 0.5  # rle: a pixel is in the mask when its value is >= threshold
    postprocess: str = ""  # postprocess: "module:function" in the bundle's hooks/ folder
    width: int = 0  # values per row of the combined vector; 0: derived from the mode (values, argmax)


@dataclass(frozen=True)
class ServeSpec:
    """How the bundle serves an evaluation-API competition (``runtime.serve``; docs/spec.md, ``[serve]``).

    The notebook wraps the predictor in ``server``'s class; off Kaggle's rerun it runs the competition's
    local gateway on ``gateway_paths``. The rest shapes ``predict`` (its arguments and answer), its budget,
    and how ``ninefit simulate`` cuts the public test into the gateway's batches.
    """

    server: str = ""  # "kaggle_evaluation.<comp>_inference_server:<Class>"; "": ninefit's stand-in server
    gateway_paths: tuple[str, ...] = ()  # run_local_gateway's data paths, relative to the competition's folder
    arguments: tuple[str, ...] = ("test",)  # predict's positional arguments, in order
    table: str = ""  # the argument holding the rows to predict ("": the first)
    sample: str = ""  # the argument holding the sample submission's slice ("": none)
    files: tuple[tuple[str, str], ...] = ()  # (argument, public file beside the test) for the other arguments
    response_timeout_s: float = 60.0  # every call's deadline but the first
    expected_rows: int = 0  # rows the hidden test has (0: unknown)
    expected_batches: int = 0  # batches the gateway sends (0: unknown)
    batch_by: str = ""  # rehearsal: one batch per value of this test column ("": batch_rows rows each)
    batch_rows: int = 1  # rehearsal: rows per batch without batch_by
    order: str = "random"  # rehearsal: one of SERVE_ORDERS
    output: str = "auto"  # one of SERVE_OUTPUTS
    include_id: bool = True  # the answer starts with the id column
    scalar: bool = False  # the answer is one value (a one-row batch, one target)
    fallback: tuple[tuple[str, float | str], ...] = ()  # (target column, value) for rows nothing covers
    startup_limit_s: float = 900.0  # the server must answer its first call this soon after the notebook starts


@dataclass(frozen=True)
class GenerateSpec:
    """A generative member: a causal LM's Hugging Face folder answering one prompt per test row (runtime.generate;
    docs/spec.md, "Generative models"). Every key is documented there; the budget keys shape the time banking."""

    name: str
    folder: str  # the save_pretrained folder (config, safetensors, tokenizer), relative to the bundle root
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    template: str = "{prompt}"  # the prompt given to the model; {prompt} (and any other test column) filled in
    prompt_hook: str = ""  # "module:function" in hooks/: row dict -> prompt text (instead of the template)
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    samples: int = 8  # at most this many samples per item
    round_samples: int = 0  # samples per engine call (0: as many as fit the item's time, up to samples)
    agree: int = 0  # stop sampling once this many samples agree (0: a majority of samples)
    extractor: str = ""  # a regex: the last match's first group (or the whole match) is the answer
    extractor_hook: str = ""  # "module:function" in hooks/: generated text -> answer text or None
    aggregation: str = "majority"  # one of GENERATE_AGGREGATIONS
    tie: str = "first"  # one of GENERATE_TIES: which of the answers tied for the lead wins
    fallback_answer: str = "0"  # the answer of an item nothing was extracted for
    context_length: int = 0  # tokens (prompt + new); 0: the model config's
    too_long: str = "refuse"  # one of GENERATE_TOO_LONG
    cap: float = 2.0  # an item may use up to this many times its share of the time left
    floor: float = 0.5  # every item not yet answered keeps this share of the first fair share
    probe_items: int = 2  # items whose first round draws one sample, to measure the costs
    batch_items: int = 1  # items answered together, their samples in the same engine calls (1: one at a time)
    engine: str = "auto"  # one of GENERATE_ENGINES
    dtype: str = "auto"  # the weights' dtype at load: auto (the folder's), float32, float16, bfloat16
    seed: int = 0


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to know about a bundle."""

    name: str
    members: tuple[Member, ...]
    data: DataSpec
    submission: SubmissionSpec
    combiner: str = "mean"
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    created: str = ""
    ninefit_version: str = ""
    # What the members and the stages of a run cost where they were measured (runtime.profile); Profile(): none.
    # A mapping is read as the profile's JSON (Profile.from_dict).
    profile: Profile = field(default_factory=Profile)
    fallback: str = ""  # optional relative path of a prior submission-shaped CSV
    # The Kaggle accelerator the bundle was packaged for (t4x2, p100, cpu...): the runtime checks that
    # a GPU target really runs on the GPU. Empty: not recorded (bundles from before it was).
    target: str = ""
    serve: ServeSpec | None = None  # the evaluation-API shape; None: the bundle writes a submission file
    generate: GenerateSpec | None = None  # a generative bundle (its members are empty); None: an ensemble
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.profile, Profile):
            object.__setattr__(self, "profile", Profile.from_dict(self.profile))

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise BundleError(
            f"no member {name!r} in bundle {self.name!r}; "
            f"members: {', '.join(m.name for m in self.members)}"
        )

    # -- JSON --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: self.profile.to_dict() if f.name == "profile" else _plain(getattr(self, f.name))
                for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if not isinstance(d, dict):
            raise BundleError(f"manifest is a JSON {_json_kind(d)}, expected an object with 'schema_version', "
                              "'members', 'data' and 'submission'; is this a ninefit bundle?")
        version = d.get("schema_version")
        if not isinstance(version, int):
            raise BundleError(f"manifest has no integer 'schema_version' (got {version!r}); is this a ninefit bundle?")
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the bundle's manifest uses schema version {version}, but this runtime reads "
                f"versions up to {SCHEMA_VERSION}. Re-package with this ninefit version, or run "
                "the runtime vendored inside the bundle (its runtime/ folder)."
            )
        try:
            return _build(cls, d)
        except (TypeError, KeyError, ValueError) as exc:
            raise BundleError(f"manifest does not match schema version {version}: {exc}") from exc

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike) -> Manifest:
        if not Path(bundle_dir).is_dir():
            raise not_a_bundle_folder(bundle_dir)
        path = Path(bundle_dir) / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleError(f"{path} not found: {bundle_dir} is not a ninefit bundle (expected a manifest.json at its root)") from None
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged") from exc


def not_a_bundle_folder(path: str | os.PathLike) -> BundleError:
    """The error for a bundle argument that is no folder: a file (a spec, most likely: how to package it), or nothing."""
    path = Path(path)
    if path.is_file():
        spec = path.suffix.lower() == ".toml"
        return BundleError(f"{path} is a file{' (a spec, by its name)' if spec else ''}, not a bundle folder: expected "
                           f"the folder `ninefit package` writes. Make one with `ninefit package "
                           f"{path if spec else 'SPEC.toml'} -o DIR` and pass DIR")
    return BundleError(f"bundle folder {path} does not exist (expected the folder `ninefit package` wrote; "
                       "make one with `ninefit package SPEC.toml -o DIR`)")


#: Targets that run on the CPU alone; every other non-empty target is a GPU.
CPU_TARGETS = ("cpu", "local")


def is_gpu_target(target: str) -> bool:
    """Whether a bundle packaged for ``target`` is meant to run on a GPU (empty: unknown, so no)."""
    return bool(target) and target.strip().lower() not in CPU_TARGETS


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null" if value is None else type(value).__name__)


def _plain(value: Any) -> Any:
    """A field's JSON-ready value, as ``dataclasses.asdict`` gives it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build(cls: type, value: Any) -> Any:
    """Rebuild nested frozen dataclasses (and tuples) from plain JSON values."""
    if not isinstance(value, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got a {_json_kind(value)}")
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(value) - set(hints)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}")
    kwargs = {}
    for name, f in hints.items():
        if name not in value:
            continue
        kwargs[name] = _convert(f.type, value[name])
    return cls(**kwargs)


_DATACLASSES = {c.__name__: c for c in (ImageSpec, InputSpec, TextSpec, Variant, Member, DataSpec, SubmissionSpec,
                                          ServeSpec, GenerateSpec)}


def _convert(annotation: object, value: Any) -> Any:
    ann = str(annotation)
    for name, klass in _DATACLASSES.items():
        if ann.startswith(f"tuple[{name}"):
            return tuple(_build(klass, v) for v in value)
        if ann.startswith(name):
            return None if value is None else _build(klass, value)
    if ann.startswith("tuple[tuple") and value is not None:
        return tuple(tuple(v) for v in value)
    if ann.startswith("tuple") and value is not None:
        return tuple(value)
    return value


__all__ = [
    "ACTIVATIONS",
    "COMBINERS",
    "CPU_TARGETS",
    "MANIFEST_NAME",
    "MEMBER_DEVICES",
    "MISSING_POLICIES",
    "RLE_ORDERS",
    "SCHEMA_VERSION",
    "SERVED_MODES",
    "SERVE_ORDERS",
    "SERVE_OUTPUTS",
    "SUBMISSION_MODES",
    "TEXT_FEEDS",
    "TEXT_REDUCTIONS",
    "TEXT_TRUNCATIONS",
    "TTA_TRANSFORMS",
    "GENERATE_AGGREGATIONS",
    "GENERATE_ENGINES",
    "GENERATE_TIES",
    "GENERATE_TOO_LONG",
    "DataSpec",
    "GenerateSpec",
    "ImageSpec",
    "InputSpec",
    "Manifest",
    "Member",
    "ServeSpec",
    "SubmissionSpec",
    "TextSpec",
    "Variant",
    "is_gpu_target",
    "not_a_bundle_folder",
]
