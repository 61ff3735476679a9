"""What the members' stages of a run cost on a target: :class:`Costing`.

:class:`Costing` reads a bundle's measured profile (:class:`runtime.profile.Profile`,
measured by :mod:`packager.estimate.measure.profile`), translates each figure to the
target and prices each member's stages; the bundle-wide stages are priced from it
by :mod:`packager.estimate.price.bundle`:

* ``load`` per member: the measured session creation and the extra cost of
  its first call, plus on a GPU the
  weights' upload and ``GPU_SESSION_S``, plus an engine build
  (``TRT_BUILD_S``, low confidence) when TensorRT builds engines there.
* ``inference`` per member: the measured per-batch path at its batch size.
  The infer part is translated to the target with the roofline model
  (:func:`~packager.estimate.price.roofline.translate`, efficiency calibrated on the
  local measurement), per measured batch size, then interpolated; on a GPU target
  from a profile measured on a CPU (or none), it is priced instead by the GPU
  model fitted to published figures (:mod:`packager.estimate.price.gpuprice`,
  whose basis names the table rows it rests on); the
  preprocess and postprocess parts are host work, scaled by the ratio of
  CPU clocks (:mod:`packager.estimate.price.scaling`). On a GPU target the data stages
  (read, decode, preprocess, as in the run report) overlap inference (the runtime
  prepares chunks ahead: ``runtime.data.pipeline``), so only what they exceed it by is
  counted. ``ceil(rows / batch)`` calls, the last one partial; times the
  factor by which the profile's end-to-end check run found ``predict_rows``
  slower inside the runtime than alone (or faster, where its prefetch threads
  hide the data stages: on the machine it was measured on only).
* ``ensembling`` per member: the runtime checkpoints each chunk of
  predictions (``runtime.execute.checkpoint.member_grid``: whole batches, sized by the profiled cost) and
  reloads and adds every finished member's chunks at each submission write;
  chunk save / load (in a full folder) and the per-row add are measured,
  host-scaled; the runtime's per-chunk bookkeeping beyond that is the
  residual of the profile's end-to-end check runs.

:meth:`Costing.writes` counts the run's submission writes as the runtime spaces them.
Bands are those of :func:`translate` for the translated parts (+-10 % on the
same machine, x0.67..x1.5 within a device kind, x0.5..x2 across kinds) and
x0.67..x1.5 (low confidence) for host work moved to another machine; the
total's band is the sum of the edges (errors assumed to go the same way,
which is the cautious choice). A member without a profile is priced from
spec sheets alone: the roofline at ``SPEC_EFFICIENCY`` of peak, band x0.25..x4,
low confidence (on a GPU target: the fitted GPU model, as above).

:mod:`packager.estimate.preflight` and :mod:`packager.estimate.calibrate` use
:class:`Costing` too; :mod:`packager.estimate.estimator` adds it up, judges it and
plans (so none of them imports the estimator).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from packager.estimate.price.flops import GraphCost, count_graph
from packager.estimate.price.gpufit import Observation
from packager.estimate.price.gpuprice import GpuCall, graph_signature, price_call
from packager.estimate.price.hardware import GB, detect_local, get_target
from packager.estimate.price.items import HOST_BAND, SAME_BAND, SPEC_BAND, EstimateOptions, Item, added, fixed
from packager.estimate.price.roofline import Estimate, lowest_confidence, translate
from packager.estimate.price.scaling import MeasuredOn, measured_on
from runtime.execute.checkpoint import member_grid
from runtime.execute.lanes import choose_lanes, usable_cores
from runtime.manifest import Manifest, Member, Variant
from runtime.profile import BatchPoint, VariantCost
from runtime.run import free_ram, largest_model_bytes
from runtime.schedule.budget import WRITE_SPACING

# Rate constants (documented guesses, each used at low confidence).
KAGGLE_DISK_BYTES_PER_S = 200e6  # reading /kaggle/input (a mounted dataset)
GPU_SESSION_S = 0.5  # per session on a GPU: provider init, memory arena
TRT_BUILD_S = (15.0, 60.0, 300.0)  # engine build per member, no cache: low/expected/high
CUDA_CONTEXT_BYTES = 0.5 * GB  # GPU memory taken before the first tensor
PROCESS_BYTES = 1.0 * GB  # python + onnxruntime + pandas resident set
SPEC_EFFICIENCY = 0.1  # share of peak a kernel mix reaches, without a measurement


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


class Costing:
    """Per-member, per-stage times of one bundle on one target (uncalibrated).

    Args:
        root: The bundle folder (ONNX files are read for their FLOP counts).
        manifest: Its manifest; ``manifest.profile`` holds the measurements.
        options: Target, rows, limit.
    """

    def __init__(self, root: str | Path, manifest: Manifest, options: EstimateOptions,
                 observations: tuple[Observation, ...] = (), anchored: frozenset[str] = frozenset()):
        self.root = Path(root)
        self.manifest = manifest
        self.options = options
        self.profile = manifest.profile
        self.target = get_target(options.target)
        if self.target.key == "local":
            self.target = detect_local(use_gpu=(self.profile.fingerprint.device or "cpu") == "gpu")
        self.key = self.target.key
        self.measured = self.profile.measured
        self.machine: MeasuredOn | None = measured_on(self.profile, self.target) if self.measured else None
        if self.target.key == "local" and self.machine is not None and not self.machine.same:
            # translate() takes "local" for the measured machine: name this one apart.
            self.target = replace(self.target, key="local-unprofiled")
        self._costs: dict[tuple[str, int], GraphCost] = {}
        self._lanes: dict[int, tuple[int, float]] = {}
        self._writes: dict[int, tuple[int, dict[str, int]]] = {}
        # A user's own GPU runs (``--calibrate``), folded into the GPU model's fit; the members in ``anchored``
        # have a calibration of their own, applied to the fit without them (:func:`...estimator.calibrate_items`).
        self.observations, self.anchored = observations, anchored
        self._gpu: dict[tuple[str, int, str, bool], GpuCall] = {}
        self._signatures: dict[str, dict[str, float]] = {}

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
        rec = self.profile.checkpoint.run.lanes
        measured, speedup = int(rec.lanes or 1), float(rec.speedup or 1.0)
        if self.options.lanes is not None:
            n = self.options.lanes
        else:
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

    @property
    def gpu_priced(self) -> bool:
        """Whether the target's inference is priced by the GPU model fitted to published figures
        (:mod:`packager.estimate.price.gpuprice`): a GPU target and a profile not measured on a GPU (a CPU's
        efficiency says nothing of a GPU's). A profile measured on a GPU is translated from that measurement."""
        return self.target.kind == "gpu" and not (self.machine is not None and self.machine.source.kind == "gpu")

    def gpu_call(self, variant: Variant, batch: int, member: str = "") -> GpuCall:
        """One call of a variant's graph at ``batch`` on one of the target's GPUs, by the fitted GPU model (cached):
        refitted on the user's runs, unless ``member`` has a calibration of its own (applied on top instead)."""
        precision = self.precision(variant)
        refit = member not in self.anchored
        key = (variant.file, batch, precision, refit)
        if key not in self._gpu:
            if variant.file not in self._signatures:
                self._signatures[variant.file] = graph_signature(self.root / variant.file)
            self._gpu[key] = price_call(self.cost(variant, batch), self._signatures[variant.file], self.target,
                                        precision, self.options.tensorrt, self.observations if refit else ())
        return self._gpu[key]

    def _sequence(self, variant: Variant) -> dict[str, int]:
        """A text member's symbolic sequence length: its mean padded window over the public test."""
        for member in self.manifest.members:
            if member.text is None or variant not in member.variants:
                continue
            rec = self.record(member, variant)
            text = rec.text if rec is not None else None
            windows = text.lengths.windows if text is not None else None
            seq = (text.padded_tokens or 0) / windows if text is not None and windows else member.text.max_length
            return {"sequence": max(1, round(seq))}
        return {}

    def host(self, seconds: float, notes: tuple[str, ...] = ()) -> Estimate:
        """Host work measured where the profile was: as it stands on the same machine, else clock-scaled."""
        m = self.machine
        if m is None:
            return fixed(seconds, SPEC_BAND, "low", self.key, notes=notes)
        if m.same:
            return fixed(seconds, SAME_BAND, "high", self.key, notes=notes)
        return fixed(seconds * m.host_ratio, HOST_BAND, "low", self.key, notes=(*m.notes, *notes))

    @property
    def measured_basis(self) -> str:
        """The basis of a measured item: ``measured`` here, ``measured, host-scaled`` on another machine."""
        return "measured" if self.machine is not None and self.machine.same else "measured, host-scaled"

    def batch_for(self, member: Member) -> int:
        return self.options.batch_size or member.batch_size

    def record(self, member: Member, variant: Variant) -> VariantCost | None:
        """The profile's measurement of a member's variant; None where it has none."""
        return self.profile.cost(member.name, variant.name)

    def precision(self, variant: Variant) -> str:
        return variant.precision if variant.precision in ("fp32", "fp16", "bf16") else "fp32"

    # -- per member ------------------------------------------------------------------
    def inference(self, member: Member, variant: Variant, batch: int, rows: int) -> tuple[Estimate, str]:
        """Seconds to stream ``rows`` rows through one variant at ``batch``, and the basis."""
        rec = self.record(member, variant)
        precision = self.precision(variant)
        tta = max(len(variant.tta), 1)
        if rec is None or not rec.batches:
            if member.device == "cpu":
                return self._unprofiled_cpu(variant, rows), "rate constant"
            if self.gpu_priced:
                points = [(b, self.gpu_call(variant, b, member.name).estimate.scaled(tta)) for b in sorted({1, batch})]
                return _stream(points, batch, rows), self.gpu_call(variant, batch, member.name).basis
            points = [(b, self._spec_call(self.cost(variant, b), precision).scaled(tta)) for b in sorted({1, batch})]
            return _stream(points, batch, rows), "spec sheet"
        cpu = member.device == "cpu"
        points = [(b, self._measured_call(variant, b, point, precision, tta, cpu, member.name))
                  for b, point in sorted(rec.batches.items())]
        stream = self._inside_the_runtime(_stream(points, batch, rows))
        if rows % batch and rows > batch:  # the last, partial batch is a new shape
            stream = added(stream, self.host(float(rec.reshape_s or 0.0)))
        if rec.text is not None:  # its s_per_row is per-token costs x the public test's lengths (measure.textcost)
            text = rec.text
            stream = replace(stream, notes=(*stream.notes, (
                f"text: {(text.s_per_token or 0.0) * 1e6:.3g} us/token, {text.padded_tokens_per_row or 0.0:.0f} "
                f"padded tokens per row (public mean {text.lengths.tokens_per_row.get('mean', 0.0):.0f} real); "
                f"{text.assumption or ''}")))
        assert self.machine is not None  # measured
        if cpu:
            return stream, self.measured_basis
        if self.gpu_priced:
            return stream, self.gpu_call(variant, batch, member.name).basis
        return stream, "measured" if self.machine.same else "roofline"

    def _measured_call(self, variant: Variant, b: int, point: BatchPoint, precision: str, tta: int,
                       cpu_work: bool = False, member: str = "") -> Estimate:
        """One call at batch ``b`` measured here, on the target: its infer part translated (roofline), the rest host
        work; a member whose graph runs on the CPU whatever the target (``cpu_work``): all of it CPU work."""
        assert self.machine is not None  # measured
        stages = point.stages
        per_batch = float(point.s_per_batch or 0.0)
        infer = float(stages.infer if stages.infer is not None else per_batch)
        host = per_batch - infer
        call = infer / tta
        if cpu_work:
            return added(self.cpu_work(infer), self.host(host))
        if call > 0 and self.gpu_priced:  # the GPU's time from the published figures, not from this CPU's
            est = self.gpu_call(variant, b, member).estimate.scaled(tta)
        elif call > 0:
            est = translate(call, self.cost(variant, b), self.machine.source, self.target, precision,
                            local_precision=precision, data_parallel=False).scaled(tta)
        else:
            est = fixed(0.0, (1, 1), "high", self.key)
        # The data stages of the run report (read, decode, preprocess) are prepared ahead in the runtime's
        # prefetch threads (runtime.data.pipeline): on a GPU target only what exceeds the inference shows.
        data = sum(float(s or 0.0) for s in (stages.read, stages.decode, stages.preprocess))
        if self.target.kind == "gpu" and 0 < data <= host:
            host = host - data + max(0.0, data - est.seconds)
        if point.stable is False:
            est = replace(est, notes=(*est.notes, f"batch {b}: windows never agreed within the tolerance"))
        return added(est, self.host(host))

    def cpu_work(self, seconds: float) -> Estimate:
        """A CPU member's compute measured here (tree ensembles: ONNX Runtime runs their ai.onnx.ml operators on
        the CPU even in a CUDA session), on the target's host CPU: the clock ratio, and where the target has
        fewer cores than measured here, the cores' ratio (its sessions use every core); never faster for more."""
        est = self.host(seconds)
        m = self.machine
        here = int(self.profile.fingerprint.cpu_threads or 0)
        cores = int(self.target.host_cores or 0)
        if m is not None and not m.same and here and cores and cores < here:
            est = replace(est.scaled(here / cores), notes=(*est.notes, f"CPU work: x{here / cores:.2f} for {cores} "
                                                           f"cores on {self.key} against {here} measured"))
        return replace(est, notes=(*est.notes, "CPU work (ai.onnx.ml operators), priced on the host CPU"))

    def _unprofiled_cpu(self, variant: Variant, rows: int) -> Estimate:
        """A CPU member without a profile: its trees' nodes at a rate constant (a tree ensemble's cost is not in
        FLOPs): 2 ns a node visited, depth log2 of its nodes per tree, low confidence."""
        import math

        import onnx

        try:
            graph = onnx.load(str(self.root / variant.file)).graph
        except Exception:  # unreadable: the damage is reported elsewhere
            graph = None
        trees = nodes = 0
        for n in graph.node if graph is not None else ():
            for a in n.attribute:
                if a.name == "nodes_treeids":
                    trees += len(set(a.ints))
                    nodes += len(a.ints)
        depth = math.log2(max(nodes / max(trees, 1), 2))
        seconds = rows * max(trees, 1) * depth * 2e-9
        return fixed(seconds, SPEC_BAND, "low", self.key,
                     notes=(f"CPU work, not profiled: {trees} trees at 2 ns a node visited (rate constant)",))

    def _inside_the_runtime(self, stream: Estimate) -> Estimate:
        """``predict_rows`` inside the runtime against alone (its threads compete, or prefetch): the factor the
        profile's end-to-end check run found, below 1 only on the CPU it was measured on."""
        assert self.machine is not None  # measured
        factor = float(self.profile.checkpoint.run.inference_factor or 1.0)
        if factor < 1.0 and not (self.machine.same and self.target.kind != "gpu"):
            factor = 1.0  # the prefetch threads' overlap was measured on this CPU: elsewhere, not assumed
        if factor == 1.0:
            return stream
        return replace(stream.scaled(factor), notes=(*stream.notes, f"x{factor:.2f} inside the runtime "
                                                     "(the profile's end-to-end check run)"))

    def _spec_call(self, cost: GraphCost, precision: str) -> Estimate:
        hw = self.target
        roof = max(cost.flops / hw.peak_flops(precision), cost.bytes / hw.bandwidth)
        launch = cost.kernels * 5e-6 + (cost.input_bytes + cost.output_bytes) / hw.host_link if hw.kind == "gpu" else 0.0
        seconds = roof / SPEC_EFFICIENCY + launch
        return fixed(seconds, SPEC_BAND, "low", self.key, bound="compute",
                      notes=(f"spec sheets only: {SPEC_EFFICIENCY:.0%} of {hw.name}'s peak assumed",))

    def load(self, member: Member, variant: Variant, batch: int) -> tuple[Estimate, str]:
        """Seconds to create the member's session (and build its engine) on the target."""
        rec = self.record(member, variant)
        weights = self.cost(variant, 1).weight_bytes
        if rec is None:
            est = fixed(0.2 + weights / KAGGLE_DISK_BYTES_PER_S, SPEC_BAND, "low", self.key,
                         notes=("no measured setup: 0.2 s + weights at the disk rate",))
            basis = "rate constant"
        else:
            # Session creation plus the extra cost of its first call (lazy initialisation).
            est = self.host(float(rec.setup_s or 0.0) + float(rec.warmup_s or 0.0))
            basis = self.measured_basis
        measured_on_gpu = self.machine is not None and self.machine.source.kind == "gpu"
        if member.device == "cpu":  # a CPU session wherever it runs: no GPU session, no upload, no engine
            return est, basis
        if self.target.kind == "gpu" and not (self.machine and self.machine.same and measured_on_gpu):
            upload = weights / self.target.host_link
            est = added(est, fixed(GPU_SESSION_S + upload, (0.5, 3.0), "low", self.key,
                                   notes=(f"GPU session {GPU_SESSION_S:g} s + weights upload (rate constant)",)))
        if self.options.tensorrt and self.target.kind == "gpu":
            lo, mid, hi = TRT_BUILD_S
            est = added(est, Estimate(mid, lo, hi, "low", self.key, "fp32", "host", 1.0,
                                     (f"TensorRT engine build, no cache: {mid:g} s ({lo:g}-{hi:g} s)",)))
        return est, basis

    def one_write(self, rows: int) -> float:
        """Seconds of one submission write of ``rows`` rows (measured at packaging, else 2 us a row)."""
        write = self.profile.write
        if write.s_per_row is not None:
            return float(write.fixed_s or 0.0) + float(write.s_per_row) * rows
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
        ensemble = self.profile.ensemble.s_per_row
        per_row = float(ensemble if ensemble is not None else (5e-8 if not self.measured else 0.0))
        adds = self.writes(rows)[1][member.name]  # the writes after this member finishes
        chunk = self.profile.checkpoint
        grid = member_grid(rows, member, self.profile)  # the runtime's own chunks
        chunks = len(grid)
        measured = max(float(chunk.rows or batch), 1.0)
        more = max((grid[0][1] - grid[0][0]) - measured, 0.0)  # rows of a chunk beyond the measured one
        full = float(chunk.save_s or 0.0)
        if chunk.save_s_per_row is not None:  # a file's creation (dearer as its folder fills), then its rows
            few = float(chunk.save_few_s if chunk.save_few_s is not None else full)
            files = max(float(chunk.files or chunks), 1.0)
            save = few + (full - few) * min(chunks / files, 1.0) + more * float(chunk.save_s_per_row)
            load = float(chunk.load_s or 0.0) + more * float(chunk.load_s_per_row or 0.0)
        else:  # an older profile: the measured chunk's cost in proportion
            save = full * (1 + more / measured)
            load = float(chunk.load_s or 0.0) * (1 + more / measured)
        # Beyond saving and reloading: the runtime's per-chunk bookkeeping, the
        # residual of the profile's end-to-end check runs.
        bookkeeping = float(chunk.run.bookkeeping_s_per_chunk or 0.0)
        return self.host(per_row * rows * adds + chunks * (save + adds * load + bookkeeping))

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
        if self.target.kind == "gpu" and lanes > 1 and member.device == "cpu":
            # GPU lanes are devices of their own; the host's cores are one: CPU work on one of N lanes gets a
            # 1/N share of them, so N lanes of it deliver one lane's worth, not N (counted once).
            note = (f"x{lanes}: CPU work on one of {lanes} GPU lanes, which share the host's cores",)
            inf = replace(inf.scaled(lanes), notes=(*inf.notes, *note))
        if self.target.kind != "gpu" and lanes > 1:
            note = (f"x{lanes / speedup:.2f} per lane: {lanes} CPU lanes measured {speedup:.2f}x one lane "
                    "(the profile's check runs)",)
            inf = replace(inf.scaled(lanes / speedup), notes=(*inf.notes, *note))
            ens = replace(ens.scaled(lanes / speedup), notes=(*ens.notes, *note))
        return (Item("load", load, load_basis, member.name, variant.name, batch),
                Item("inference", inf, inf_basis, member.name, variant.name, batch),
                Item("ensembling", ens, self.measured_basis if self.measured else "rate constant",
                     member.name, variant.name, batch))

    def best_batch(self, member: Member, variant: Variant) -> int | None:
        rec = self.record(member, variant)
        return int(rec.best_batch_size) if rec is not None and rec.best_batch_size else None


__all__ = [
    "CUDA_CONTEXT_BYTES",
    "GPU_SESSION_S",
    "KAGGLE_DISK_BYTES_PER_S",
    "PROCESS_BYTES",
    "SPEC_EFFICIENCY",
    "TRT_BUILD_S",
    "Costing",
]
