"""Count the FLOPs and bytes one call of an ONNX graph costs at a batch size.

The count is static: the graph's symbolic batch dimension (the first dim of
each graph input) is bound to ``batch_size``, ONNX shape inference fills in
every intermediate shape, and each node is priced from those shapes.

Cost model (per node; constants are deliberately simple, the roofline is
calibrated on a real measurement afterwards, see :mod:`.roofline`):

* Conv: ``2 * numel(Y) * (Cin/group) * prod(kernel)`` plus ``numel(Y)`` for the
  bias. ConvTranspose: ``2 * numel(X) * (Cout/group) * prod(kernel)`` + bias.
* MatMul (batched, broadcast): ``2 * numel(Y) * K``. Gemm: ``2*M*N*K`` plus
  ``M*N`` when C is given. Einsum: ``n_operands * prod(index sizes)``.
  Attention (opset 23): both matmuls plus a softmax over the score matrix.
  LSTM/GRU/RNN: the gate matmuls plus ``_RNN_GATE_EXTRA`` per gate element.
* Elementwise: 1 flop per output element (``n-1`` for variadic Sum/Max/Min).
  Transcendentals (Exp, Log, Erf, Tanh, Sin, ...) cost ``_TRANSCENDENTAL = 4``;
  composites add up their parts (Sigmoid = exp + add + div = 6, Gelu = erf +
  4 = 8, Softplus = exp + log + add = 9, Mish = 14). Real libm/SLEEF cost is
  10-20 instructions, but these ops are memory bound, so the weight hardly
  matters.
* Reductions, global pooling, ArgMax, TopK, CumSum: 1 per input element.
  Windowed pooling: ``numel(Y) * prod(kernel_shape)``.
* Softmax, LayerNorm, BatchNorm, InstanceNorm, GroupNorm, RMSNorm: ``_NORM = 5``
  per element (BatchNorm is usually folded at inference; it is counted anyway).
* Resize: per output element 0 (nearest), 8 (linear: 4 taps), 32 (cubic).
* Data movement (Reshape, Transpose, Concat, Gather, Slice, Cast, ...): 0 flops,
  bytes only. Views (Reshape, Squeeze, Unsqueeze, Flatten, Identity, Dropout)
  and metadata ops (Shape, Size, Constant) alias or read nothing in ONNX
  Runtime and TensorRT, so they cost 0 bytes too and launch no kernel.

Bytes of a node are the sizes of the tensors it reads plus those it writes,
dtype-aware (fp16 is half of fp32). An initializer (weight) is counted once per
call, at its first reader; a Gather from an initializer table reads only the
gathered rows. Ops not listed get 0 flops (their bytes are still counted) and
are reported in :attr:`GraphCost.unknown_ops`; tensors whose shape inference
could not resolve are reported in :attr:`GraphCost.unresolved`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import onnx
import onnx.inliner
import onnx.shape_inference
from onnx import TensorProto

from runtime.errors import ModelLoadError

_TRANSCENDENTAL = 4.0
_NORM = 5.0
_RNN_GATE_EXTRA = 8.0
_T = _TRANSCENDENTAL

_ELEMENTWISE: dict[str, float] = {
    **{op: 1.0 for op in (
        "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Relu", "LeakyRelu", "PRelu",
        "ThresholdedRelu", "Clip", "Where", "Equal", "Less", "LessOrEqual", "Greater",
        "GreaterOrEqual", "And", "Or", "Xor", "Not", "Sign", "Floor", "Ceil", "Round",
        "Sqrt", "Reciprocal", "IsNaN", "IsInf", "BitShift", "BitwiseAnd", "BitwiseOr",
        "BitwiseXor", "BitwiseNot", "Shrink",
    )},
    **{op: _T for op in (
        "Exp", "Log", "Erf", "Tanh", "Pow", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
        "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
    )},
    "Sigmoid": _T + 2, "Gelu": _T + 4, "FastGelu": _T + 4, "BiasGelu": _T + 5,
    "QuickGelu": _T + 3, "Softplus": 2 * _T + 1, "Mish": 3 * _T + 2, "Elu": _T + 2,
    "Selu": _T + 3, "Celu": _T + 3, "HardSigmoid": 3.0, "HardSwish": 4.0, "Softsign": 3.0,
    "QuantizeLinear": 2.0, "DequantizeLinear": 2.0,
}
_VARIADIC = frozenset({"Sum", "Max", "Min", "Mean"})
_NORMS = frozenset({
    "Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "BatchNormalization",
    "InstanceNormalization", "GroupNormalization", "LpNormalization", "RMSNormalization",
    "MeanVarianceNormalization", "LRN", "SkipLayerNormalization",
    "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
})
_PER_INPUT = frozenset({
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "CumSum", "TopK",
})
_VIEWS = frozenset({
    "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Dropout", "Shape", "Size",
    "Constant",
})
_MOVEMENT = _VIEWS | frozenset({
    "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND",
    "Scatter", "ScatterND", "ScatterElements", "Expand", "Tile", "Pad", "ConstantOfShape",
    "Cast", "CastLike", "Range", "DepthToSpace", "SpaceToDepth", "Trilu", "OneHot",
    "NonZero", "EyeLike", "ReverseSequence", "Compress", "Unique", "Col2Im",
})
_RESIZE_PER_OUTPUT = {"nearest": 0.0, "linear": 8.0, "cubic": 32.0}
_RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# ONNX Runtime contrib ops that keep the standard op's tensor layout.
_CONTRIB = frozenset({
    "FusedMatMul", "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "SkipLayerNormalization",
    "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
})
_STRIP_ABOVE = 1 << 16  # initializer payloads shape inference never needs
#: Kinds of compute work a node can be (:attr:`NodeCost.work`): matrix products (MatMul, Gemm, attention),
#: dense or grouped 2D convolutions, depthwise ones (one input channel per group), 3D convolutions.
WORK_KINDS = ("gemm", "conv", "dwconv", "conv3d")
_GEMM_OPS = frozenset({"MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "Attention", "Einsum"})
_CONV_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"})

_ITEMSIZE: dict[int, float] = {
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
    TensorProto.BFLOAT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1,
    TensorProto.INT16: 2, TensorProto.UINT16: 2, TensorProto.INT32: 4,
    TensorProto.UINT32: 4, TensorProto.INT64: 8, TensorProto.UINT64: 8,
    TensorProto.BOOL: 1, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
}
for _name, _size in (("FLOAT8E4M3FN", 1), ("FLOAT8E4M3FNUZ", 1), ("FLOAT8E5M2", 1),
                     ("FLOAT8E5M2FNUZ", 1), ("INT4", 0.5), ("UINT4", 0.5)):
    if hasattr(TensorProto, _name):
        _ITEMSIZE[getattr(TensorProto, _name)] = _size


@dataclass(frozen=True)
class NodeCost:
    """Cost of one graph node for one call at the counted batch size."""

    name: str
    op_type: str
    flops: float
    bytes: float
    kernel: bool  # False for views/metadata ops that launch nothing
    work: str = ""  # the kind of compute work (WORK_KINDS): "gemm", "conv", "dwconv", "conv3d"; "" for the rest


@dataclass(frozen=True)
class GraphCost:
    """FLOPs and bytes one call of a graph costs at :attr:`batch_size`.

    Attributes:
        flops: Total floating-point operations.
        bytes: Total bytes read and written, weights included.
        weight_bytes: The part of ``bytes`` that is initializers (read once per call).
        per_op: ``op_type -> (flops, bytes)`` summed over nodes of that type.
        unknown_ops: Op types priced at 0 flops (domain-prefixed outside ai.onnx).
        unresolved: Tensors whose shape stayed unknown after inference.
        batch_size: The batch the counts are for: the one asked for, or the
            graph's static first dim when no input had a symbolic batch dim.
        input_bytes: Bytes of the graph inputs (what a GPU must receive per call).
        output_bytes: Bytes of the graph outputs.
        dtype: The float dtype moving the most bytes (``"float32"``, ``"float16"``...).
        nodes: Per-node costs in graph order.
    """

    flops: float
    bytes: float
    weight_bytes: float
    per_op: dict[str, tuple[float, float]]
    unknown_ops: tuple[str, ...]
    unresolved: tuple[str, ...]
    batch_size: int = 1
    input_bytes: float = 0.0
    output_bytes: float = 0.0
    dtype: str = "float32"
    nodes: tuple[NodeCost, ...] = ()

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP per byte (0 when nothing is moved)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def kernels(self) -> int:
        """Number of nodes that launch a kernel (used for per-op overhead)."""
        return sum(1 for n in self.nodes if n.kernel)


class _Missing(Exception):
    """A shape needed to price a node is unknown (carries the tensor name)."""


class _Node:
    """A node with typed access to its tensors' shapes and attributes."""

    def __init__(self, node: onnx.NodeProto, shapes: Mapping[str, tuple[int, ...] | None]):
        self.node = node
        self._shapes = shapes
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def has(self, i: int) -> bool:
        return len(self.node.input) > i and bool(self.node.input[i])

    def _get(self, name: str) -> tuple[int, ...]:
        shape = self._shapes.get(name)
        if shape is None:
            raise _Missing(name)
        return shape

    def x(self, i: int = 0) -> tuple[int, ...]:
        return self._get(self.node.input[i])

    def y(self, i: int = 0) -> tuple[int, ...]:
        return self._get(self.node.output[i])


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _conv(n: _Node) -> float:
    w, y = n.x(1), n.y()
    bias = n.node.op_type == "Conv" and n.has(2) or n.node.op_type == "QLinearConv" and n.has(8)
    return 2.0 * _numel(y) * _numel(w[1:]) + (_numel(y) if bias else 0)


def _conv_transpose(n: _Node) -> float:
    return 2.0 * _numel(n.x()) * _numel(n.x(1)[1:]) + (_numel(n.y()) if n.has(2) else 0)


def _matmul(n: _Node) -> float:
    a = n.x(0)  # A is input 0 for MatMul, MatMulInteger and QLinearMatMul
    k = a[-1] if a else 1
    return 2.0 * _numel(n.y()) * k


def _gemm(n: _Node) -> float:
    a, y = n.x(), n.y()
    k = a[0] if n.attrs.get("transA", 0) else a[-1]
    return 2.0 * _numel(y) * k + (_numel(y) if n.has(2) else 0)


def _einsum(n: _Node) -> float:
    lhs, _, rhs = n.attrs["equation"].decode().replace(" ", "").partition("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    for i, term in enumerate(terms):
        shape = n.x(i)
        pre, ell, post = term.partition("...")
        if ell:
            rank = len(shape) - len(pre) - len(post)
            sizes["..."] = max(sizes.get("...", 1), _numel(shape[len(pre):len(pre) + rank]))
            shape = shape[:len(pre)] + shape[len(pre) + rank:]
        for letter, dim in zip(pre + post, shape):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    space = float(_numel(tuple(sizes.values())))
    if len(terms) == 1:  # a pure transpose moves data; a reduction adds
        return 0.0 if set(lhs) <= set(rhs) and rhs else space
    return len(terms) * space


def _attention(n: _Node) -> float:
    q, k, y = n.x(0), n.x(1), n.y()
    if len(q) == 4:  # (B, H, S, D)
        heads, sq, skv, q_hidden = q[1], q[2], k[2], q[1] * q[3]
        v_hidden = y[1] * y[3]
    else:  # (B, S, H*D)
        heads, sq, skv, q_hidden = n.attrs.get("q_num_heads", 1), q[1], k[1], q[2]
        v_hidden = y[2]
    return q[0] * (2.0 * sq * skv * (q_hidden + v_hidden) + _NORM * heads * sq * skv)


def _rnn(n: _Node) -> float:
    x, w, r = n.x(0), n.x(1), n.x(2)
    seq, batch = (x[1], x[0]) if n.attrs.get("layout", 0) else (x[0], x[1])
    dirs, gh, hidden = w[0], w[1], r[2]
    return seq * batch * dirs * (2.0 * gh * (x[2] + hidden) + _RNN_GATE_EXTRA * gh)


def _pool(n: _Node) -> float:
    return float(_numel(n.y()) * math.prod(n.attrs.get("kernel_shape", [1])))


def _resize(n: _Node) -> float:
    return _numel(n.y()) * _RESIZE_PER_OUTPUT.get(n.attrs.get("mode", b"nearest").decode(), 8.0)


def _elementwise(n: _Node) -> float:
    op = n.node.op_type
    if op in _VARIADIC:
        inputs = sum(1 for name in n.node.input if name)
        return _numel(n.y()) * float(max(inputs - 1, 1) + (op == "Mean"))
    return _numel(n.y()) * _ELEMENTWISE[op]


_HANDLERS: dict[str, Callable[[_Node], float]] = {
    "Conv": _conv, "ConvInteger": _conv, "QLinearConv": _conv,
    "ConvTranspose": _conv_transpose,
    "MatMul": _matmul, "MatMulInteger": _matmul, "QLinearMatMul": _matmul,
    "FusedMatMul": _matmul, "Gemm": _gemm,
    "Einsum": _einsum, "Attention": _attention,
    "MaxPool": _pool, "AveragePool": _pool, "LpPool": _pool,
    "Resize": _resize, "Upsample": _resize,
    **{op: _rnn for op in _RNN_GATES},
    **{op: _elementwise for op in (*_ELEMENTWISE, *_VARIADIC)},
    **{op: (lambda n: float(_numel(n.x()))) for op in _PER_INPUT},
    **{op: (lambda n: _NORM * _numel(n.x())) for op in _NORMS},
    **{op: (lambda n: 0.0) for op in _MOVEMENT},
}


def count_graph(
    model: str | os.PathLike[str] | onnx.ModelProto,
    batch_size: int = 1,
    dims: Mapping[str, int] | None = None,
) -> GraphCost:
    """Count FLOPs and bytes of one call of ``model`` at ``batch_size``.

    Args:
        model: Path to an ``.onnx`` file (external data is not loaded: the
            initializer shapes are in the proto) or a loaded ``ModelProto``,
            which is not modified.
        batch_size: Value bound to the first dim of every graph input whose
            first dim is symbolic or unset.
        dims: Values for other symbolic dims, by name (e.g. ``{"seq": 128}``).

    Returns:
        The :class:`GraphCost` of the whole graph and of each node.

    Raises:
        ModelLoadError: The file cannot be read as an ONNX model.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    else:
        try:
            proto = onnx.load(os.fspath(model), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
            raise ModelLoadError(
                f"cannot read ONNX model {os.fspath(model)!r}: {exc}; expected a file "
                "written by onnx.save or torch.onnx.export"
            ) from exc
    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    static_batch = _bind_dims(proto, batch_size, dict(dims or {}))
    for tensor in proto.graph.initializer:
        _strip(tensor)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # noqa: BLE001 - priced with what is known; gaps go to unresolved
        pass
    return _walk(proto.graph, static_batch or batch_size)


def _bind_dims(proto: onnx.ModelProto, batch_size: int, dims: dict[str, int]) -> int | None:
    """Fix symbolic dims in place; return the static batch when nothing was symbolic."""
    weights = {t.name for t in proto.graph.initializer}
    static: int | None = None
    symbolic = False
    for value in proto.graph.input:
        shape = value.type.tensor_type.shape
        if value.name in weights or not value.type.tensor_type.HasField("shape") or not shape.dim:
            continue
        first = shape.dim[0]
        if first.HasField("dim_value"):
            static = static or first.dim_value
            continue
        symbolic = True
        if first.dim_param:
            dims.setdefault(first.dim_param, batch_size)
        first.dim_value = batch_size
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = dims[dim.dim_param]
    return None if symbolic else static


def _strip(tensor: TensorProto) -> None:
    """Drop a large initializer's payload: inference needs only its dims."""
    size = math.prod(tensor.dims) * _ITEMSIZE.get(tensor.data_type, 4)
    if size <= _STRIP_ABOVE or tensor.data_location == TensorProto.EXTERNAL:
        return
    for name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data",
                 "uint64_data", "string_data"):
        tensor.ClearField(name)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="<not loaded>")


class _Tensors:
    """Every tensor of a graph whose shape is known: its shape, element size and type; the weights (initializers
    and constants); and what was read of them (bytes per element type, names of unknown size)."""

    def __init__(self, graph: onnx.GraphProto):
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        self.itemsize: dict[str, float] = {}
        self.dtypes: dict[str, int] = {}
        self.by_dtype: dict[int, float] = {}
        self.unresolved: dict[str, None] = {}
        for value in (*graph.input, *graph.output, *graph.value_info):
            tt = value.type.tensor_type
            known = tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)
            self.record(value.name, tt.elem_type, [d.dim_value for d in tt.shape.dim] if known else None)
        self.weights = {t.name: t for t in graph.initializer}
        for tensor in graph.initializer:
            self.record(tensor.name, tensor.data_type, list(tensor.dims))
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value":
                        self.record(node.output[0], attr.t.data_type, list(attr.t.dims))
                        self.weights[node.output[0]] = attr.t

    def record(self, name: str, elem_type: int, dims: list[int] | None) -> None:
        self.shapes[name] = None if dims is None else tuple(dims)
        self.itemsize[name] = _ITEMSIZE.get(elem_type, 0.0)
        self.dtypes[name] = elem_type

    def size_of(self, name: str) -> float | None:
        shape = self.shapes.get(name)
        return None if shape is None else _numel(shape) * self.itemsize.get(name, 0.0)

    def nbytes(self, name: str) -> float:
        """Bytes of a tensor read or written (counted by element type); 0 and noted when its size is unknown."""
        size = self.size_of(name)
        if size is None:
            self.unresolved[name] = None
            return 0.0
        self.by_dtype[self.dtypes[name]] = self.by_dtype.get(self.dtypes[name], 0.0) + size
        return size

    def dtype(self) -> str:
        """The floating type most bytes moved in (float32 when none did)."""
        floats = {t: b for t, b in self.by_dtype.items() if t in _FLOAT_NAMES}
        return _FLOAT_NAMES[max(floats, key=floats.__getitem__)] if floats else "float32"


def _node_flops(node: onnx.NodeProto, key: str, tensors: _Tensors, unknown: dict[str, None]) -> float:
    """A node's FLOPs by its op's handler; 0 and noted for an op without one, or inputs of unknown shape."""
    standard = node.domain in ("", "ai.onnx")
    known = standard or (node.domain == "com.microsoft" and node.op_type in _CONTRIB)
    handler = _HANDLERS.get(node.op_type) if known else None
    if handler is None:
        unknown[key] = None
        return 0.0
    try:
        return handler(_Node(node, tensors.shapes))
    except _Missing as missing:
        tensors.unresolved[str(missing)] = None
        return 0.0


def _node_bytes(node: onnx.NodeProto, tensors: _Tensors, weights_read: set[str]) -> tuple[float, float]:
    """(bytes a node moves, of which weights read for the first time): a view moves nothing, a weight is read once,
    a Gather of an embedding reads the rows it gathers."""
    if node.op_type in _VIEWS:
        return 0.0, 0.0
    moved = weight_bytes = 0.0
    for i, name in enumerate(node.input):
        if not name:
            continue
        if name not in tensors.weights:
            moved += tensors.nbytes(name)
        elif name not in weights_read:
            weights_read.add(name)
            size = tensors.nbytes(name)
            rows = tensors.size_of(node.output[0]) if node.op_type == "Gather" and i == 0 else None
            size = size if rows is None else min(size, rows)
            weight_bytes += size
            moved += size
    moved += sum(tensors.nbytes(name) for name in node.output if name)
    return moved, weight_bytes


def _work(node: onnx.NodeProto, tensors: _Tensors) -> str:
    """The kind of compute work of a node (:data:`WORK_KINDS`), "" for one that is not a product or convolution."""
    if node.op_type in _GEMM_OPS:
        return "gemm"
    if node.op_type not in _CONV_OPS:
        return ""
    weight = tensors.shapes.get(node.input[3 if node.op_type == "QLinearConv" else 1]) if len(node.input) > 1 else None
    if weight is not None and len(weight) >= 5:
        return "conv3d"
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    in_channels = weight[0] if weight is not None and node.op_type == "ConvTranspose" else None
    depthwise = weight is not None and group > 1 and (weight[1] == 1 if in_channels is None else in_channels == group)
    return "dwconv" if depthwise else "conv"


def _walk(graph: onnx.GraphProto, batch_size: int) -> GraphCost:
    tensors = _Tensors(graph)
    weights_read: set[str] = set()
    nodes: list[NodeCost] = []
    per_op: dict[str, tuple[float, float]] = {}
    unknown: dict[str, None] = {}
    weight_bytes = 0.0
    for node in graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        flops = _node_flops(node, key, tensors, unknown)
        moved, weights = _node_bytes(node, tensors, weights_read)
        weight_bytes += weights
        nodes.append(NodeCost(node.name, key, flops, moved, node.op_type not in _VIEWS, _work(node, tensors)))
        old = per_op.get(key, (0.0, 0.0))
        per_op[key] = (old[0] + flops, old[1] + moved)
    return GraphCost(
        flops=sum(n.flops for n in nodes),
        bytes=sum(n.bytes for n in nodes),
        weight_bytes=weight_bytes,
        per_op=per_op,
        unknown_ops=tuple(sorted(unknown)),
        unresolved=tuple(tensors.unresolved),
        batch_size=batch_size,
        input_bytes=sum(tensors.size_of(v.name) or 0.0 for v in graph.input if v.name not in tensors.weights),
        output_bytes=sum(tensors.size_of(v.name) or 0.0 for v in graph.output),
        dtype=tensors.dtype(),
        nodes=tuple(nodes),
    )


#: Keyed by the plain int a TensorProto's data_type holds (how the counter records them).
_FLOAT_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.DOUBLE: "float64",
}


__all__ = ["WORK_KINDS", "GraphCost", "NodeCost", "count_graph"]
