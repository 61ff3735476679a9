"""One call of a member's graph on a GPU target, priced by the fitted model: seconds, band, confidence, basis.

:func:`price_call` is what :class:`~packager.estimate.price.costing.Costing` asks for a GPU target, instead
of carrying the efficiency measured on this machine's CPU over to the GPU:

* the graph's work (:class:`~packager.estimate.price.gpumodel.GraphWork`) on the target's part
  (:mod:`.gpuspec`) at the rung's precision (fp32 as TF32 on Ampere and later, int8 for a quantized graph
  on TensorRT), with the backend the run will use (onnxruntime's TensorRT execution provider with
  ``--tensorrt``, else its CUDA one), by the fitted efficiencies (:mod:`.gpufit`), plus the copy of the
  inputs and outputs over the host link (the published figures leave it out);
* its basis: the model family is recognised by the graph's weights (:func:`graph_signature`: the shapes of
  the weights its products and convolutions read, compared with every table model's); the basis names the
  table rows of the same family on the target's GPU, else says the estimate is extrapolated and from what;
* its band: the cross-validated miss of its basis (``family`` or ``extrapolated``, :class:`.gpufit.Bands`),
  wider for a GPU without figures (P100, RTX PRO 6000) and for a backend the table never shows at that
  precision; its confidence: medium on a same-family basis, low when extrapolated; a user's own runs of
  this very graph (``--calibrate``) anchor it and narrow the band.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import onnx

from packager.estimate.price.figures import Figure, load_figures
from packager.estimate.price.flops import GraphCost
from packager.estimate.price.gpufit import (
    Costs,
    Fit,
    Observation,
    backend_of,
    current_fit,
    load_costs,
    same_family_rows,
    seen,
)
from packager.estimate.price.gpumodel import Case, GraphWork
from packager.estimate.price.gpuspec import DEVICES, DeviceSpec, compute_precision, device_for_target
from packager.estimate.price.hardware import Hardware
from packager.estimate.price.roofline import Estimate, lowest_confidence

#: Share of a graph's product / convolution weights two models must have in common to be one family.
FAMILY_SIMILARITY = 0.85
#: Band widening (log factor) for a GPU without published figures (P100, RTX PRO 6000): a judgment, not a
#: measurement (no figure can check it).
UNKNOWN_GPU_WIDENING = 1.5
#: Unresolved tensors (priced at 0 bytes) beyond this share of a graph's nodes lower the confidence.
UNRESOLVED_SHARE = 0.02
_MIN_LOG_BAND = math.log(1.05)
_COMPUTE_OPS = {"MatMul": "gemm", "Gemm": "gemm", "FusedMatMul": "gemm", "MatMulInteger": "gemm",
                "QLinearMatMul": "gemm", "Conv": "conv", "ConvInteger": "conv", "QLinearConv": "conv",
                "ConvTranspose": "conv"}


def graph_signature(model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, float]:
    """The weights a graph's products and convolutions read: ``"gemm:768x3072"`` -> elements x 4 bytes, summed.

    Dims are sorted (a transposed copy is the same weight) and counted in fp32 bytes whatever the dtype, so the
    fp16 rung of a model has its fp32 rung's signature.
    """
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model), load_external_data=False)
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    weights[node.output[0]] = tuple(attr.t.dims)
    out: dict[str, float] = {}
    for node in proto.graph.node:
        kind = _COMPUTE_OPS.get(node.op_type)
        for name in node.input if kind else ():
            dims = weights.get(name)
            if dims and len(dims) >= 2:
                key = f"{kind}:{'x'.join(str(d) for d in sorted(dims))}"
                out[key] = out.get(key, 0.0) + 4.0 * math.prod(dims)
    return out


def similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """Bytes of weights two signatures share over the larger one's total (1: the same weights)."""
    common = sum(min(v, b.get(k, 0.0)) for k, v in a.items())
    total = max(sum(a.values()), sum(b.values()))
    return common / total if total else 0.0


def model_family(signature: dict[str, float] | None) -> tuple[str, float]:
    """The table model (a costs key, e.g. ``bert-l12-h768-v30522``) a graph is one of, and how alike; ``""``."""
    if not signature:
        return "", 0.0
    scores = {key: similarity(signature, sig) for key, sig in load_costs().signatures.items()}
    best = max(scores, key=scores.__getitem__, default="")
    return (best, scores[best]) if best and scores[best] >= FAMILY_SIMILARITY else ("", 0.0)


def target_device(hw: Hardware) -> DeviceSpec:
    """The part a GPU target is priced as: the catalog's (:func:`.gpuspec.device_for_target`), or one built from
    the target's own peaks (P100, RTX PRO 6000, an unknown local GPU: a family without published figures)."""
    known = device_for_target(hw.device_name)
    if known is not None:
        return known
    peaks = {"fp32": hw.fp32_flops, "fp16": hw.fp16_flops}
    return DeviceSpec(f"catalog:{hw.key}", "", hw.name, peaks, hw.bandwidth, source="; ".join(
        f"{k}: {v}" for k, v in hw.sources.items() if k in ("fp32_flops", "bandwidth")))


#: How the basis of a call priced by the fitted model begins.
BASES = ("published:", "fitted:")


def gpu_fitted(basis: str) -> bool:
    """Whether an item's basis is the fitted GPU model's (:func:`price_call`)."""
    return basis.startswith(BASES)


def backend_for(tensorrt: bool) -> str:
    """The backend a run uses on a GPU: onnxruntime's TensorRT execution provider with ``--tensorrt``, else CUDA."""
    return "ONNX Runtime TensorRT EP" if tensorrt else "ONNX Runtime CUDA EP"


def run_precision(device: DeviceSpec, precision: str, work: GraphWork, backend: str) -> str:
    """The compute precision of a rung: int8 for a quantized graph on TensorRT (where the part has int8), else
    the rung's (fp32 as TF32 where the part has it)."""
    if work.int8_share >= 0.5 and "TensorRT" in backend and "int8" in device.peaks:
        return "int8"
    return compute_precision(device, precision)


@dataclass(frozen=True)
class GpuCall:
    """One call priced on a GPU: its estimate (per device) and the basis the estimate's line shows."""

    estimate: Estimate
    basis: str


def price_call(cost: GraphCost, signature: dict[str, float] | None, target: Hardware, precision: str,
               tensorrt: bool = False, observations: tuple[Observation, ...] = ()) -> GpuCall:
    """Seconds of one call of a graph (counted at its batch) on one of ``target``'s GPUs, with band and basis."""
    device, backend = target_device(target), backend_for(tensorrt)
    work = GraphWork.from_cost(cost)
    cp = run_precision(device, precision, work, backend)
    result = current_fit(observations)
    case = Case(work, device, cp, backend, device.family, "observed")
    seconds = float(result.seconds([case])[0]) + (cost.input_bytes + cost.output_bytes) / target.host_link
    notes: list[str] = []
    basis, log_band, confidence = _basis(result, signature, device, backend, cp, notes, work)
    own = [o for o in observations if o.work == work and o.device == device.key and o.backend == backend
           and o.precision == cp]
    if own:
        seconds, log_band, confidence = _anchor(result, own, seconds, log_band, notes)
        basis += f", anchored on {len(own)} run(s) of it"
    notes.extend(_precision_notes(device, precision, cp, backend, work))
    if cost.unknown_ops or cost.unresolved:
        if cost.unknown_ops or len(cost.unresolved) > UNRESOLVED_SHARE * max(len(cost.nodes), 1):
            confidence = "low"
        notes.append(f"{len(cost.unknown_ops)} unknown op types and {len(cost.unresolved)} unresolved shapes "
                     "priced at 0")
    estimate = Estimate(seconds=seconds, low=seconds * math.exp(-log_band), high=seconds * math.exp(log_band),
                        confidence=lowest_confidence(confidence, target.confidence), target=target.key,
                        precision=precision, bound="compute", efficiency=1.0, notes=tuple(notes))
    return GpuCall(estimate, basis)


def _basis(result: Fit, signature: dict[str, float] | None, device: DeviceSpec, backend: str, cp: str,
           notes: list[str], work: GraphWork) -> tuple[str, float, str]:
    """(basis, log half-width of the band, confidence) of a call, with what it rests on in ``notes``."""
    table, costs = load_figures(), load_costs()
    fitted = [f for f in table.fitted if f.id in result.fitted]
    family, alike = model_family(signature)
    rows = same_family_rows(costs, fitted, family, device.family) if family else []
    rows = sorted(rows, key=lambda f: (f.precision != cp, backend_of(f) != backend))  # the closest rows first
    known = seen(fitted, backend, cp)
    log_band = result.bands.seen if known else result.bands.unseen
    notes.append(f"fitted on {len(result.fitted)} published figures of {', '.join(sorted({f.gpu for f in fitted}))}"
                 f"{f' and {result.observations} run(s) of yours' if result.observations else ''} "
                 f"({len(table.held_out)} more held out to check it)")
    if known:
        notes.append(f"{backend} at {cp} is in the table: cross-validated band x{math.exp(log_band):.2f}")
    else:
        notes.append(f"no published figure of {backend} at {cp}: its efficiency there is extrapolated from its other "
                     f"precisions and the precision's on other backends; cross-validated band of such extrapolations "
                     f"x{math.exp(log_band):.2f}")
    if not device.family:
        log_band *= UNKNOWN_GPU_WIDENING
        notes.append(f"no published figures of {device.name}: priced at its datasheet peaks with the efficiencies "
                     f"of the GPUs that have some, averaged; band widened to x{math.exp(log_band):.2f}")
        return f"fitted: extrapolated (no published figures of {device.name})", log_band, "low"
    if rows:
        ids = [f.id for f in rows]
        notes.append(f"same model family as table rows {', '.join(ids)} on {device.family} (weights {alike:.0%} "
                     "alike); the fit matches them at " + ", ".join(
                         f"x{math.exp(result.residuals.get(i, 0.0)):.2f}" for i in ids) + " (published / estimated)")
        basis = f"published: {ids[0]}" + (f" +{len(ids) - 1}" if len(ids) > 1 else "")
        return basis, log_band, "medium" if known else "low"
    near = nearest_rows(costs, fitted, work, device.family, backend, cp)
    notes.append(f"no table row of this model family on {device.family}: extrapolated by {device.family}'s fitted "
                 "efficiencies per kind of work, precision and backend" + (
                     f"; the nearest rows (its kind of work on {device.family}): {', '.join(near[:3])}" if near else ""))
    what = f"{family} " if family else "same-family "
    rows_named = f" near {near[0]}" + (f" +{len(near) - 1}" if len(near) > 1 else "") if near else ""
    return f"fitted: extrapolated (no {what}row on {device.family}){rows_named}", log_band, "low"


def dominant_work(work: GraphWork) -> str:
    """The kind of compute work holding most of a graph's FLOPs ("" for none)."""
    flops: dict[str, float] = {}
    for kind, f, _, n in work.compute:
        flops[kind] = flops.get(kind, 0.0) + f * n
    return max(flops, key=flops.__getitem__, default="")


def nearest_rows(costs: Costs, rows: list[Figure], work: GraphWork, family: str, backend: str, cp: str) -> list[str]:
    """The fitted rows on ``family`` whose model's main kind of work is the graph's, nearest first: the same backend
    and precision, then the same precision, then the closest FLOPs per call."""
    kind = dominant_work(work)
    same = [f for f in rows if f.gpu == family and kind and dominant_work(costs.work[f.id]) == kind]

    def distance(f: Figure) -> tuple[int, float]:
        level = 0 if backend_of(f) == backend and f.precision == cp else 1 if f.precision == cp else 2
        return level, abs(math.log(max(costs.work[f.id].flops, 1.0) / max(work.flops, 1.0)))

    return [f.id for f in sorted(same, key=distance)]


def _anchor(result: Fit, own: list[Observation], seconds: float, log_band: float,
            notes: list[str]) -> tuple[float, float, str]:
    """Correct by the user's own runs of this graph: their geometric mean over the refitted model; band narrowed."""
    predicted = result.seconds([o.case() for o in own])
    logs = [math.log(o.seconds / p) for o, p in zip(own, predicted)]
    mean = sum(logs) / len(logs)
    spread = math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs)) if len(logs) > 1 else 0.0
    band = max(log_band / math.sqrt(1 + len(own)), 2 * spread, _MIN_LOG_BAND)
    confidence = "high" if len(own) >= 3 and spread < math.log(1.25) else "medium"
    notes.append(f"anchored on {len(own)} run(s) of this graph on this GPU: x{math.exp(mean):.3f}")
    return seconds * math.exp(mean), band, confidence


def _precision_notes(device: DeviceSpec, precision: str, cp: str, backend: str, work: GraphWork) -> list[str]:
    notes = []
    if precision == "fp32" and cp == "tf32":
        notes.append(f"fp32 priced as TF32 on {device.name} (TensorRT and onnxruntime's CUDA EP use TF32 tensor "
                     "cores for fp32 products by default)")
    if cp == "int8":
        notes.append(f"quantized graph ({work.int8_share:.0%} of its FLOPs in integer ops): priced at {device.name}'s "
                     f"int8 peak with {backend}'s int8 efficiency")
    elif work.int8_share >= 0.5:
        notes.append(f"quantized graph priced at {cp}: {backend} on {device.name} is not assumed to run it as int8")
    if device.family == "T4":
        mhz, ratio = sustained_clock(current_fit())
        share = power_share(current_fit(), "T4", cp)
        notes.append(f"T4 under its 70 W cap: back-to-back {cp} compute holds about {share:.0%} of its peak (the fitted "
                     f"power bound: about {share * device.boost_mhz:.0f} of its {device.boost_mhz:.0f} MHz); lighter "
                     f"work x{ratio:.2f} an A100's efficiency on the same work (fitted)")
    return notes


def sustained_clock(result: Fit, family: str = "T4") -> tuple[float, float]:
    """(MHz, ratio): a GPU family's fitted compute factor ``g`` relative to the A100's (the same work, backend and
    precision on both), and the clock it amounts to if the two architectures matched per clock: the part's top
    clock (where a cited source states it) times the ratio. No source read states a T4's sustained clock under its
    70 W cap; this is what the published figures imply, the power cap and Turing's per-clock efficiency together."""
    part = next((d for d in DEVICES.values() if d.family == family and d.boost_mhz), None)
    ratio = math.exp(result.parameter("g", family) - result.parameter("g", "A100"))
    return (part.boost_mhz * min(ratio, 1.0) if part else 0.0), ratio


def power_share(result: Fit, family: str, precision: str) -> float:
    """The share of its peak a GPU family holds through back-to-back compute at ``precision``: the fitted power bound
    (:mod:`.gpumodel`'s ``eta``); below 1, the part cannot hold its top clock under its power cap."""
    return math.exp(result.parameter("h", family) + result.parameter("hp", precision))


#: The run report's ``backend_used`` (a fallback-chain step) and the backend the model knows it as.
RUN_BACKENDS = {"tensorrt": "ONNX Runtime TensorRT EP", "onnxruntime-cuda": "ONNX Runtime CUDA EP",
                "torch-cuda": "PyTorch eager"}


def observation(cost: GraphCost, target: Hardware, precision: str, backend: str, seconds: float,
                member: str = "") -> Observation | None:
    """A user's measured call (``seconds`` per call, with ``backend``) as an observation for the fit; None on a
    part without published figures (nothing in the fit to update)."""
    device = target_device(target)
    if not device.family:
        return None
    work = GraphWork.from_cost(cost)
    return Observation(work, device.key, device.family, run_precision(device, precision, work, backend), backend,
                       seconds, member)


__all__ = ["BASES", "FAMILY_SIMILARITY", "RUN_BACKENDS", "GpuCall", "backend_for", "dominant_work", "gpu_fitted",
           "graph_signature", "model_family", "nearest_rows", "observation", "power_share", "price_call",
           "run_precision", "similarity", "sustained_clock", "target_device"]
