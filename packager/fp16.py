"""fp16 variants of fp32 ONNX files, with the ops the converter cannot type kept in fp32.

onnxruntime's ``convert_float_to_float16`` (``keep_io_types=True``: feeds and
outputs stay fp32) trips on graphs real models have:

- the torch.export-based exporter writes a ``value_info`` for every
  initializer; the converter rewrites those to fp16 while it keeps some
  initializers fp32 (the scales of ``Resize``, i.e. every ``F.interpolate``),
  and the checker then fails with "Inferred elem type differs from existing
  elem type: (1) vs (10)". Initializers carry their own type, so those
  entries are dropped before converting;
- some ops cannot run in fp16 at all (``LayerNormalization`` whose mean or
  inverse std-dev output is used: the schema types those fp32 only).

So the conversion is tried: convert, then the ONNX checker, strict shape
inference and an onnxruntime session (one inference when sample rows are
given). On failure the op types the error names are kept in fp32 and the
conversion is tried again; when the error names none, the op types of the
graph are bisected for the smallest set that, kept in fp32, passes. What was
kept is returned (and reported), and parity is verified afterwards as for
any variant.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from packager.export import _quiet
from runtime.errors import ExportError

#: Which ops a conversion keeps in fp32, and why (part of packaging's progress).
LOG = logging.getLogger("ninefit.package")

_NAMED = (
    re.compile(r"op_type:(?P<op>\w+), node name: (?P<node>[^)]*)\)"),  # onnx shape inference
    re.compile(r"Could not find an implementation for (?P<op>\w+)\(\d+\) node with name '(?P<node>[^']*)'"),  # onnxruntime
    re.compile(r"Optype \((?P<op>\w+)\)"),  # onnxruntime type binding
    re.compile(r"\bnode \((?P<node>[^)]+)\)"),  # onnxruntime
    re.compile(r"\bnode (?P<node>[\w./:-]+)"),
)


@dataclass(frozen=True)
class Fp16Result:
    """An fp16 file and the ops it keeps in fp32.

    Attributes:
        path: the fp16 ONNX file.
        kept_fp32: op type -> number of nodes of that type left in fp32 (the
            converter's own block list included, when the graph has them).
        searched: op types kept because a trial conversion failed without them.
        trials: conversions tried.
    """

    path: Path
    kept_fp32: dict[str, int] = field(default_factory=dict)
    searched: tuple[str, ...] = ()
    trials: int = 1

    def describe(self) -> str:
        """``"Resize x3, LayerNormalization x1"``, or ``"none"``."""
        return ", ".join(f"{op} x{n}" for op, n in sorted(self.kept_fp32.items())) or "none"


def _drop_initializer_value_info(model) -> None:
    inits = {i.name for i in model.graph.initializer}
    keep = [v for v in model.graph.value_info if v.name not in inits]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def named_ops(message: str, node_types: dict[str, str]) -> list[tuple[str, str]]:
    """(op type, node name) pairs an error message names; the node is '' where only the type is named."""
    found: list[tuple[str, str]] = []
    for pattern in _NAMED:
        for m in pattern.finditer(message):
            groups = m.groupdict()
            node = (groups.get("node") or "").strip()
            op = groups.get("op") or node_types.get(node, "")
            if op and (op, node) not in found and not any(o == op and (not node or n == node) for o, n in found):
                found.append((op, node))
    return found


class _Trials:
    """Converts with a given set of op types kept fp32, checks the result, remembers the outcome."""

    def __init__(self, src: Path, dest: Path, feed: dict[str, np.ndarray] | None):
        import onnx

        self.model = onnx.load(str(src))
        _drop_initializer_value_info(self.model)
        self.dest = dest
        self.feed = feed
        self.node_types = {n.name: n.op_type for n in self.model.graph.node if n.name}
        self.outcomes: dict[frozenset[str], str] = {}
        self.count = 0
        self.written: frozenset[str] | None = None  # the blocked set of the file now at dest

    def error(self, blocked: frozenset[str]) -> str:
        """'' if the conversion with ``blocked`` kept in fp32 passes every check, else the error."""
        if blocked not in self.outcomes:
            self.outcomes[blocked] = self._try(blocked)
        return self.outcomes[blocked]

    def _try(self, blocked: frozenset[str]) -> str:
        import onnx
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        self.count += 1
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        self.written = blocked
        try:
            with _quiet():
                half = convert_float_to_float16(model, keep_io_types=True,
                                                op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *blocked}))
            sort_graph(half.graph)
            onnx.save_model(half, str(self.dest))
            onnx.checker.check_model(str(self.dest), full_check=True)
            onnx.shape_inference.infer_shapes_path(str(self.dest), str(self.dest), check_type=True, strict_mode=True)
            self._run()
        except Exception as exc:  # every failure is an outcome of the trial, reported by the caller
            return f"{type(exc).__name__}: {exc}".strip()
        return ""

    def _run(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(self.dest), options, providers=["CPUExecutionProvider"])
        if self.feed:
            session.run(None, self.feed)


def _first_line(error: str) -> str:
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return (lines[0] if lines else error)[:300]


def _smallest_set(trials: _Trials, base: frozenset[str], candidates: list[str]) -> frozenset[str] | None:
    """The op types of ``candidates`` that must join ``base`` for the conversion to pass.

    Assumes keeping more ops in fp32 never breaks a passing conversion; then
    each round binary-searches the shortest prefix of the candidates that
    passes, whose last op is needed. None when even all candidates fail.
    """
    if trials.error(base | frozenset(candidates)):
        return None
    needed = set(base)
    cands = list(candidates)
    while trials.error(frozenset(needed)):
        lo, hi = 1, len(cands)
        while lo < hi:
            mid = (lo + hi) // 2
            if trials.error(frozenset(needed | set(cands[:mid]))):
                lo = mid + 1
            else:
                hi = mid
        needed.add(cands[lo - 1])
        cands = cands[:lo - 1]
    return frozenset(needed)


def sort_graph(graph) -> None:
    """Reorder ``graph.node`` topologically (the fp16 converter appends its input casts last)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ExportError(f"graph {graph.name!r} has a cycle or an undefined input; cannot order its nodes")
        for n in ready:
            known.update(n.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def convert_fp16(src: Path, dest: Path, name: str, feed: dict[str, np.ndarray] | None = None) -> Fp16Result:
    """fp16 copy of ``src`` at ``dest``, inputs and outputs fp32, ops that do not convert kept in fp32.

    Args:
        src: the checked fp32 ONNX file.
        dest: where the fp16 file goes.
        name: the member's name, for messages.
        feed: a few sample rows, run once through each trial conversion.

    Raises:
        ExportError: no set of ops kept in fp32 gives a valid graph; the
            message names the op type and node the last error names.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    trials = _Trials(src, dest, feed)
    blocked: frozenset[str] = frozenset()
    error = trials.error(blocked)
    while error:  # keep what the error names in fp32, while it names something new
        named = {op for op, _node in named_ops(error, trials.node_types)} - blocked
        if not named:
            break
        LOG.info(f"{name}: fp16 conversion fails at {', '.join(sorted(named))}; keeping it in fp32 and retrying")
        blocked |= named
        error = trials.error(blocked)
    if error:
        present = Counter(n.op_type for n in trials.model.graph.node)
        candidates = [op for op, _n in present.most_common() if op not in blocked and op not in DEFAULT_OP_BLOCK_LIST]
        found = _smallest_set(trials, blocked, candidates)
        if found is None:
            dest.unlink(missing_ok=True)
            raise ExportError(_failure(name, error, trials, blocked))
        blocked = found
        error = trials.error(blocked)
    if trials.written != blocked:  # a later trial of the search replaced the chosen file: write it again
        trials.outcomes.pop(blocked, None)
        if trials.error(blocked):  # pragma: no cover - the same conversion passed a moment ago
            raise ExportError(_failure(name, trials.error(blocked), trials, blocked))
    counts = Counter(n.op_type for n in trials.model.graph.node)
    kept = {op: counts[op] for op in {*DEFAULT_OP_BLOCK_LIST, *blocked} if counts[op]}
    return Fp16Result(path=dest, kept_fp32=kept, searched=tuple(sorted(blocked)), trials=trials.count)


def _failure(name: str, error: str, trials: _Trials, blocked: frozenset[str]) -> str:
    named = named_ops(error, trials.node_types)
    where = "; ".join(f"op {op}" + (f" (node {node!r})" if node else "") for op, node in named)
    kept = f" even with {', '.join(sorted(blocked))} kept in fp32" if blocked else ""
    return (
        f"model {name!r}: the fp16 variant cannot be made{kept}, nor with every op type of the graph kept in fp32: "
        f"{where + ': ' if where else ''}{_first_line(error)}. Drop the fp16 variant of [[model]] {name!r} "
        "(remove its [[model.variant]] with precision = \"fp16\"), or replace that op in the model, or export "
        "an fp16 ONNX file yourself and package it as its own member with `onnx = \"...\"`."
    )


__all__ = ["Fp16Result", "convert_fp16", "named_ops"]
