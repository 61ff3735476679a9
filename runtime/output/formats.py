"""Submission formats: how the combined vector of each test row becomes rows of ``submission.csv``.

Modes (``SubmissionSpec.mode``; every key in docs/spec.md):

* ``values``: the vector, one number per non-id column of the sample.
* ``argmax``: the label of the largest value.
* ``topk``: the ``k`` labels of the largest values, best first, joined by
  ``separator`` (MAP@k metrics). Ties go to the lower class index.
* ``multilabel``: every label whose value is ``>=`` its class's threshold,
  in class order, joined by ``separator``; ``empty`` when none is.
* ``long``: one sample row per test id and target, its id formed by
  ``id_format`` (``{id}_{target}`` by default) and its one value column
  holding the target's value.
* ``rle``: the vector is a ``mask_shape`` mask; pixels ``>= threshold``
  are run-length encoded as ``start length`` pairs, starts 1-based, over the
  mask flattened column by column (``rle_order = "column"``) or row by row;
  ``empty`` for an empty mask.
* ``postprocess``: the user's hook (``runtime.hooks``) turns a block of rows'
  vectors and ids into rows; see :class:`Formatter`.

Every format writes the sample's rows in the sample's order; a sample row no
covered test row produced keeps the fallback's cells.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from runtime.errors import DataError, HookError
from runtime.manifest import SubmissionSpec
from runtime.output.submission import SampleSubmission, format_rows, gc_paused, match_ids

#: Test rows per postprocess call: fixed blocks of row positions, so which rows a call
#: sees never depends on timing (a resumed run writes the same bytes).
POSTPROCESS_BLOCK = 4096
WRITE_BLOCK = 65_536  # sample rows formatted at a time by a streamed write
_IDENTITY = ("values", "argmax", "topk", "multilabel", "rle")


def width(spec: SubmissionSpec) -> int:
    """Values per row of the combined vector the format reads."""
    if spec.width or spec.mode == "postprocess":
        return spec.width
    if spec.mode in ("argmax", "topk", "multilabel"):
        return len(spec.classes)
    if spec.mode == "long":
        return len(spec.targets)
    if spec.mode == "rle":
        return int(np.prod(spec.mask_shape)) if spec.mask_shape else 0
    return len(spec.columns)


def form_id(spec: SubmissionSpec, test_id: str, target: str) -> str:
    """A ``long`` row id from a test id and a target, as ``id_format`` says."""
    return spec.id_format.replace("{id}", test_id).replace("{target}", target)


@dataclass(frozen=True)
class Layout:
    """Which test row (and, for ``long``, which target) each sample row is written from.

    ``rows[j]`` is the test row of sample row ``j``; ``targets[j]`` its target
    index (``long`` only). Both None for ``postprocess``: its hook names the
    rows it writes.
    """

    rows: np.ndarray | None
    targets: np.ndarray | None = None


def match(spec: SubmissionSpec, sample: SampleSubmission, test_ids: Sequence[str], *,
          sample_name: str = "sample_submission.csv") -> Layout:
    """The sample's rows against the test ids; DataError naming the ids that do not fit."""
    if spec.mode == "postprocess":
        return Layout(rows=None)
    if spec.mode != "long":
        return Layout(rows=match_ids(sample, test_ids, sample_name=sample_name))
    formed = {form_id(spec, rid, t): (i, n) for i, rid in enumerate(test_ids) for n, t in enumerate(spec.targets)}
    if len(formed) != len(test_ids) * len(spec.targets):
        raise DataError(f"id_format = {spec.id_format!r} forms the same row id from two (test id, target) pairs; "
                        "expected a format that tells every pair apart, e.g. \"{id}_{target}\"")
    in_sample = set(sample.ids)
    extra = [i for i in sample.ids if i not in formed]
    missing = [i for i in formed if i not in in_sample]
    if extra or missing:
        example = form_id(spec, test_ids[0], spec.targets[0]) if test_ids else ""
        parts = []
        if extra:
            parts.append(f"{len(extra)} id(s) of {sample_name} are not formed from any test id and target "
                         f"(e.g. {', '.join(extra[:3])})")
        if missing:
            parts.append(f"{len(missing)} formed id(s) are not in {sample_name} (e.g. {', '.join(missing[:3])})")
        raise DataError("; ".join(parts) + f". With mode = \"long\" the sample must hold one row per test id and "
                        f"target ({len(test_ids)} x {len(spec.targets)} = {len(formed)} rows; it has "
                        f"{len(sample.ids)}), each id formed by id_format = {spec.id_format!r} (e.g. {example!r}).")
    pairs = np.array([formed[i] for i in sample.ids], dtype=np.int64).reshape(-1, 2)
    return Layout(rows=pairs[:, 0], targets=pairs[:, 1])


def rle_encode(mask: np.ndarray, order: str = "column") -> str:
    """``start length`` pairs (1-based starts) of the true pixels of a 2-D mask; "" when there are none."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F" if order == "column" else "C")
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])  # run starts and ends, alternating (0-based)
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts.tolist(), ends.tolist()))


def rle_decode(text: str, shape: tuple[int, int], order: str = "column") -> np.ndarray:
    """The mask of :func:`rle_encode`'s pairs (for tests and scorers)."""
    flat = np.zeros(int(np.prod(shape)), dtype=bool)
    nums = [int(x) for x in text.split()]
    for s, n in zip(nums[0::2], nums[1::2]):
        flat[s - 1:s - 1 + n] = True
    return flat.reshape(shape, order="F" if order == "column" else "C")


def cells(spec: SubmissionSpec, vals: np.ndarray) -> list[str]:
    """One cell per row for the single-column formats (arg-max, top-k, multi-label, RLE)."""
    labels = np.asarray(spec.classes, dtype=object)
    if spec.mode == "argmax":
        return labels[np.argmax(vals, axis=1)].tolist()
    if spec.mode == "topk":
        best = np.argsort(-vals, axis=1, kind="stable")[:, :spec.k]
        return [spec.separator.join(r) for r in labels[best].tolist()]
    if spec.mode == "multilabel":
        thr = np.asarray(spec.thresholds if len(spec.thresholds) > 1 else spec.thresholds * len(spec.classes), float)
        on = vals >= thr
        return [spec.separator.join(labels[r].tolist()) or spec.empty for r in on]
    if spec.mode == "rle":
        shape = tuple(spec.mask_shape)
        return [rle_encode(v.reshape(shape) >= spec.threshold, spec.rle_order) or spec.empty for v in vals]
    raise ValueError(f"no single-column format {spec.mode!r}")


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "%.9g" % value
    return str(value)


class Formatter:
    """Turns combined values into the submission's rows, in sample order.

    Args:
        spec: The manifest's submission spec.
        sample: The sample submission (its ids fix the rows and their order).
        test_ids: The test rows' ids, in test order.
        layout: :func:`match`'s result.
        fallback: The cells of a row nothing produced.
        hook: ``postprocess`` only: ``hook(values, ids) -> rows`` (``runtime.hooks``).
        hook_name: The hook as the spec names it, for messages.
        strict: Raise :class:`HookError` when the hook fails (packaging); else
            report it in :attr:`events` and leave the block's rows to the fallback (a run).
        time_left: Seconds a hook call may still take (:class:`runtime.hooks.HookCaller`); None: no limit.
    """

    def __init__(self, spec: SubmissionSpec, sample: SampleSubmission, test_ids: Sequence[str], layout: Layout,
                 fallback: SampleSubmission, hook: Callable | None = None, hook_name: str = "", strict: bool = False,
                 time_left: Callable[[], float | None] | None = None):
        from runtime.hooks import HookCaller

        self.spec, self.sample, self.test_ids, self.layout, self.fallback = spec, sample, list(test_ids), layout, fallback
        self.hook_name, self.strict = hook_name or spec.postprocess, strict
        self.hook = HookCaller(hook, self.hook_name, time_left) if hook is not None else None
        self.events: list[str] = []
        self.failed_rows = 0  # covered test rows the hook failed on, at the last call
        self.hook_s = 0.0  # seconds spent in the hook, all calls
        self.produced: frozenset[str] = frozenset()  # sample ids the hook wrote, at the last call
        self._cache: dict[int, tuple[bytes, tuple[dict[str, list[str]], int] | None]] = {}
        self._sample_ids = set(sample.ids) if spec.mode == "postprocess" else frozenset()  # only its rows are checked

    def rows(self, values: np.ndarray, covered: np.ndarray) -> list[list[str]]:
        """Submission rows (id first) in sample order; ``values`` NaN where not ``covered``."""
        return [row for block in self.blocks(values, covered) for row in block]

    def blocks(self, values: np.ndarray, covered: np.ndarray, size: int = WRITE_BLOCK) -> Iterator[list[list[str]]]:
        """:meth:`rows` in blocks of ``size`` sample rows, each made as it is asked for: a write that
        streams them holds one block of formatted rows, not the whole submission."""
        if self.spec.mode == "postprocess":
            yield from self._postprocess(values, covered, size)
            return
        for a in range(0, len(self.sample.ids), size):
            yield self._block(values, covered, a, min(a + size, len(self.sample.ids)))

    def _block(self, values: np.ndarray, covered: np.ndarray, a: int, b: int) -> list[list[str]]:
        spec, lay = self.spec, self.layout
        assert lay.rows is not None, "only postprocess has no row layout, and it makes its blocks elsewhere"
        order = lay.rows[a:b]
        if spec.mode in ("values", "argmax"):
            return format_rows(values, covered, order, self.test_ids, spec, self.fallback)
        fb = self.fallback.rows
        ids = self.sample.ids[a:b]
        with gc_paused():
            ok = covered[order]
            if spec.mode == "long":
                assert lay.targets is not None, "a long layout names each sample row's target"
                targets = lay.targets[a:b]
                vals = np.nan_to_num(values[order[ok], targets[ok]])
                produced = iter(np.char.mod("%.9g", vals).tolist())
                return [[sid, next(produced)] if good else [sid, *fb[sid]] for sid, good in zip(ids, ok.tolist())]
            made = iter(cells(spec, np.nan_to_num(values[order[ok]])))
            return [[sid, next(made)] if good else [sid, *fb[sid]] for sid, good in zip(ids, ok.tolist())]

    def _postprocess(self, values: np.ndarray, covered: np.ndarray, size: int) -> Iterator[list[list[str]]]:
        produced: dict[str, list[str]] = {}
        self.failed_rows = 0
        n = len(self.test_ids)
        for a in range(0, n, POSTPROCESS_BLOCK):
            b = min(a + POSTPROCESS_BLOCK, n)
            idx = a + np.flatnonzero(covered[a:b])
            if not len(idx):
                continue
            vals = np.ascontiguousarray(values[idx])
            key = hashlib.sha256(idx.tobytes() + vals.tobytes()).digest()
            hit = self._cache.get(a)
            if hit is not None and hit[0] == key:
                answer = hit[1]
            else:
                answer = self._call(vals, [self.test_ids[i] for i in idx], a, b)
                self._cache[a] = (key, answer)
            if answer is None:
                self.failed_rows += len(idx)
                continue
            rows, unanswered = answer
            self.failed_rows += unanswered
            for rid, cells in rows.items():
                if rid in produced:
                    self._fail(a, b, HookError(f"it returned id {rid!r} for two different blocks of rows"))
                produced[rid] = cells
        self.produced = frozenset(produced)
        fb = self.fallback.rows
        for a in range(0, len(self.sample.ids), size):
            with gc_paused():
                yield [[sid, *produced[sid]] if sid in produced else [sid, *fb[sid]] for sid in self.sample.ids[a:a + size]]

    def _call(self, vals: np.ndarray, ids: list[str], a: int, b: int) -> tuple[dict[str, list[str]], int] | None:
        """The hook's rows for one block and how many of its test ids got none; None when it failed."""
        if self.hook is None:
            raise ValueError("a formatter made without the postprocess hook was given covered rows; it formats "
                             "the fallback alone (every row uncovered)")
        t0 = time.perf_counter()
        try:
            rows = self._check(self.hook(vals, ids), len(ids))
        except HookError as exc:
            self._fail(a, b, exc, ids)
            return None
        finally:
            self.hook_s += time.perf_counter() - t0
        # A test id that is a sample id (one row per id) must come back; ids it forms from them (long rows) cannot be told.
        unanswered = [i for i in ids if i in self._sample_ids and i not in rows]
        if unanswered:
            self._fail(a, b, HookError(f"it returned no row for {len(unanswered)} of the {len(ids)} id(s) it was "
                                       f"given (e.g. {', '.join(map(repr, unanswered[:3]))})"), ids, what="those ids")
        return rows, len(unanswered)

    def _fail(self, a: int, b: int, exc: HookError, ids: Sequence[str] = (), what: str = "those rows") -> None:
        from runtime.errors import HookTimeout

        shown = f" (ids {ids[0]} .. {ids[-1]})" if ids else ""
        text = f"postprocess hook {self.hook_name!r} failed on test rows {a}..{b - 1}{shown}: {exc}"
        if self.strict:
            raise HookError(text) from exc
        if isinstance(exc, HookTimeout) and not exc.first:
            return  # abandoned before: said once, when it was
        if isinstance(exc, HookTimeout):
            text += "; every later row keeps the fallback's values too (the hook is not called again)"
        self.events.append(f"{text}; {what} keep the fallback's values, the run goes on")

    def _check(self, out: Any, n: int) -> dict[str, list[str]]:
        """The hook's rows by id, checked against the sample's columns and ids."""
        header = self.sample.header
        if hasattr(out, "columns") and hasattr(out, "to_numpy"):  # a DataFrame
            if [str(c) for c in out.columns] != header:
                raise HookError(f"it returned a DataFrame with columns {[str(c) for c in out.columns]}; expected the "
                                f"sample submission's columns {header}")
            out = out.to_numpy(dtype=object).tolist()
        try:
            rows = [list(r) for r in out]
        except TypeError:
            raise HookError(f"it returned {type(out).__name__}; expected a list of rows (each [id, "
                            f"{', '.join(header[1:])}]) or a DataFrame with the sample's columns") from None
        result: dict[str, list[str]] = {}
        for r in rows:
            if len(r) != len(header):
                raise HookError(f"it returned the row {[_cell(c) for c in r[:6]]} of {len(r)} cell(s); expected {len(header)} "
                                f"({', '.join(header)})")
            rid = str(r[0])
            if rid not in self._sample_ids:
                raise HookError(f"it returned the id {rid!r}, which the sample submission does not have "
                                f"(its ids look like {', '.join(self.sample.ids[:3])})")
            if rid in result:
                raise HookError(f"it returned the id {rid!r} twice")
            result[rid] = [_cell(c) for c in r[1:]]
        if n and not result:
            raise HookError(f"it returned no rows for {n} test row(s)")
        return result


__all__ = ["POSTPROCESS_BLOCK", "Formatter", "Layout", "cells", "form_id", "match", "rle_decode", "rle_encode", "width"]
