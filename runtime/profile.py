"""The bundle's profile: what each member and each stage of a run cost on the machine that measured them.

``ninefit package`` and ``ninefit profile`` measure it (``packager.estimate.measure``) and store it as
``manifest.profile``; ``ninefit estimate`` prices it on a Kaggle target (``packager.estimate.price``),
and the runtime's planner takes each variant's cost from it until this machine has measured its own
(:mod:`runtime.schedule.costs`). Its parts:

* :attr:`Profile.members`: ``{member: {variant: VariantCost}}``, each variant's cost per row at its
  batch size, set-up, and the measured batch sizes (:class:`BatchPoint`, split into :class:`Stages`);
  a text member's per-token costs (:class:`TextCost`);
* :attr:`~Profile.data` (reading the test table), :attr:`~Profile.write` (one submission write),
  :attr:`~Profile.ensemble`, :attr:`~Profile.checkpoint` (one chunk saved and loaded, and the
  end-to-end check runs, :class:`CheckRun`), :attr:`~Profile.startup` (the process around a run),
  :attr:`~Profile.hooks` (the user's features and postprocess hooks);
* where it was measured: :attr:`~Profile.fingerprint`, :attr:`~Profile.options`, :attr:`~Profile.load`
  (other processes' share of the cores meanwhile).

Each part is a frozen dataclass, read by attribute. A key the measurement did not write (an older
profile, a stage not measured) is ``None`` (an empty part, mapping or tuple for those): each reader
says what it assumes then, as it always has. JSON in and out: :meth:`Part.from_dict` reads every
profile a ninefit wrote; a key this version does not know is kept as it was (written back, never
read); a value of the wrong kind is an error naming its place (``profile.members.cnn.fp32.s_per_row:
expected a number, got a string``), never read as something else. :meth:`Part.to_dict` writes back
the very keys a part was read with (a null stays a null), plus what was set since, so reading and
writing a stored profile does not change its JSON.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

#: Bumped when a key changes meaning; a profile of a newer version is refused, not misread.
PROFILE_VERSION = 1

P = TypeVar("P", bound="Part")


@dataclass(frozen=True)
class Part:
    """A part of the profile. ``extra``: the keys this version does not know, as they were read.
    ``read_keys``: the known keys it was read with (None: built in code), written back even when null."""

    extra: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    read_keys: frozenset[str] | None = field(default=None, kw_only=True, compare=False, repr=False)

    @classmethod
    def from_dict(cls: type[P], data: Any, where: str = "profile") -> P:
        """Read a part from its JSON form (see the module docstring); ``where`` names it in errors.

        Raises:
            ValueError: A value is not of its key's kind, or the part is not a JSON object.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {_kind(data)}")
        hints = _hints(cls)
        known = {k: data[k] for k in data if k in hints}
        values = {k: _read(hints[k], v, f"{where}.{k}") for k, v in known.items()}
        extra = {k: v for k, v in data.items() if k not in hints}
        return cls(**values, extra=extra, read_keys=frozenset(known))

    def updated(self: P, **changes: Any) -> P:
        """A copy with ``changes`` set and written to JSON even where None (``dataclasses.replace`` writes a
        None only where the part was read with that key)."""
        hints = _hints(type(self))
        unknown = set(changes) - set(hints)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no keys {sorted(unknown)}")
        keys = self.read_keys if self.read_keys is not None else {k for k in hints if _is_set(getattr(self, k))}
        return dataclasses.replace(self, **changes, read_keys=frozenset(keys | set(changes)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the keys it was read with, and every one set since (see the module docstring)."""
        out: dict[str, Any] = {}
        for name in _hints(type(self)):
            value = getattr(self, name)
            if (self.read_keys is not None and name in self.read_keys) or _is_set(value):
                out[name] = _write(value)
        out.update(self.extra)
        return out


# -- the members ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stages(Part):
    """Seconds per batch of each part of the per-batch path: the data stages (read, decode, preprocess,
    as in the run report), inference (all TTA passes) and postprocess. ``infer`` None: all of it."""

    read: float | None = None
    decode: float | None = None
    preprocess: float | None = None
    infer: float | None = None
    postprocess: float | None = None


@dataclass(frozen=True)
class BatchPoint(Part):
    """One measured batch size of a variant: the whole per-batch path, timed in windows until they agreed."""

    s_per_row: float | None = None
    s_per_batch: float | None = None
    stable: bool | None = None  # the windows agreed within the tolerance (None: not said, taken as agreed)
    first_call_s: float | None = None
    windows: tuple[float, ...] = ()  # seconds per row of each window
    calls: int | None = None
    rows: int | None = None
    stages: Stages = field(default_factory=Stages)


@dataclass(frozen=True)
class TextPoint(Part):
    """One padded sequence length a text variant was timed at."""

    length: int | None = None
    batch: int | None = None
    s_per_batch: float | None = None
    s_per_window: float | None = None
    stable: bool | None = None


@dataclass(frozen=True)
class TextLengths(Part):
    """The public test's token lengths (``runtime.data.text.length_stats``)."""

    rows: int | None = None
    windows: int | None = None
    tokens: int | None = None
    tokens_per_row: Mapping[str, float] = field(default_factory=dict)  # min, mean, p50, p90, p99, max
    rows_with_windows: int | None = None
    histogram: Mapping[str, int] = field(default_factory=dict)  # "lo-hi" tokens -> rows


@dataclass(frozen=True)
class TextCost(Part):
    """A text variant's cost per token and per window, and what it comes to over the public test."""

    s_per_token: float | None = None
    s_per_window: float | None = None
    s_per_batch: float | None = None
    points: tuple[TextPoint, ...] = ()
    lengths: TextLengths = field(default_factory=TextLengths)
    assumption: str | None = None
    batches: int | None = None
    padded_tokens: int | None = None
    padded_tokens_per_row: float | None = None
    padding_waste: float | None = None


@dataclass(frozen=True)
class VariantCost(Part):
    """What one variant of a member costs: per row at its batch size (``s_per_row``), set-up, and each
    batch size measured."""

    s_per_row: float | None = None
    setup_s: float | None = None
    warmup_s: float | None = None  # the first call's extra cost
    reshape_s: float | None = None  # a new batch shape's extra cost
    batch_size: int | None = None
    best_batch_size: int | None = None
    precision: str | None = None
    tta: int | None = None
    device: str | None = None
    backend: str | None = None
    stable: bool | None = None
    rows_measured: int | None = None
    seconds: float | None = None
    batches: Mapping[int, BatchPoint] = field(default_factory=dict)
    text: TextCost | None = None

    def prior(self) -> dict[str, float]:
        """``{"s_per_row", "setup_s"}`` as the planner takes them (:mod:`runtime.schedule.costs`), those measured."""
        return {k: v for k, v in (("s_per_row", self.s_per_row), ("setup_s", self.setup_s)) if v is not None}


# -- the bundle-wide stages ----------------------------------------------------------------------


@dataclass(frozen=True)
class DataRead(Part):
    """Reading the test table and the sample submission, as fixed + per row; where the rows came from."""

    rows: int | None = None
    format: str | None = None
    table_bytes_per_row: float | None = None
    memory_bytes_per_row: float | None = None
    ids_bytes_per_row: float | None = None
    read_fixed_s: float | None = None
    read_s_per_row: float | None = None
    points: tuple[tuple[float, float], ...] = ()  # (rows, seconds)
    source: str | None = None
    synthetic: bool | None = None


@dataclass(frozen=True)
class Write(Part):
    """One submission write (combine, format, write atomically), as fixed + per row."""

    fixed_s: float | None = None
    s_per_row: float | None = None
    points: tuple[tuple[float, float], ...] = ()  # (rows, seconds)


@dataclass(frozen=True)
class Ensemble(Part):
    """Adding a member's predictions into the ensemble."""

    s_per_row: float | None = None


@dataclass(frozen=True)
class CheckPoint(Part):
    """One end-to-end check run of the runtime and what its report showed."""

    rows: int | None = None
    seconds: float | None = None
    inside_s: float | None = None
    inference_s: float | None = None
    writes: int | None = None
    chunks: int | None = None
    residual_s: float | None = None
    lanes: int | None = None
    span_s: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class ProcessCheck(Part):
    """The small check run as a whole ``python -m runtime run`` process."""

    wall_s: float | None = None
    runs: tuple[float, ...] = ()
    rows: int | None = None


@dataclass(frozen=True)
class LaneSpeedup(Part):
    """The members' part of a run on the lanes the run's rule gives the machine, against one lane."""

    lanes: int | None = None
    threads: int | None = None
    rows: int | None = None
    one_lane_s: float | None = None
    lanes_s: float | None = None
    members_one_lane_s: float | None = None
    speedup: float | None = None
    runs_s: tuple[float, ...] = ()


@dataclass(frozen=True)
class CheckRun(Part):
    """The runtime run end to end at two sizes: its own work beyond the parts measured apart."""

    points: tuple[CheckPoint, ...] = ()
    fixed_s: float | None = None
    overhead_s_per_chunk: float | None = None
    bookkeeping_s_per_chunk: float | None = None
    inference_factor: float | None = None
    repeats_s: tuple[tuple[float, ...], ...] = ()
    process: ProcessCheck = field(default_factory=ProcessCheck)
    lanes: LaneSpeedup = field(default_factory=LaneSpeedup)
    error: str | None = None  # why the check runs failed (their refinements are then left out)


@dataclass(frozen=True)
class Checkpoint(Part):
    """Saving and loading one chunk of predictions, and the end-to-end check runs (``run``)."""

    rows: int | None = None
    files: int | None = None
    save_s: float | None = None
    save_few_s: float | None = None
    load_s: float | None = None
    save_s_per_row: float | None = None
    load_s_per_row: float | None = None
    run: CheckRun = field(default_factory=CheckRun)


@dataclass(frozen=True)
class Startup(Part):
    """The process around a run: interpreter start, imports, exit, the first session, verification."""

    python_s: float | None = None
    imports_s: float | None = None
    exit_s: float | None = None
    import_s: float | None = None  # the three together (an older profile's one figure)
    import_runs: tuple[float, ...] = ()
    first_session_s: float | None = None
    verify_s: float | None = None
    bundle_bytes: int | None = None
    hash_bytes_per_s: float | None = None
    cold_s: float | None = None  # a fresh process's first touches, beyond its measured parts
    note: str | None = None  # why the process stages were not measured


@dataclass(frozen=True)
class HookCost(Part):
    """The user's features or postprocess hook, measured when packaging."""

    hook: str | None = None
    rows: int | None = None
    seconds: float | None = None
    fixed_s: float | None = None
    s_per_row: float | None = None
    points: tuple[tuple[float, float], ...] = ()  # (rows, seconds)
    chunk_rows: int | None = None


# -- where it was measured -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu(Part):
    name: str | None = None
    capability: tuple[int, ...] = ()
    memory_bytes: int | None = None
    sms: int | None = None


@dataclass(frozen=True)
class Fingerprint(Part):
    """The machine and inference stack a profile was measured on."""

    platform: str | None = None
    machine: str | None = None
    python: str | None = None
    cpu_model: str | None = None
    cpu_mhz: float | None = None
    cpu_simd: str | None = None
    cpu_fma: bool | None = None
    # The CPU's int8 and bf16 instruction sets (avx512_vnni, avx_vnni, amx_int8, avx512_bf16, amx_bf16, comma-
    # separated; "" none): what a profile's int8 and bf16 rungs were measured with.
    cpu_isa: str | None = None
    cpu_cores_physical: int | None = None
    cpu_threads: int | None = None
    host_ram_bytes: float | None = None
    gpus: tuple[Gpu, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    intra_op_threads: int | None = None
    backend: str | None = None
    device: str | None = None  # "cpu" or "gpu": where the members ran


@dataclass(frozen=True)
class MeasureOptions(Part):
    """How the profile was measured."""

    seconds_per_member: float | None = None
    tolerance: float | None = None
    stable_windows: int | None = None
    batch_sizes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Load(Part):
    """The other processes' share of the cores while the profile was measured."""

    seconds: float | None = None
    cores: int | None = None
    others_cpu_share: float | None = None
    steal_share: float | None = None


@dataclass(frozen=True)
class Profile(Part):
    """A bundle's measured profile (see the module docstring); ``Profile()`` is none."""

    version: int | None = None
    created: str | None = None
    fingerprint: Fingerprint = field(default_factory=Fingerprint)
    options: MeasureOptions = field(default_factory=MeasureOptions)
    data: DataRead = field(default_factory=DataRead)
    startup: Startup = field(default_factory=Startup)
    ensemble: Ensemble = field(default_factory=Ensemble)
    write: Write = field(default_factory=Write)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    members: Mapping[str, Mapping[str, VariantCost]] = field(default_factory=dict)
    load: Load = field(default_factory=Load)
    hooks: Mapping[str, HookCost] = field(default_factory=dict)  # "features", "postprocess"

    @classmethod
    def from_dict(cls: type[P], data: Any, where: str = "profile") -> P:
        """Read a profile (see :meth:`Part.from_dict`); one of a newer version than :data:`PROFILE_VERSION` is refused.

        Raises:
            ValueError: A value is not of its key's kind, or the profile is of a newer version.
        """
        profile = super().from_dict(data, where)
        version = profile.version  # type: ignore[attr-defined]
        if version is not None and version > PROFILE_VERSION:
            raise ValueError(f"{where}: version {version} is newer than this ninefit reads (up to "
                             f"{PROFILE_VERSION}); profile the bundle again with this ninefit (`ninefit profile`)")
        return profile

    @property
    def measured(self) -> bool:
        """Whether any member was measured (a profile without members prices from spec sheets alone)."""
        return bool(self.members)

    def cost(self, member: str, variant: str) -> VariantCost | None:
        """The measured cost of a member's variant; None when it was not measured."""
        return self.members.get(member, {}).get(variant)

    def priors(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{member: {variant: {"s_per_row", "setup_s"}}}``: the planner's priors (:class:`VariantCost.prior`)."""
        return {m: {v: cost.prior() for v, cost in variants.items()} for m, variants in self.members.items()}


# -- reading and writing -------------------------------------------------------------------------


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The JSON keys of a part and their types (``extra`` and ``read_keys`` are not keys), worked out once."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in ("extra", "read_keys")}
    return _HINTS[cls]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return {str: "a string", int: "a number", float: "a number", list: "an array", tuple: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _read(tp: Any, value: Any, where: str) -> Any:
    """``value`` as of type ``tp``, or a ValueError naming ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _read(inner, value, where)
    if isinstance(tp, type) and issubclass(tp, Part):
        return tp.from_dict(value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected an array, got {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where}: expected an array of {len(args)}, got {len(value)}")
        return tuple(_read(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object, got {_kind(value)}")
        key_type, value_type = args
        return {_key(key_type, k, where): _read(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {_kind(value)}")
        return value  # as written: an int stays an int, so the JSON is the same
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ValueError(f"{where}: expected {_kind(tp())}, got {_kind(value)}")
        return value
    raise TypeError(f"{where}: no reader for {tp!r}")  # a field of a type this module does not read


def _key(tp: Any, key: Any, where: str) -> Any:
    if tp is int:
        try:
            return int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: key {key!r} is not an integer") from None
    return key


def _is_set(value: Any) -> bool:
    """Whether a field built in code is written: a value, a non-empty container, a part read or holding something."""
    if isinstance(value, Part):
        return value.read_keys is not None or bool(value.to_dict())
    if isinstance(value, (Mapping, tuple)):
        return bool(value)
    return value is not None


def _write(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_write(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _write(v) for k, v in value.items()}
    return value


__all__ = [
    "PROFILE_VERSION",
    "BatchPoint",
    "CheckPoint",
    "CheckRun",
    "Checkpoint",
    "DataRead",
    "Ensemble",
    "Fingerprint",
    "Gpu",
    "HookCost",
    "LaneSpeedup",
    "Load",
    "MeasureOptions",
    "Part",
    "ProcessCheck",
    "Profile",
    "Stages",
    "Startup",
    "TextCost",
    "TextLengths",
    "TextPoint",
    "VariantCost",
    "Write",
]
