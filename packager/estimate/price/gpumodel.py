"""The GPU time of one call of an ONNX graph: a roofline per node, with efficiencies fitted to published figures.

The graph's FLOP / byte count (:func:`~packager.estimate.price.flops.count_graph`) is summarised as its
:class:`GraphWork`: the compute nodes by kind of work (matrix products, convolutions, depthwise and 3D
convolutions) with their FLOPs and bytes, the other nodes by memory class (elementwise, normalisations and
reductions, data movement) with their bytes, and the kernels it launches. One call on a GPU part
(:class:`~packager.estimate.price.gpuspec.DeviceSpec`) at a precision with a backend then takes::

    t = unit x ( sum over compute nodes  max(F / (peak[precision] x e_c), B x s / (bandwidth x e_m))
               + sum over memory nodes   B x s x phi / (bandwidth x e_m)
               + kernels x lambda )

where ``s`` scales the bytes from the graph's dtype to the precision (fp16 halves fp32's traffic, int8 and
fp8 quarter it), and, in log space (each term a fitted parameter, see :class:`Layout`):

* ``log e_c`` (compute efficiency) = ``g[GPU] + p[precision] + b[backend] + w[work] + src[source]`` plus
  every two-way interaction of GPU, precision, backend and work: the efficiency of a kind of work, fitted
  per GPU and backend/precision, not carried over from a CPU. ``g`` holds the GPU's sustained clock under
  its power cap (a 70 W T4 cannot hold its top clock: see :mod:`.gpuspec`);
* ``log e_m = m[GPU]``: the bandwidth a GPU's memory-bound work reaches (its caches included, so it may
  exceed the datasheet's DRAM figure on a part with a large L2);
* ``log phi = f[backend] + c[class] + fc[backend, class]``: the share of the memory nodes' traffic a
  backend does not fuse away (TensorRT folds elementwise work into the matrix products' epilogues,
  PyTorch eager runs every node);
* ``log lambda = l[backend] + lf[GPU]``: the time per launched kernel (dispatch, launch, the shortest
  kernel a GPU runs);
* ``log unit = u[unit]``: the work a published "sample" is beyond the rebuilt graph, for the rows whose
  rebuild is approximate (MLPerf's BERT removes padding; its 3D-UNet sample is a whole case of patches).

The call's time is the smooth maximum (exponent :data:`SHARPNESS`) of that roofline sum and its *power
bound*: all its compute FLOPs at ``eta`` of the peak, ``log eta = h[GPU] + hp[precision]``, the share of its
peak a part holds through back-to-back compute under its power cap. A 70 W T4 holds well under its top
clock through long tensor-core work (the figures put it near 60% at fp16); on the larger parts the bound
is fitted above 1 and never binds. This is the T4's sustained clock the estimate rests on
(:func:`~packager.estimate.price.gpuprice.power_share`); ``g[T4]`` is its efficiency on lighter work.

:func:`evaluate` gives the seconds of many cases at once with their derivatives by every parameter, for
the fit (:mod:`.gpufit`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from packager.estimate.price.flops import WORK_KINDS, GraphCost
from packager.estimate.price.gpuspec import COMPUTE_PRECISIONS, DeviceSpec

FAMILIES = ("T4", "L4", "A100", "H100")
MEMORY_CLASSES = ("eltwise", "norm", "move")
#: Backends as the table names them, plus MLPerf's TensorRT harness (kept apart: its rows are tuned far beyond
#: what a demo or an execution provider reaches).
BACKENDS = ("TensorRT", "TensorRT (MLPerf harness)", "ONNX Runtime CUDA EP", "ONNX Runtime TensorRT EP",
            "PyTorch eager", "PyTorch TorchScript", "TensorFlow 2")
#: The bytes of one element at each compute precision, relative to fp32's 4.
_ELEMENT = {"fp32": 4.0, "tf32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "fp8": 1.0}
_DTYPE_BYTES = {"float32": 4.0, "float64": 8.0, "float16": 2.0, "bfloat16": 2.0}
_MOVE = frozenset({
    "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Scatter", "ScatterND",
    "ScatterElements", "Expand", "Tile", "Pad", "ConstantOfShape", "Range", "DepthToSpace", "SpaceToDepth", "Trilu",
    "OneHot", "NonZero", "EyeLike", "ReverseSequence", "Compress", "Unique", "Col2Im", "Resize", "Upsample",
})
_NORM_MARKS = ("Norm", "Reduce", "Pool", "Softmax", "ArgMax", "ArgMin", "TopK", "CumSum", "LRN", "Hardmax")
_INT8_OPS = frozenset({"MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv"})


def memory_class(op_type: str) -> str:
    """``move`` (data movement), ``norm`` (normalisations, reductions, pooling) or ``eltwise`` (the rest)."""
    op = op_type.rpartition(".")[2]
    if op in _MOVE:
        return "move"
    return "norm" if any(mark in op for mark in _NORM_MARKS) else "eltwise"


@dataclass(frozen=True)
class GraphWork:
    """What one call of a graph does, as the GPU model prices it.

    Attributes:
        compute: ``(work, flops, bytes, count)`` per distinct compute node (``work`` in ``WORK_KINDS``).
        memory: ``(class, bytes, count)`` per distinct other node that launches a kernel.
        kernels: Nodes that launch a kernel.
        dtype: The graph's float dtype (its bytes are in it).
        int8_share: Share of the compute FLOPs in integer operators (a quantized graph).
        flops: Total FLOPs (for the notes).
    """

    compute: tuple[tuple[str, float, float, int], ...]
    memory: tuple[tuple[str, float, int], ...]
    kernels: int
    dtype: str = "float32"
    int8_share: float = 0.0
    flops: float = 0.0

    @classmethod
    def from_cost(cls, cost: GraphCost) -> GraphWork:
        """Summarise a graph's count (nodes of the same kind, FLOPs and bytes merged with their count)."""
        compute: dict[tuple[str, float, float], int] = {}
        memory: dict[tuple[str, float], int] = {}
        int8 = total = 0.0
        for node in cost.nodes:
            if not node.kernel:
                continue
            if node.work:
                key = (node.work, node.flops, node.bytes)
                compute[key] = compute.get(key, 0) + 1
                total += node.flops
                int8 += node.flops if node.op_type.rpartition(".")[2] in _INT8_OPS else 0.0
            else:
                mkey = (memory_class(node.op_type), node.bytes)
                memory[mkey] = memory.get(mkey, 0) + 1
        return cls(
            compute=tuple((w, f, b, n) for (w, f, b), n in compute.items()),
            memory=tuple((c, b, n) for (c, b), n in memory.items()),
            kernels=cost.kernels, dtype=cost.dtype, int8_share=int8 / total if total else 0.0, flops=cost.flops)

    def to_json(self) -> dict[str, object]:
        return {"compute": [list(c) for c in self.compute], "memory": [list(m) for m in self.memory],
                "kernels": self.kernels, "dtype": self.dtype, "int8_share": self.int8_share, "flops": self.flops}

    @classmethod
    def from_json(cls, data: dict) -> GraphWork:
        return cls(compute=tuple((str(w), float(f), float(b), int(n)) for w, f, b, n in data["compute"]),
                   memory=tuple((str(c), float(b), int(n)) for c, b, n in data["memory"]),
                   kernels=int(data["kernels"]), dtype=str(data.get("dtype", "float32")),
                   int8_share=float(data.get("int8_share", 0.0)), flops=float(data.get("flops", 0.0)))


@dataclass(frozen=True)
class Case:
    """One call to price: a graph's work on a GPU part, at a compute precision, with a backend.

    ``family`` is the part's family when the table has figures of it, else "" (priced with the families'
    mean); ``source`` is the table source a figure comes from, ``observed`` for a user's own run, "" for an
    estimate; ``unit`` is the approximate rebuild's unit (:data:`UNITS`), "" for none.
    """

    work: GraphWork
    device: DeviceSpec
    precision: str
    backend: str
    family: str = ""
    source: str = ""
    unit: str = ""


#: Units of the rows whose published "sample" is not the rebuilt graph's item.
UNITS = ("mlperf-bert-sample", "mlperf-3dunet-case")
#: How sharply a call's time turns from its roofline sum to its power bound (the exponent of their smooth maximum).
SHARPNESS = 4.0


@dataclass(frozen=True)
class Layout:
    """Every fitted parameter, by name (a tuple: the term's letter and its levels), with its prior.

    A parameter's prior is a normal in log space (mean, standard deviation): the fit is a ridge regression
    that pulls each interaction towards 0 unless figures show it, and pins the reference levels (A100,
    TensorRT, matrix products, elementwise) so the main effects are identified.
    """

    sources: tuple[str, ...]
    names: tuple[tuple[str, ...], ...] = field(init=False)
    index: dict[tuple[str, ...], int] = field(init=False, hash=False, compare=False)
    mean: np.ndarray = field(init=False, hash=False, compare=False)
    sd: np.ndarray = field(init=False, hash=False, compare=False)

    #: Standard deviations of the priors (log space), chosen on a grid (interactions 0.2-0.6, sources 0.1-0.4, with
    #: and without the power bound) by the 10-fold cross-validation's 95th-percentile miss, the band's own
    #: statistic; the held-out rows took no part in the choice.
    SOURCE_SD = 0.1
    INTERACTION_SD = 0.3

    def __post_init__(self) -> None:
        priors: list[tuple[tuple[str, ...], float, float]] = []

        def add(name: tuple[str, ...], mean: float, sd: float) -> None:
            priors.append((name, mean, sd))

        pinned = 1e-3
        for fam in FAMILIES:
            add(("g", fam), 0.0, pinned if fam == "A100" else 1.0)
        for cp in COMPUTE_PRECISIONS:
            add(("p", cp), math.log(0.5), 2.0)
        for be in BACKENDS:
            add(("b", be), 0.0, pinned if be == "TensorRT" else 1.0)
        for wk in WORK_KINDS:
            add(("w", wk), 0.0, pinned if wk == "gemm" else 1.0)
        for src in self.sources:
            add(("src", src), 0.0, self.SOURCE_SD)
        for tag, levels in _INTERACTIONS.items():
            for a, b in itertools.product(*levels):
                add((tag, a, b), 0.0, self.INTERACTION_SD)
        for fam in FAMILIES:
            add(("m", fam), math.log(0.7), 1.0)
        for be in BACKENDS:
            add(("f", be), math.log(0.5), 2.0)
        for cls in MEMORY_CLASSES:
            add(("c", cls), 0.0, pinned if cls == "eltwise" else 1.0)
        for be, cls in itertools.product(BACKENDS, MEMORY_CLASSES):
            add(("fc", be, cls), 0.0, 0.5)
        for be in BACKENDS:
            add(("l", be), math.log(5e-6), 2.0)
        for fam in FAMILIES:
            add(("lf", fam), 0.0, 0.5)
        for unit in UNITS:
            add(("u", unit), 0.0, 3.0)
        for fam in FAMILIES:
            add(("h", fam), math.log(0.7), 1.0)
        for cp in COMPUTE_PRECISIONS:
            add(("hp", cp), 0.0, 0.5)
        object.__setattr__(self, "names", tuple(n for n, _, _ in priors))
        object.__setattr__(self, "index", {n: i for i, (n, _, _) in enumerate(priors)})
        object.__setattr__(self, "mean", np.array([m for _, m, _ in priors]))
        object.__setattr__(self, "sd", np.array([s for _, _, s in priors]))

    def __len__(self) -> int:
        return len(self.names)

    def compute_terms(self, case: Case, work: str) -> list[int]:
        """The parameters whose sum is ``log e_c`` of ``work`` in ``case`` (the levels the layout knows)."""
        fam, cp, be, src = case.family, case.precision, case.backend, case.source
        keys = [("g", fam), ("p", cp), ("b", be), ("w", work), ("src", src), ("gp", fam, cp), ("gw", fam, work),
                ("pw", cp, work), ("bp", be, cp), ("bw", be, work), ("bg", be, fam)]
        return [self.index[k] for k in keys if k in self.index]

    def family_terms(self, name: str, family: str) -> list[int]:
        """``[index of name[family]]``, or every family's (to average) for a part without figures."""
        if (name, family) in self.index:
            return [self.index[(name, family)]]
        return [self.index[(name, f)] for f in FAMILIES]


_INTERACTIONS = {
    "gp": (FAMILIES, COMPUTE_PRECISIONS), "gw": (FAMILIES, WORK_KINDS), "pw": (COMPUTE_PRECISIONS, WORK_KINDS),
    "bp": (BACKENDS, COMPUTE_PRECISIONS), "bw": (BACKENDS, WORK_KINDS), "bg": (BACKENDS, FAMILIES),
}


def traffic_scale(work: GraphWork, precision: str) -> float:
    """Bytes at ``precision`` over the bytes counted in the graph's own dtype."""
    return _ELEMENT[precision] / _DTYPE_BYTES.get(work.dtype, 4.0)


class Design:
    """Every time term of a set of cases, laid out once, so the fit evaluates them at many parameters fast.

    A case's seconds are the sum of its terms, each ``base x exp(incidence . theta)``; a compute node has two
    terms (compute and memory) of which the larger counts (its roofline); the unit term multiplies the sum.
    """

    def __init__(self, layout: Layout, cases: list[Case]):
        self.layout, self.cases = layout, cases
        owner: list[int] = []
        base: list[float] = []
        rows: list[list[tuple[int, float]]] = []
        pair: list[int] = []
        for k, case in enumerate(cases):
            for b, params, twin in _case_terms(layout, case):
                owner.append(k)
                base.append(b)
                rows.append(params)
                pair.append(len(owner) - 2 if twin else -1)  # a memory twin follows its compute term
        self.owner = np.asarray(owner, dtype=int)
        self.base = np.asarray(base)
        self.incidence = np.zeros((len(owner), len(layout)))
        for t, params in enumerate(rows):
            for i, w in params:
                self.incidence[t, i] += w
        self.pair = np.asarray(pair, dtype=int)
        self.twins = np.nonzero(self.pair >= 0)[0]
        self.units = np.zeros((len(cases), len(layout)))
        self.power = np.zeros(len(cases))
        self.power_incidence = np.zeros((len(cases), len(layout)))
        for k, case in enumerate(cases):
            if case.unit:
                self.units[k, layout.index[("u", case.unit)]] = 1.0
            self.power[k], params = _power_term(layout, case)
            for i, w in params:
                self.power_incidence[k, i] += w
        # Terms are laid out case by case: each case's sum is one segment.
        self.starts = np.searchsorted(self.owner, np.arange(len(cases)))

    def seconds(self, theta: np.ndarray, jacobian: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Seconds of each case at ``theta`` and (``jacobian``) d log(seconds) / d theta."""
        value = self.base * np.exp(self.incidence @ theta)
        active = np.ones(len(value), dtype=bool)
        compute_wins = value[self.pair[self.twins]] >= value[self.twins]
        active[self.twins[compute_wins]] = False
        active[self.pair[self.twins[~compute_wins]]] = False
        counted = np.where(active, value, 0.0)
        parts = np.add.reduceat(counted, self.starts)
        q = SHARPNESS
        power = self.power * np.exp(self.power_incidence @ theta)
        ratio = power / parts  # the smooth maximum of the roofline sum and the power bound, in q-th powers
        total = parts * (1.0 + ratio ** q) ** (1.0 / q)
        unit = np.exp(self.units @ theta)
        if not jacobian:
            return total * unit, None
        jac = np.add.reduceat(counted[:, None] * self.incidence, self.starts, axis=0) / parts[:, None]
        share = ratio ** q / (1.0 + ratio ** q)  # the power bound's weight
        jac = (1.0 - share)[:, None] * jac + share[:, None] * self.power_incidence
        return total * unit, jac + self.units


def _case_terms(layout: Layout, case: Case) -> list[tuple[float, list[tuple[int, float]], bool]]:
    """``(seconds at efficiency 1, (parameter, weight) in its exponent, is a compute term's memory twin)``."""
    dev, work = case.device, case.work
    scale = traffic_scale(work, case.precision)
    m = [(i, -1.0 / len(idx)) for idx in [layout.family_terms("m", case.family)] for i in idx]
    unknown = [] if case.family else [(i, -1.0 / len(FAMILIES)) for i in layout.family_terms("g", "")]
    peak = dev.peak(case.precision)
    out: list[tuple[float, list[tuple[int, float]], bool]] = []
    for kind, flops, nbytes, count in work.compute:
        out.append((count * flops / peak, [(i, -1.0) for i in layout.compute_terms(case, kind)] + unknown, False))
        out.append((count * nbytes * scale / dev.bandwidth, m, True))
    for cls, nbytes, count in work.memory:
        phi = [(layout.index[("f", case.backend)], 1.0), (layout.index[("c", cls)], 1.0),
               (layout.index[("fc", case.backend, cls)], 1.0)]
        out.append((count * nbytes * scale / dev.bandwidth, phi + m, False))
    launch = [(layout.index[("l", case.backend)], 1.0)] + [(i, 1.0 / len(idx)) for idx in
                                                           [layout.family_terms("lf", case.family)] for i in idx]
    out.append((float(work.kernels), launch, False))
    return out


def _power_term(layout: Layout, case: Case) -> tuple[float, list[tuple[int, float]]]:
    """The power bound of a case: its compute at the peak over the sustained share ``eta`` (``log eta = h[GPU] +
    hp[precision]``) the part's power cap lets it hold through back-to-back compute-bound work."""
    flops = sum(count * f for _, f, _, count in case.work.compute)
    h = layout.family_terms("h", case.family)
    params = [(i, -1.0 / len(h)) for i in h] + [(layout.index[("hp", case.precision)], -1.0)]
    return flops / case.device.peak(case.precision), params


def evaluate(layout: Layout, cases: list[Case], theta: np.ndarray, jacobian: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Seconds of each case at parameters ``theta``, and (``jacobian``) d log(seconds) / d theta."""
    return Design(layout, cases).seconds(theta, jacobian)


__all__ = ["BACKENDS", "FAMILIES", "MEMORY_CLASSES", "UNITS", "Case", "Design", "GraphWork", "Layout", "evaluate",
           "memory_class", "traffic_scale"]
