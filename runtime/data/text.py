"""Text members: the bundle's tokenizer, token windows, length-sorted batches, window reduction.

A text member (``Member.text``, docs/spec.md) reads one text column, or two
for a cross-encoder pair, and tokenises every test row up front (the table
read a block at a time; only the tokens are kept, as int32) with the
Hugging Face ``tokenizers`` file carried in the bundle (``tokenizers`` is
imported lazily, here only). A row longer than ``max_length`` tokens becomes
several overlapping windows (``stride`` tokens shared by consecutive ones,
the tokenizer's own overflow, special tokens in each) whose activated outputs
are reduced to one row by ``reduce`` (element-wise mean or max).

Within each chunk of the run's chunk grid the windows are sorted by token
length and cut into batches of ``batch_size`` windows, or of at most
``max_tokens`` padded tokens; each batch is padded only to its own longest
window, and predictions go back to row order. Every problem with the text
(a missing column, a value that is not a string, a text no window setting
covers) is a :class:`DataError` raised while tokenising, before anything runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from runtime.errors import BackendUnavailableError, BundleError, DataError
from runtime.manifest import Member, TextSpec
from runtime.profile import VariantCost

#: Rows handed to the tokenizer at once (bounds the memory of its encodings).
_ENCODE_ROWS = 2048
#: A text member's chunks hold this many packaged batches of rows: sorting by
#: length within a chunk needs rows to choose from.
CHUNK_BATCHES = 8
#: Bin edges (tokens) of the length histogram in the run report.
LENGTH_BINS = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def chunk_unit(member: Member) -> int:
    """Rows per unit of the member's chunk grid (``checkpoint.chunk_grid``'s ``batch_size``)."""
    return member.batch_size * CHUNK_BATCHES if member.text is not None else member.batch_size


def load_tokenizer(path: Path, spec: TextSpec):
    """The ``tokenizers.Tokenizer`` in ``path``, set up for ``spec`` (no padding; truncation per spec).

    Raises:
        BackendUnavailableError: ``tokenizers`` is not installed.
        BundleError: The file does not load as a tokenizer.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise BackendUnavailableError(
            "text members need the Hugging Face `tokenizers` package (it is in Kaggle's image; "
            "pip install tokenizers)") from exc
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise BundleError(f"tokenizer {path} does not load: {str(exc)[:300]} "
                          "(expected a Hugging Face tokenizers tokenizer.json)") from exc
    tok.no_padding()
    if spec.truncation == "error":
        tok.no_truncation()
    else:
        stride = spec.stride if spec.truncation == "windows" else 0
        strategy = "only_second" if len(spec.columns) == 2 else "longest_first"
        try:
            tok.enable_truncation(spec.max_length, stride=stride, strategy=strategy)
        except Exception as exc:
            raise BundleError(f"tokenizer {path}: max_length {spec.max_length}, stride {stride} rejected: {exc}") from exc
    return tok


def text_values(frame, column: str, ids: Sequence[str], first: int = 0) -> list[str]:
    """The strings of one text column (of a block starting at row ``first``); DataError naming the first
    row whose value is not a string."""
    values = frame[column].tolist()
    for i, v in enumerate(values):
        if not isinstance(v, str):
            what = "a missing value" if v is None or (isinstance(v, float) and math.isnan(v)) else \
                f"a non-string value of type {type(v).__name__} ({v!r:.40})"
            raise DataError(f"text column {column!r} holds {what} in row {first + i} (id {ids[first + i]!r}); every "
                            "value must be a string (an empty string is allowed: it is tokenised to the special "
                            "tokens alone)")
    return values


@dataclass(frozen=True)
class TextRows:
    """Token windows of every test row, for one :class:`TextSpec`.

    Windows are stored back to back: window ``w`` is ``ids[starts[w]:starts[w] + lengths[w]]``;
    the windows of row ``r`` are ``first[r]:first[r + 1]``, in the tokenizer's order.
    """

    ids: np.ndarray  # int32, every window's tokens
    types: np.ndarray  # int8, token type ids, same layout
    starts: np.ndarray  # int64 per window
    lengths: np.ndarray  # int64 per window, special tokens included
    first: np.ndarray  # int64 per row + 1

    @property
    def n_rows(self) -> int:
        return len(self.first) - 1

    @property
    def n_windows(self) -> int:
        return len(self.lengths)

    def row_tokens(self) -> np.ndarray:
        """Tokens of each row over all its windows (overlaps counted twice, as they are computed)."""
        return np.add.reduceat(self.lengths, self.first[:-1]) if self.n_windows else np.zeros(0, np.int64)

    def feed(self, spec: TextSpec, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Model inputs for ``windows``, padded to the longest of them, keyed by input name."""
        lengths = self.lengths[windows]
        # At least one position: an empty text under a tokenizer that adds no special tokens
        # is one masked pad token rather than a zero-length input.
        width = max(1, int(lengths.max())) if len(windows) else 0
        cols = np.arange(width)
        mask = cols[None, :] < lengths[:, None]
        pos = np.where(mask, self.starts[windows][:, None] + cols[None, :], 0)
        out: dict[str, np.ndarray] = {}
        for name in spec.inputs:
            if name == "input_ids":
                out[name] = np.where(mask, self.ids[pos], spec.pad_id).astype(np.int64)
            elif name == "attention_mask":
                out[name] = mask.astype(np.int64)
            else:
                out[name] = np.where(mask, self.types[pos], 0).astype(np.int64)
        return out


def tokenize(spec: TextSpec, tokenizer, frame, ids: Sequence[str], *, columns: Sequence[str] | None = None) -> TextRows:
    """Tokenise every row into windows.

    ``frame`` is a DataFrame, or an iterable of ``(first row, DataFrame)``
    blocks in row order (:meth:`runtime.data.tables.TableSource.blocks`): the text
    is then read a block at a time and only the tokens are kept. ``columns``:
    the table's columns (named when a text column is missing; default the
    frame's).

    Raises:
        DataError: A text column is missing or holds a non-string, or a row is
            longer than the spec allows (``truncation = "error"``, more than
            ``max_windows`` windows, or a pair whose first text alone fills a window).
    """
    have = list(frame.columns) if columns is None and hasattr(frame, "columns") else list(columns or [])
    missing = [c for c in spec.columns if c not in have]
    if missing:
        raise DataError(f"test data has no text column(s) {', '.join(map(repr, missing))}; "
                        f"its columns: {', '.join(map(str, have[:20]))}")
    blocks = [(0, frame)] if hasattr(frame, "columns") else frame
    pieces_ids, pieces_types, lengths, counts = [], [], [], []
    for first, block in blocks:
        values = [text_values(block, c, ids, first) for c in spec.columns]
        texts: list[Any] = values[0] if len(values) == 1 else list(zip(*values))
        for lo in range(0, len(texts), _ENCODE_ROWS):
            part = texts[lo:lo + _ENCODE_ROWS]
            try:
                encodings = tokenizer.encode_batch(part)
            except Exception:  # one bad row fails the batch: find it and name it
                encodings = [_encode_one(tokenizer, spec, t, ids[first + lo + k]) for k, t in enumerate(part)]
            for k, enc in enumerate(encodings):
                windows = [enc] + list(enc.overflowing) if spec.truncation == "windows" else [enc]
                _check_row(spec, windows, ids[first + lo + k])
                counts.append(len(windows))
                for w in windows:
                    pieces_ids.append(w.ids)
                    pieces_types.append(w.type_ids)
                    lengths.append(len(w.ids))
    lengths_a = np.asarray(lengths, dtype=np.int64)
    starts = np.zeros(len(lengths_a), dtype=np.int64)
    if len(lengths_a) > 1:
        np.cumsum(lengths_a[:-1], out=starts[1:])
    total = int(lengths_a.sum())
    first = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    # int32 ids: half the memory of a long hidden test's tokens (vocabularies are far below 2**31).
    ids_a = np.fromiter(itertools.chain.from_iterable(pieces_ids), dtype=np.int32, count=total)
    types_a = np.fromiter(itertools.chain.from_iterable(pieces_types), dtype=np.int8, count=total)
    return TextRows(ids=ids_a, types=types_a, starts=starts, lengths=lengths_a, first=first)


def _encode_one(tokenizer, spec: TextSpec, text, row_id: str):
    try:
        return tokenizer.encode(*text) if isinstance(text, tuple) else tokenizer.encode(text)
    except Exception as exc:
        raise DataError(
            f"row {row_id!r} cannot be tokenised into windows of max_length {spec.max_length} ({exc}); with a text "
            f"pair only the second text ({spec.columns[1] if len(spec.columns) > 1 else ''!r}) is split into windows, "
            "so the first must fit in one window with room to spare: raise max_length or shorten it"
        ) from exc


def _check_row(spec: TextSpec, windows: list, row_id: str) -> None:
    n = len(windows[0].ids)
    if spec.truncation == "error" and n > spec.max_length:
        raise DataError(f"row {row_id!r} has {n} tokens, more than max_length {spec.max_length}, and truncation = "
                        "\"error\"; set truncation = \"windows\" (or \"head\") to run it")
    if len(windows) > spec.max_windows:
        raise DataError(f"row {row_id!r} needs {len(windows)} windows of {spec.max_length} tokens (stride {spec.stride}), "
                        f"more than max_windows = {spec.max_windows}; raise max_windows or max_length, or "
                        "set truncation = \"head\" to keep only its start")


# -- batches within one chunk -------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """The windows of rows ``[start, stop)``, sorted by length for batching."""

    start: int
    stop: int
    windows: np.ndarray  # global window indices, in row order
    order: np.ndarray  # positions into ``windows``, shortest first
    lengths: np.ndarray  # lengths[order]: sorted window lengths

    @classmethod
    def of(cls, rows: TextRows, start: int, stop: int) -> Chunk:
        windows = np.arange(rows.first[start], rows.first[stop], dtype=np.int64)
        lengths = rows.lengths[windows]
        order = np.argsort(lengths, kind="stable")
        return cls(start, stop, windows, order, lengths[order])

    def batch_end(self, pos: int, batch_size: int, max_tokens: int) -> int:
        """End of the batch starting at sorted position ``pos``: ``batch_size`` windows, or
        as many as fit in ``max_tokens`` padded tokens (at least one)."""
        if not max_tokens:
            return min(pos + max(1, batch_size), len(self.order))
        # Sorted ascending, so a batch's padded size is count x its last window's length.
        cost = np.arange(1, len(self.order) - pos + 1) * self.lengths[pos:]
        return pos + max(1, int(np.searchsorted(cost, max_tokens, side="right")))

    def batches(self, batch_size: int, max_tokens: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` positions in :attr:`order` of this chunk's batches at these settings."""
        pos = 0
        while pos < len(self.order):
            end = self.batch_end(pos, batch_size, max_tokens)
            yield pos, end
            pos = end

    def padded_tokens(self, batch_size: int, max_tokens: int) -> int:
        """Padded tokens of this chunk's batches at these settings."""
        return sum((end - pos) * int(self.lengths[end - 1]) for pos, end in self.batches(batch_size, max_tokens))

    def reduce(self, rows: TextRows, values: np.ndarray, how: str) -> np.ndarray:
        """Per-row outputs from per-window ``values`` (in ``windows`` order)."""
        offsets = rows.first[self.start:self.stop] - rows.first[self.start]
        if len(values) == self.stop - self.start:  # one window per row: nothing to reduce
            return values
        if how == "max":
            return np.maximum.reduceat(values, offsets, axis=0)
        counts = np.diff(rows.first[self.start:self.stop + 1]).astype(values.dtype)
        return np.add.reduceat(values, offsets, axis=0) / counts[:, None]


def length_stats(rows: TextRows) -> dict[str, Any]:
    """The length distribution of a test set: tokens per row and per window, and a histogram."""
    tokens = rows.row_tokens()
    if not len(tokens):
        return {"rows": 0, "windows": 0}
    q = np.percentile(tokens, [50, 90, 99])
    counts, _ = np.histogram(np.minimum(tokens, LENGTH_BINS[-1] - 1), bins=LENGTH_BINS)
    return {
        "rows": rows.n_rows, "windows": rows.n_windows, "tokens": int(tokens.sum()),
        "tokens_per_row": {"min": int(tokens.min()), "mean": float(tokens.mean()), "p50": float(q[0]),
                           "p90": float(q[1]), "p99": float(q[2]), "max": int(tokens.max())},
        "rows_with_windows": int((np.diff(rows.first) > 1).sum()),
        "histogram": {f"{lo}-{hi - 1}": int(c) for lo, hi, c in zip(LENGTH_BINS, LENGTH_BINS[1:], counts) if c},
    }


def expected_padding(rows: TextRows, grid: Sequence[tuple[int, int]], batch_size: int, max_tokens: int) -> tuple[int, int]:
    """(batches, padded tokens) the run will compute over ``grid``, length-sorted within each chunk."""
    batches = padded = 0
    for a, b in grid:
        chunk = Chunk.of(rows, a, b)
        for pos, end in chunk.batches(batch_size, max_tokens):
            padded += (end - pos) * int(chunk.lengths[end - 1])
            batches += 1
    return batches, padded


def row_cost(entry: VariantCost | Mapping[str, Any], rows: TextRows, grid: Sequence[tuple[int, int]], batch_size: int,
             max_tokens: int) -> float | None:
    """Seconds per row of a profiled text variant on these rows: its per-token costs
    (``s_per_token``, ``s_per_window``, ``s_per_batch``) applied to the batches and
    padded tokens this run will compute, divided by the rows. None without per-token costs.
    A mapping is read as the variant's JSON (:meth:`runtime.profile.VariantCost.from_dict`)."""
    cost = _as_cost(entry)
    text = cost.text if cost is not None else None
    if text is None or text.s_per_token is None or text.s_per_window is None or not rows.n_rows:
        return None
    batches, padded = expected_padding(rows, grid, batch_size, max_tokens)
    seconds = (float(text.s_per_token) * padded + float(text.s_per_window) * rows.n_windows
               + float(text.s_per_batch or 0.0) * batches)
    return seconds / rows.n_rows if math.isfinite(seconds) and seconds >= 0 else None


def row_costs(measured: Mapping[str, Mapping[str, VariantCost | Mapping[str, Any]]] | None, members: Sequence[Member],
              texts: dict[str, TextRows], grids: dict[str, list[tuple[int, int]]],
              batch_size: int | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """The planner's priors from the profile's members (``measured``: ``manifest.profile.members``): ``{member: {variant:
    {"s_per_row", "setup_s"}}}`` (:meth:`runtime.profile.VariantCost.prior`), with each text variant's
    ``s_per_row`` recomputed for this test set.

    The planner plans in seconds per row; a text member's cost is per token, and
    this run's token lengths are known once its rows are tokenised: the
    conversion happens here, at the boundary, and the planner is unchanged. An
    entry that does not read as a variant's cost is left out (the run measures it).
    """
    text_members = {m.name: m for m in members if m.text is not None and m.name in texts}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, variants in (measured or {}).items():
        if not isinstance(variants, Mapping):
            continue
        entries = {}
        for vname, entry in variants.items():
            cost = _as_cost(entry)
            if cost is None:
                continue
            prior = cost.prior()
            m = text_members.get(name)
            if m is not None and m.text is not None:
                spr = row_cost(cost, texts[name], grids[name], batch_size or m.batch_size, m.text.max_tokens)
                if spr is not None:
                    prior["s_per_row"] = spr
            entries[str(vname)] = prior
        out[str(name)] = entries
    return out


def _as_cost(entry: VariantCost | Mapping[str, Any]) -> VariantCost | None:
    if isinstance(entry, VariantCost):
        return entry
    try:
        return VariantCost.from_dict(entry)
    except ValueError:
        return None


__all__ = [
    "CHUNK_BATCHES",
    "LENGTH_BINS",
    "Chunk",
    "TextRows",
    "chunk_unit",
    "expected_padding",
    "length_stats",
    "load_tokenizer",
    "row_cost",
    "row_costs",
    "text_values",
    "tokenize",
]
