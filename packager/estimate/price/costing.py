"""What each stage of a run costs on a target: :class:`Costing`, and the types the estimate shares.

:class:`Costing` reads a bundle's measured profile (see
:mod:`packager.estimate.measure.profile`), translates each figure to the target and adds them up per
stage:

* ``install``: the bundle's ``wheels/`` folder (if any) installed offline at
  ``INSTALL_BYTES_PER_S`` after ``INSTALL_FIXED_S`` of pip start-up - a rate
  constant, low confidence. Nothing for ``--target local``.
* ``python``, ``imports`` and ``exit``: the process around the run, as a
  user times it: interpreter start, the imports of the runtime and its
  backend (``python -m runtime run`` imports onnxruntime, pandas and what
  they load), and the interpreter's exit with the sessions loaded (tearing
  down onnxruntime, pandas and pyarrow takes a few tenths of a second).
  Measured at profile time in subprocesses (:func:`packager.estimate.measure.overheads.measure_startup`),
  host-scaled to the target. Profiles from before the split hold one
  ``import_s`` for the three, priced as ``imports``.
* ``verify``: the sha256 verification of every file the manifest lists
  (wheels included) at the measured hash rate, and no faster than
  ``KAGGLE_DISK_BYTES_PER_S`` on a Kaggle target: it grows with the bundle.
* ``startup``: the extra cost of a process's first inference session, the
  runtime's own fixed set-up (from the profile's end-to-end check runs), a
  fresh process's first touches (``startup.cold_s``: the small check run as
  a whole process less its parts, :func:`packager.estimate.measure.overheads.cold_start`;
  where negative, the parts over-count and it comes off ``imports``), plus
  ``CUDA_INIT_S`` of CUDA context creation on a GPU target.
* ``load`` per member: the measured session creation and the extra cost of
  its first call, plus on a GPU the
  weights' upload and ``GPU_SESSION_S``, plus an engine build
  (``TRT_BUILD_S``, low confidence) when TensorRT builds engines there.
* ``read``: reading the test table and sample submission, fitted as fixed +
  per-row on the public table and a tiled copy of it, times the rows.
* ``features``: the features hook (``[data] features``) over every row,
  once, before any member runs: seconds per row measured on the public test
  when packaging (one whole call), host-scaled; ``HOOK_S_PER_ROW`` without a
  measurement. Nothing without a hook.
* ``inference`` per member: the measured per-batch path at its batch size.
  The infer part is translated to the target with the roofline model
  (:func:`~packager.estimate.price.roofline.translate`, efficiency calibrated on the
  local measurement), per measured batch size, then interpolated; the
  preprocess and postprocess parts are host work, scaled by the ratio of
  CPU clocks. On a GPU target the data stages (read, decode, preprocess, as
  in the run report) overlap inference (the runtime prepares chunks ahead:
  ``runtime.data.pipeline``), so only what they exceed it by is counted. ``ceil(rows / batch)`` calls, the last one partial; times the
  factor by which the profile's end-to-end check run found ``predict_rows``
  slower inside the runtime than alone (or faster, where its prefetch threads
  hide the data stages: on the machine it was measured on only).
* ``ensembling`` per member: the runtime checkpoints each chunk of
  predictions (``runtime.execute.checkpoint.member_grid``: whole batches, sized by the profiled cost) and
  reloads and adds every finished member's chunks at each submission write;
  chunk save / load (in a full folder) and the per-row add are measured,
  host-scaled; the runtime's per-chunk bookkeeping beyond that is the
  residual of the profile's end-to-end check runs.
* ``writing``: the runtime writes the submission a first time (the
  fallback file), after a finished member while work is left once
  ``runtime.schedule.budget.WRITE_SPACING`` writes' time has passed since the last
  (:meth:`Costing.writes` follows the members' inference to count them), and
  at the end; one write (combine, format, write atomically) is measured as
  fixed + per row.
* ``postprocess``: the postprocess hook, called at every write but the
  first (which has no predictions yet) over all rows, at its seconds per row
  measured when packaging. Nothing without a hook.

Bands are those of :func:`translate` for the translated parts (+-10 % on the
same machine, x0.67..x1.5 within a device kind, x0.5..x2 across kinds) and
x0.67..x1.5 (low confidence) for host work moved to another machine; the
total's band is the sum of the edges (errors assumed to go the same way,
which is the cautious choice). A member without a profile is priced from
spec sheets alone: the roofline at ``SPEC_EFFICIENCY`` of peak, band x0.25..x4,
low confidence.

:mod:`packager.estimate.preflight` and :mod:`packager.estimate.calibrate` use :class:`Costing` too; :mod:`packager.estimate.estimator`
adds it up, judges it and plans (so none of them imports the estimator).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packager.estimate.price.flops import GraphCost, count_graph
from packager.estimate.price.hardware import (
    GB,
    KAGGLE_HOST_MHZ,
    TARGETS,
    Hardware,
    detect_local,
    from_fingerprint,
    get_target,
)
from packager.estimate.measure.machine import fingerprint
from packager.estimate.price.roofline import Estimate, lowest_confidence, translate
from runtime.schedule.budget import default_margin
from runtime.execute.checkpoint import member_grid
from runtime.errors import SpecError
from runtime.schedule.budget import WRITE_SPACING
from runtime.execute.lanes import choose_lanes, usable_cores
from runtime.manifest import Manifest, Member, Variant
from runtime.run import free_ram, largest_model_bytes

#: The stages of a notebook run, in order.
STAGES = ("install", "python", "imports", "verify", "startup", "load", "read", "features", "inference", "ensembling",
          "writing", "postprocess", "exit")
HOOK_S_PER_ROW = 20e-6  # a hook's cost per row, without a measurement (rate constant, low confidence)

# Rate constants (documented guesses, each used at low confidence).
INSTALL_FIXED_S = 5.0  # pip start-up and dependency resolution, offline
INSTALL_BYTES_PER_S = 25e6  # unpacking wheels onto Kaggle's disk
KAGGLE_DISK_BYTES_PER_S = 200e6  # reading /kaggle/input (a mounted dataset)
CUDA_INIT_S = 2.0  # CUDA context + cuDNN/cuBLAS handles, once per process
GPU_SESSION_S = 0.5  # per session on a GPU: provider init, memory arena
TRT_BUILD_S = (15.0, 60.0, 300.0)  # engine build per member, no cache: low/expected/high
CUDA_CONTEXT_BYTES = 0.5 * GB  # GPU memory taken before the first tensor
PROCESS_BYTES = 1.0 * GB  # python + onnxruntime + pandas resident set
SPEC_EFFICIENCY = 0.1  # share of peak a kernel mix reaches, without a measurement
_SPEC_BAND = (0.25, 4.0)
_HOST_BAND = (1 / 1.5, 1.5)
_SAME_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class EstimateOptions:
    """What to estimate for; ``None`` means the default.

    Attributes:
        target: Catalog key (``t4x2``, ``p100``, ``l4``, ``l4x4``, ``a100``, ``h100``,
            ``cpu``, ``local``).
        rows: Rows of the hidden test set.
        time_limit_s: The notebook's run-time limit.
        margin_s: Safety margin; None: the margin ``ninefit run`` keeps
            before it has measured anything (:func:`runtime.schedule.budget.default_margin`:
            0.25 s + 1 % of the limit, never more than 25 % of it), so the verdict
            is judged as the run starts.
        batch_size: Override every member's batch size (as ``ninefit run --batch-size``).
        lanes: Lanes the run uses at once (``ninefit run --lanes``); None: what
            the run's rule gives (see :meth:`Costing.lanes`): one per GPU of a
            GPU target; on this machine (``local``, profiled here) the CPU lanes
            of :func:`runtime.execute.lanes.choose_lanes`; one on another CPU target.
            Each member is priced on one lane; :func:`runtime.schedule.planner.plan_lanes`
            lays the members out over the lanes (side by side, rows split), as
            the run does.
        tensorrt: Engines are built by TensorRT on the target (adds build time).
    """

    target: str = "t4x2"
    rows: int = 0
    time_limit_s: float = 9 * 3600.0
    margin_s: float | None = None
    batch_size: int | None = None
    lanes: int | None = None
    tensorrt: bool = False

    def __post_init__(self) -> None:
        if self.target.strip().lower() not in TARGETS:
            raise SpecError(f"unknown hardware target {self.target!r}; expected one of {', '.join(TARGETS)}")
        if not isinstance(self.rows, int) or self.rows < 1:
            raise SpecError(f"rows = {self.rows!r}: expected the hidden test set's row count, at least 1")
        if not self.time_limit_s > 0 or math.isinf(self.time_limit_s):
            raise SpecError(f"time limit {self.time_limit_s!r} s: expected a positive duration, e.g. 9h")
        if self.margin_s is not None and not 0 <= self.margin_s < self.time_limit_s:
            raise SpecError(f"margin {self.margin_s!r} s: expected at least 0 and less than the "
                            f"time limit ({self.time_limit_s:g} s)")
        if self.batch_size is not None and self.batch_size < 1:
            raise SpecError(f"batch size {self.batch_size}: expected a positive number of rows")
        if self.lanes is not None and (not isinstance(self.lanes, int) or self.lanes < 1):
            raise SpecError(f"lanes = {self.lanes!r}: expected a positive number of lanes")

    @property
    def margin(self) -> float:
        """The margin in seconds."""
        return default_margin(self.time_limit_s) if self.margin_s is None else self.margin_s


@dataclass(frozen=True)
class Item:
    """One line of the estimate: a stage (of one member, or of the whole bundle)."""

    stage: str
    estimate: Estimate
    basis: str  # "measured", "roofline", "spec sheet", "rate constant", "none"
    member: str = ""
    variant: str = ""
    batch_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {"stage": self.stage, "member": self.member, "variant": self.variant,
                "batch_size": self.batch_size, "seconds": e.seconds, "low": e.low, "high": e.high,
                "confidence": e.confidence, "basis": self.basis, "bound": e.bound,
                "notes": list(e.notes)}


@dataclass(frozen=True)
class Check:
    """A pre-flight finding.

    Attributes:
        code: What was checked (``ram``, ``gpu-memory``, ``bf16``, ...).
        level: ``"blocking"`` (the run fails however long the limit: the
            verdict is "does not fit"), ``"warning"`` (act on it) or ``"note"``.
        message: What was found and what to do.
        member: The one member a blocking check rules out (the best plan
            drops it); empty when it blocks the whole run.
    """

    code: str
    level: str
    message: str
    member: str = ""

    @property
    def blocking(self) -> bool:
        return self.level == "blocking"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _fixed(seconds: float, band: tuple[float, float], confidence: str, target: str, bound: str = "host",
           notes: tuple[str, ...] = ()) -> Estimate:
    return Estimate(seconds=seconds, low=seconds * band[0], high=seconds * band[1], confidence=confidence,
                    target=target, precision="fp32", bound=bound, efficiency=1.0, notes=notes)


def _add(a: Estimate, b: Estimate) -> Estimate:
    weighty = b.seconds > 0.01 * a.seconds  # a negligible addition does not lower the confidence
    return replace(a, seconds=a.seconds + b.seconds, low=a.low + b.low, high=a.high + b.high,
                   confidence=lowest_confidence(a.confidence, b.confidence) if weighty else a.confidence,
                   notes=tuple(dict.fromkeys((*a.notes, *b.notes))))


def _interp(points: list[tuple[int, float]], x: int) -> float:
    """Seconds of one call of ``x`` rows from seconds measured at other batch sizes.

    Linear between measured sizes; below the smallest, along the line through
    the two smallest (intercept kept within [0, t_min]); above the largest,
    along the slope of the two largest (never below proportional to it).
    """
    pts = sorted(points)
    for b, t in pts:
        if b == x:
            return t
    if len(pts) == 1:
        b, t = pts[0]
        return t * x / b
    if x < pts[0][0]:
        (b0, t0), (b1, t1) = pts[0], pts[1]
        slope = (t1 - t0) / (b1 - b0)
        intercept = min(max(t0 - slope * b0, 0.0), t0)
        return intercept + (t0 - intercept) * x / b0
    if x > pts[-1][0]:
        (b0, t0), (b1, t1) = pts[-2], pts[-1]
        slope = max((t1 - t0) / (b1 - b0), 0.0)
        return max(t1 + slope * (x - b1), t1 * x / b1 if slope == 0 else 0.0)
    for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
        if b0 < x < b1:
            return t0 + (t1 - t0) * (x - b0) / (b1 - b0)
    raise AssertionError("unreachable")


def _stream(points: list[tuple[int, Estimate]], batch: int, rows: int) -> Estimate:
    """A member's whole run of ``rows`` at ``batch``: full calls plus one partial call."""
    full, rest = divmod(rows, batch)
    first = points[0][1]

    def total(attr: str) -> float:
        pts = [(b, getattr(e, attr)) for b, e in points]
        return full * _interp(pts, batch) + (_interp(pts, rest) if rest else 0.0)

    confidence = lowest_confidence(*(e.confidence for _, e in points))
    notes = tuple(dict.fromkeys(n for _, e in points for n in e.notes))
    return replace(first, seconds=total("seconds"), low=total("low"), high=total("high"),
                   confidence=confidence, notes=notes)


@dataclass
class _Machine:
    """Where the profile was measured, and how host work scales to the target."""

    source: Hardware
    same: bool  # the target is the very machine (and device) that was measured
    host_ratio: float
    notes: tuple[str, ...] = ()


def same_machine(fp: Mapping[str, Any]) -> bool:
    """Whether a profile fingerprint describes this machine (CPU, cores and GPUs)."""
    here = fingerprint()
    names = lambda f: [g.get("name") for g in f.get("gpus") or []]  # noqa: E731
    return (fp.get("cpu_model") == here["cpu_model"] and fp.get("cpu_threads") == here["cpu_threads"]
            and names(fp) == names(here))


def hardware_of(fp: Mapping[str, Any]) -> Hardware:
    """The :class:`Hardware` a profile was measured on: this machine, detected, when the
    fingerprint is this machine's, else :func:`~packager.estimate.price.hardware.from_fingerprint`."""
    if same_machine(fp):
        return detect_local(use_gpu=fp.get("device", "cpu") == "gpu")
    return from_fingerprint(fp)


def _machine(profile: Mapping[str, Any], target: Hardware) -> _Machine:
    fp = profile.get("fingerprint") or {}
    source = hardware_of(fp)
    here = same_machine(fp)
    if target.key == "local":
        same = here and (target.kind == source.kind)
        target_mhz = float(fingerprint()["cpu_mhz"]) if not here else float(fp.get("cpu_mhz") or 0) or 1.0
    else:
        same = False
        target_mhz = KAGGLE_HOST_MHZ
    ratio = 1.0 if same else float(fp.get("cpu_mhz") or KAGGLE_HOST_MHZ) / target_mhz
    notes = () if same else (f"host work scaled by the clock ratio x{ratio:.2f} "
                             f"({fp.get('cpu_mhz') or '?'} MHz here, {target_mhz:.0f} MHz there)",)
    return _Machine(source=source, same=same, host_ratio=ratio, notes=notes)


class Costing:
    """Per-member, per-stage times of one bundle on one target (uncalibrated).

    Args:
        root: The bundle folder (ONNX files are read for their FLOP counts).
        manifest: Its manifest; ``manifest.profile`` holds the measurements.
        options: Target, rows, limit.
    """

    def __init__(self, root: str | Path, manifest: Manifest, options: EstimateOptions):
        self.root = Path(root)
        self.manifest = manifest
        self.options = options
        self.profile = manifest.profile or {}
        self.target = get_target(options.target)
        if self.target.key == "local":
            device = (self.profile.get("fingerprint") or {}).get("device", "cpu")
            self.target = detect_local(use_gpu=device == "gpu")
        self.key = self.target.key
        self.measured = bool(self.profile.get("members"))
        self.machine = _machine(self.profile, self.target) if self.measured else None
        if self.target.key == "local" and self.machine is not None and not self.machine.same:
            # translate() takes "local" for the measured machine: name this one apart.
            self.target = replace(self.target, key="local-unprofiled")
        self._costs: dict[tuple[str, int], GraphCost] = {}
        self._lanes: dict[int, tuple[int, float]] = {}
        self._writes: dict[int, tuple[int, dict[str, int]]] = {}

    # -- helpers ---------------------------------------------------------------------
    def lanes(self, rows: int) -> tuple[int, float]:
        """Lanes the run uses on the target for ``rows`` rows, and what they deliver together in one lane's time.

        A GPU target: ``--lanes``, else one per GPU, each a device of its own
        (N lanes deliver N). A CPU target shares its cores, so its lanes are
        priced from the profile's measured *lane speedup*
        (:func:`packager.estimate.measure.overheads.lane_speedup`: the members' part
        of a run on the rule's N lanes against one, measured here at
        packaging). On this machine the count is the run's own rule
        (:func:`runtime.execute.lanes.choose_lanes` over the cores, the free RAM, the
        largest model and the chunks of ``rows``); elsewhere ``--lanes``, else one. A count
        other than the measured one is interpolated (1 lane: 1x; beyond the
        measured count: no further gain). A profile without the measurement
        prices one lane unless ``--lanes`` says otherwise, then N.
        """
        if rows not in self._lanes:
            self._lanes[rows] = self._count_lanes(rows)
        return self._lanes[rows]

    def _count_lanes(self, rows: int) -> tuple[int, float]:
        if self.target.kind == "gpu":
            n = self.options.lanes or self.target.devices
            return n, float(n)
        rec = ((self.profile.get("checkpoint") or {}).get("run") or {}).get("lanes") or {}
        measured, speedup = int(rec.get("lanes") or 1), float(rec.get("speedup") or 1.0)
        n = self.options.lanes
        if n is None:
            if not (self.machine and self.machine.same) or measured <= 1:
                return 1, 1.0
            chunks = max(len(member_grid(rows, m, self.profile)) for m in self.manifest.members)
            n = len(choose_lanes(gpus=0, cores=usable_cores(), model_bytes=largest_model_bytes(self.root, self.manifest),
                                 ram_free=free_ram(), max_chunks=chunks)[0])
        if n <= 1:
            return 1, 1.0
        if measured <= 1:
            return n, float(n)
        return n, (1 + (speedup - 1) * (n - 1) / (measured - 1) if n < measured else speedup)

    def cost(self, variant: Variant, batch: int) -> GraphCost:
        """FLOP / byte count of a variant's graph at ``batch`` (cached)."""
        key = (variant.file, batch)
        if key not in self._costs:
            self._costs[key] = count_graph(self.root / variant.file, batch, self._sequence(variant))
        return self._costs[key]

    def _sequence(self, variant: Variant) -> dict[str, int]:
        """A text member's symbolic sequence length: its mean padded window over the public test."""
        for member in self.manifest.members:
            if member.text is None or variant not in member.variants:
                continue
            text = (self.record(member, variant) or {}).get("text") or {}
            windows = (text.get("lengths") or {}).get("windows")
            seq = text.get("padded_tokens", 0) / windows if windows else member.text.max_length
            return {"sequence": max(1, round(seq))}
        return {}

    def _host(self, seconds: float, notes: tuple[str, ...] = ()) -> Estimate:
        m = self.machine
        if m is None:
            return _fixed(seconds, _SPEC_BAND, "low", self.key, notes=notes)
        if m.same:
            return _fixed(seconds, _SAME_BAND, "high", self.key, notes=notes)
        return _fixed(seconds * m.host_ratio, _HOST_BAND, "low", self.key, notes=(*m.notes, *notes))

    @property
    def _measured(self) -> str:
        return "measured" if self.machine is not None and self.machine.same else "measured, host-scaled"

    def batch_for(self, member: Member) -> int:
        return self.options.batch_size or member.batch_size

    def record(self, member: Member, variant: Variant) -> Mapping[str, Any] | None:
        return (self.profile.get("members") or {}).get(member.name, {}).get(variant.name)

    def precision(self, variant: Variant) -> str:
        return variant.precision if variant.precision in ("fp32", "fp16", "bf16") else "fp32"

    # -- per member ------------------------------------------------------------------
    def inference(self, member: Member, variant: Variant, batch: int, rows: int) -> tuple[Estimate, str]:
        """Seconds to stream ``rows`` rows through one variant at ``batch``, and the basis."""
        rec = self.record(member, variant)
        precision = self.precision(variant)
        tta = max(len(variant.tta), 1)
        if rec is None or not rec.get("batches"):
            points = []
            for b in sorted({1, batch}):
                cost = self.cost(variant, b)
                points.append((b, self._spec_call(cost, precision).scaled(tta)))
            return _stream(points, batch, rows), "spec sheet"
        points = []
        for key, point in sorted(rec["batches"].items(), key=lambda kv: int(kv[0])):
            b = int(key)
            stages = point.get("stages") or {}
            infer = float(stages.get("infer", point["s_per_batch"]))
            host = float(point["s_per_batch"]) - infer
            call = infer / tta
            if call > 0:
                est = translate(call, self.cost(variant, b), self.machine.source, self.target, precision,
                                local_precision=precision, data_parallel=False).scaled(tta)
            else:
                est = _fixed(0.0, (1, 1), "high", self.key)
            # The data stages of the run report (read, decode, preprocess) are prepared ahead in the runtime's
            # prefetch threads (runtime.data.pipeline): on a GPU target only what exceeds the inference shows.
            data = sum(float(stages.get(k, 0.0)) for k in ("read", "decode", "preprocess"))
            if self.target.kind == "gpu" and 0 < data <= host:
                host = host - data + max(0.0, data - est.seconds)
            if not point.get("stable", True):
                est = replace(est, notes=(*est.notes, f"batch {b}: windows never agreed within the tolerance"))
            points.append((b, _add(est, self._host(host))))
        stream = _stream(points, batch, rows)
        factor = float(((self.profile.get("checkpoint") or {}).get("run") or {}).get("inference_factor") or 1.0)
        if factor < 1.0 and not (self.machine.same and self.target.kind != "gpu"):
            factor = 1.0  # the prefetch threads' overlap was measured on this CPU: elsewhere, not assumed
        if factor != 1.0:  # predict_rows inside the runtime against alone (its threads compete, or prefetch)
            stream = replace(stream.scaled(factor), notes=(*stream.notes, f"x{factor:.2f} inside the runtime "
                                                           "(the profile's end-to-end check run)"))
        if rows % batch and rows > batch:  # the last, partial batch is a new shape
            stream = _add(stream, self._host(float(rec.get("reshape_s", 0.0))))
        text = rec.get("text") if isinstance(rec.get("text"), dict) else None
        if text:  # its s_per_row is per-token costs x the public test's lengths (packager.estimate.measure.textcost)
            per_row = (text.get("lengths") or {}).get("tokens_per_row") or {}
            stream = replace(stream, notes=(*stream.notes, (
                f"text: {text.get('s_per_token', 0.0) * 1e6:.3g} us/token, {text.get('padded_tokens_per_row', 0.0):.0f} "
                f"padded tokens per row (public mean {per_row.get('mean', 0.0):.0f} real); "
                f"{text.get('assumption', '')}")))
        return stream, "measured" if self.machine.same else "roofline"

    def _spec_call(self, cost: GraphCost, precision: str) -> Estimate:
        hw = self.target
        roof = max(cost.flops / hw.peak_flops(precision), cost.bytes / hw.bandwidth)
        launch = cost.kernels * 5e-6 + (cost.input_bytes + cost.output_bytes) / hw.host_link if hw.kind == "gpu" else 0.0
        seconds = roof / SPEC_EFFICIENCY + launch
        return _fixed(seconds, _SPEC_BAND, "low", self.key, bound="compute",
                      notes=(f"spec sheets only: {SPEC_EFFICIENCY:.0%} of {hw.name}'s peak assumed",))

    def load(self, member: Member, variant: Variant, batch: int) -> tuple[Estimate, str]:
        """Seconds to create the member's session (and build its engine) on the target."""
        rec = self.record(member, variant)
        weights = self.cost(variant, 1).weight_bytes
        if rec is None:
            est = _fixed(0.2 + weights / KAGGLE_DISK_BYTES_PER_S, _SPEC_BAND, "low", self.key,
                         notes=("no measured setup: 0.2 s + weights at the disk rate",))
            basis = "rate constant"
        else:
            # Session creation plus the extra cost of its first call (lazy initialisation).
            est = self._host(float(rec.get("setup_s", 0.0)) + float(rec.get("warmup_s", 0.0)))
            basis = self._measured
        measured_on_gpu = self.machine is not None and self.machine.source.kind == "gpu"
        if self.target.kind == "gpu" and not (self.machine and self.machine.same and measured_on_gpu):
            upload = weights / self.target.host_link
            est = _add(est, _fixed(GPU_SESSION_S + upload, (0.5, 3.0), "low", self.key,
                                   notes=(f"GPU session {GPU_SESSION_S:g} s + weights upload (rate constant)",)))
        if self.options.tensorrt and self.target.kind == "gpu":
            lo, mid, hi = TRT_BUILD_S
            est = _add(est, Estimate(mid, lo, hi, "low", self.key, "fp32", "host", 1.0,
                                     (f"TensorRT engine build, no cache: {mid:g} s ({lo:g}-{hi:g} s)",)))
        return est, basis

    def one_write(self, rows: int) -> float:
        """Seconds of one submission write of ``rows`` rows (measured at packaging, else 2 us a row)."""
        write = self.profile.get("write") or {}
        if "s_per_row" in write:
            return float(write.get("fixed_s", 0.0)) + float(write["s_per_row"]) * rows
        return 0.1 + 2e-6 * rows

    def writes(self, rows: int) -> tuple[int, dict[str, int]]:
        """The submission writes of a run, as :meth:`runtime.execute.executor.Executor` spaces them, and per
        member the writes that add its rows in (those after it finishes).

        The first write (before any model), the final one, and one after each finished member but
        the last, once :data:`runtime.schedule.budget.WRITE_SPACING` writes' time has passed since the
        write before. Members finish in manifest order, each after its best rung's inference
        over the lanes' combined speed (:meth:`lanes`).
        """
        if rows not in self._writes:
            one, speedup = self.one_write(rows), self.lanes(rows)[1]
            t = last = 0.0
            after: list[int] = []  # member positions an intermediate write follows
            for k, m in enumerate(self.manifest.members[:-1]):
                t += self.inference(m, m.variants[0], self.batch_for(m), rows)[0].seconds / speedup
                if t - last >= WRITE_SPACING * one:
                    after.append(k)
                    t += one
                    last = t
            adds = {m.name: 1 + sum(1 for j in after if j >= k) for k, m in enumerate(self.manifest.members)}
            self._writes[rows] = (2 + len(after), adds)
        return self._writes[rows]

    def ensembling(self, member: Member, batch: int, rows: int) -> Estimate:
        """Checkpointing the member's chunks, and adding them in at each later write."""
        per_row = float((self.profile.get("ensemble") or {}).get("s_per_row", 5e-8 if not self.measured else 0.0))
        adds = self.writes(rows)[1][member.name]  # the writes after this member finishes
        chunk = self.profile.get("checkpoint") or {}
        grid = member_grid(rows, member, self.profile)  # the runtime's own chunks
        chunks = len(grid)
        measured = max(float(chunk.get("rows") or batch), 1.0)
        more = max((grid[0][1] - grid[0][0]) - measured, 0.0)  # rows of a chunk beyond the measured one
        if "save_s_per_row" in chunk:  # a file's creation (dearer as its folder fills), then its rows
            full, few = float(chunk.get("save_s", 0.0)), float(chunk.get("save_few_s", chunk.get("save_s", 0.0)))
            files = max(float(chunk.get("files") or chunks), 1.0)
            save = few + (full - few) * min(chunks / files, 1.0) + more * float(chunk["save_s_per_row"])
            load = float(chunk.get("load_s", 0.0)) + more * float(chunk.get("load_s_per_row", 0.0))
        else:  # an older profile: the measured chunk's cost in proportion
            save = float(chunk.get("save_s", 0.0)) * (1 + more / measured)
            load = float(chunk.get("load_s", 0.0)) * (1 + more / measured)
        # Beyond saving and reloading: the runtime's per-chunk bookkeeping, the
        # residual of the profile's end-to-end check runs.
        bookkeeping = float((chunk.get("run") or {}).get("bookkeeping_s_per_chunk", 0.0))
        return self._host(per_row * rows * adds + chunks * (save + adds * load + bookkeeping))

    def member_items(self, member: Member, variant: Variant, batch: int, rows: int) -> tuple[Item, Item, Item]:
        """(load, inference, ensembling) items of one member, each on one lane of the run.

        CPU lanes share the cores: where N lanes deliver ``speedup`` times one
        lane (:meth:`lanes`), each lane's inference and ensembling take N /
        ``speedup`` times as long as on one lane alone.
        """
        load, load_basis = self.load(member, variant, batch)
        inf, inf_basis = self.inference(member, variant, batch, rows)
        ens = self.ensembling(member, batch, rows)
        lanes, speedup = self.lanes(rows)
        if self.target.kind != "gpu" and lanes > 1:
            note = (f"x{lanes / speedup:.2f} per lane: {lanes} CPU lanes measured {speedup:.2f}x one lane "
                    "(the profile's check runs)",)
            inf = replace(inf.scaled(lanes / speedup), notes=(*inf.notes, *note))
            ens = replace(ens.scaled(lanes / speedup), notes=(*ens.notes, *note))
        return (Item("load", load, load_basis, member.name, variant.name, batch),
                Item("inference", inf, inf_basis, member.name, variant.name, batch),
                Item("ensembling", ens, self._measured if self.measured else "rate constant",
                     member.name, variant.name, batch))

    # -- bundle-wide -----------------------------------------------------------------
    def bundle_items(self, rows: int) -> list[Item]:
        """install, python, imports, verify, startup, read, writing and exit items."""
        items = [self._install()]
        p = self.profile
        startup = p.get("startup") or {}
        data = p.get("data") or {}
        write = p.get("write") or {}
        cold = float(startup.get("cold_s") or 0.0) if self.measured else 0.0
        if self.measured and startup.get("python_s") is not None:
            items.append(Item("python", self._host(float(startup["python_s"]), ("interpreter start, measured",)),
                              self._measured))
            imports, note = float(startup["imports_s"]), "imports of the runtime and its backend, measured"
            if cold < 0:  # the parts measured apart add up to more than the whole process: the imports over-count
                imports = max(imports + cold, 0.0)
                note += (f", less {-cold:.2f} s: the small check run as a whole process took that much less "
                         "than its parts measured apart (the measure imports what any run may need)")
            items.append(Item("imports", self._host(imports, (note,)), self._measured))
        elif self.measured and startup.get("import_s") is not None:
            items.append(Item("imports", self._host(float(startup["import_s"]), (
                "interpreter start, imports and exit measured together (an older profile)",)), self._measured))
        else:
            items.append(Item("imports", _fixed(3.0, _SPEC_BAND, "low", self.key, notes=(
                "interpreter start, imports and exit not measured: 3 s assumed",)), "rate constant"))
        # Every file the manifest lists is verified, wheels included (added after profiling).
        size = float(_listed_bytes(self.root, self.manifest) or startup.get("bundle_bytes") or 0.0)
        rate = float(startup.get("hash_bytes_per_s") or 0) or 400e6
        note = (f"sha256 of {size / 1e6:.1f} MB (every file the manifest lists)",)
        if self.machine is not None and self.machine.same:
            verify, basis = self._host(size / rate, note), "measured"
        else:
            ratio = self.machine.host_ratio if self.machine else 1.0
            verify = _fixed(size / min(rate / ratio, KAGGLE_DISK_BYTES_PER_S), (0.5, 3.0), "low", self.key,
                            notes=(*note, "at the disk / hash rate (rate constant)"))
            basis = "rate constant"
        items.append(Item("verify", verify, basis))
        est = self._host(float(startup.get("first_session_s") or 0.0) if self.measured else 0.0)
        run = (p.get("checkpoint") or {}).get("run") or {}
        if run.get("fixed_s"):  # the runtime's own set-up, from the profile's end-to-end check runs
            est = _add(est, self._host(float(run["fixed_s"])))
        if cold > 0:  # a fresh process's first touches, measured
            est = _add(est, self._host(cold, (
                "first touches of a fresh process (lazy imports, first calls, the first chunk's wait): "
                "a whole `python -m runtime run` of the small check run less its parts, measured",)))
        measured_on_gpu = self.machine is not None and self.machine.source.kind == "gpu"
        if self.target.kind == "gpu" and not measured_on_gpu:
            est = _add(est, _fixed(CUDA_INIT_S, (0.5, 3.0), "low", self.key,
                                   notes=(f"CUDA context creation {CUDA_INIT_S:g} s (rate constant)",)))
        items.append(Item("startup", est, self._measured if self.measured else "rate constant"))
        if self.measured and startup.get("exit_s") is not None:
            items.append(Item("exit", self._host(float(startup["exit_s"]), (
                "interpreter exit with the sessions loaded, measured",)), self._measured))
        if "read_s_per_row" in data:
            read = self._host(float(data.get("read_fixed_s", 0.0)) + float(data["read_s_per_row"]) * rows)
            items.append(Item("read", read, self._measured))
        else:
            values = sum(max(len(i.columns), 1) for m in self.manifest.members for i in m.inputs)
            items.append(Item("read", _fixed(0.5 + rows * (1e-6 + 1e-7 * values), _SPEC_BAND, "low", self.key,
                                             notes=("not measured: 0.1 us per value",)), "rate constant"))
        items += self._hooks(rows)
        writes = self.writes(rows)[0]
        note = (f"{writes} submission writes (first, after members while work is left, {WRITE_SPACING:g} writes' "
                "time apart at least, last)",)
        if "s_per_row" in write:
            items.append(Item("writing", self._host(writes * self.one_write(rows), note), self._measured))
        else:
            items.append(Item("writing", _fixed(writes * self.one_write(rows), _SPEC_BAND, "low", self.key,
                                                notes=("not measured: 2 us per row", *note)), "rate constant"))
        return items

    def _hooks(self, rows: int) -> list[Item]:
        """The features and postprocess stages: the user's hooks, measured when packaging."""
        measured = (self.profile or {}).get("hooks") or {}
        items = []
        for stage, used, calls, what in (
                ("features", bool(self.manifest.data.features), 1, "features hook over every row, once"),
                ("postprocess", self.manifest.submission.mode == "postprocess", self.writes(rows)[0] - 1,
                 f"postprocess hook over every row at {_plural(self.writes(rows)[0] - 1, 'write')}")):
            if not used:
                items.append(Item(stage, _fixed(0.0, (1, 1), "high", self.key, notes=(f"no {stage} hook",)), "none"))
                continue
            rec = measured.get(stage)
            if rec and "s_per_row" in rec:
                per_call = float(rec.get("fixed_s") or 0.0) * math.ceil(rows / int(rec.get("chunk_rows") or rows or 1))
                items.append(Item(stage, self._host(calls * (float(rec["s_per_row"]) * rows + per_call), (
                    f"{what}, {float(rec['s_per_row']) * 1e6:.1f} us/row measured on {rec.get('rows')} public rows",)),
                    self._measured))
            else:
                items.append(Item(stage, _fixed(calls * HOOK_S_PER_ROW * rows, _SPEC_BAND, "low", self.key, notes=(
                    f"{what}, not measured: {HOOK_S_PER_ROW * 1e6:g} us/row assumed",)), "rate constant"))
        return items

    def _install(self) -> Item:
        wheels = self.root / "wheels"
        if self.options.target.strip().lower() == "local":
            return Item("install", _fixed(0.0, (1, 1), "high", self.key,
                                          notes=("local: the environment is already installed",)), "none")
        if not wheels.is_dir():
            return Item("install", _fixed(0.0, (1, 1), "high", self.key,
                                          notes=("no wheels/ folder: nothing to install",)), "none")
        size = _folder_bytes(wheels)
        seconds = INSTALL_FIXED_S + size / INSTALL_BYTES_PER_S
        return Item("install", _fixed(seconds, (0.5, 3.0), "low", self.key, notes=(
            f"{size / 1e6:.0f} MB of wheels at {INSTALL_BYTES_PER_S / 1e6:.0f} MB/s + {INSTALL_FIXED_S:g} s "
            "(rate constant)",)), "rate constant")

    def best_batch(self, member: Member, variant: Variant) -> int | None:
        rec = self.record(member, variant)
        return int(rec["best_batch_size"]) if rec and rec.get("best_batch_size") else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listed_bytes(root: Path, manifest: Manifest) -> int:
    return sum((root / rel).stat().st_size for rel in manifest.files if (root / rel).is_file())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)



__all__ = [
    "CUDA_CONTEXT_BYTES",
    "PROCESS_BYTES",
    "STAGES",
    "Check",
    "Costing",
    "EstimateOptions",
    "Item",
    "hardware_of",
    "same_machine",
]
