"""What a text member costs: seconds against sequence length, over the public test's lengths.

A transformer's cost grows with the padded length of each batch, not with the
row count, so a text member is measured per token: batches of the member's
batch size, cut from the public test's real windows and padded to each of
several lengths chosen at quantiles of the public window lengths, are timed
(warm-up, then windows of calls until they agree, as for other members). A
least-squares line through those points gives ``s_per_window`` (fixed) and
``s_per_token``; applied by :func:`runtime.data.text.row_cost` to the batches the
runtime will form over the public rows (length-sorted within its chunks),
they give the ``s_per_row`` the estimator streams.

The hidden test's lengths are unknown until the notebook runs: the estimate
assumes they follow the public test's distribution (its note says so). At
run time the runtime re-applies the same per-token costs to the hidden test's
real lengths (:func:`runtime.data.text.row_costs`) before planning.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Callable

import numpy as np

from runtime.data.testdata import TestData
from runtime.data.text import Chunk, expected_padding, length_stats, row_cost
from runtime.execute.checkpoint import member_grid
from runtime.manifest import Member, Variant
from runtime.profile import TextCost, VariantCost

#: Quantiles of the public window lengths the cost is measured at.
QUANTILES = (0.1, 0.5, 0.9, 1.0)
LOG = logging.getLogger("ninefit.profile")
ASSUMPTION = "the hidden test is assumed to follow the public test's token-length distribution"


def _feed(runner, member: Member, test: TestData, length: int, batch: int) -> dict[str, np.ndarray]:
    """``batch`` real windows, cut or padded to exactly ``length`` tokens (real tokens, real mask)."""
    rows = test.text_rows(member)
    chunk = Chunk.of(rows, 0, rows.n_rows)
    # The windows nearest in length, so the mask is as real as it gets.
    at = int(np.clip(np.searchsorted(chunk.lengths, length), 0, max(len(chunk.order) - batch, 0)))
    idx = chunk.order[at:at + batch]
    if len(idx) < batch:
        idx = np.resize(idx, batch)
    assert member.text is not None, "text members only (text_rows refuses others)"
    feed = rows.feed(member.text, chunk.windows[idx])
    out = {}
    for name, x in feed.items():
        fill = member.text.pad_id if name == "input_ids" else 0
        if x.shape[1] >= length:
            out[name] = np.ascontiguousarray(x[:, :length])
        else:
            out[name] = np.pad(x, ((0, 0), (0, length - x.shape[1])), constant_values=fill)
    return out


def _time_point(runner, feed: dict[str, np.ndarray], budget_s: float, count: int, tolerance: float) -> tuple[float, bool, float]:
    """(seconds per call, settled, first call seconds)."""
    t = time.perf_counter()
    runner.infer(feed)
    first = time.perf_counter() - t
    runner.infer(feed)
    deadline = time.perf_counter() + budget_s
    window_s = max(budget_s / 8, first / 4)
    windows: list[float] = []
    while True:
        t0, k = time.perf_counter(), 0
        while True:
            runner.infer(feed)
            k += 1
            if time.perf_counter() - t0 >= window_s:
                break
        windows.append((time.perf_counter() - t0) / k)
        last = windows[-count:]
        if len(last) == count and max(last) / min(last) - 1 <= tolerance:
            return statistics.mean(last), True, first
        if time.perf_counter() >= deadline:
            return min(windows), False, first


def lengths_to_measure(member: Member, test: TestData) -> list[int]:
    """Sequence lengths at the quantiles of the public window lengths (distinct, at least 2)."""
    lengths = test.text_rows(member).lengths
    points = sorted({max(2, int(np.quantile(lengths, q))) for q in QUANTILES})
    assert member.text is not None, "text members only (text_rows refuses others)"
    return points if len(points) > 1 else sorted({points[0], min(member.text.max_length, 2 * points[0])})


def profile_text_variant(runner, member: Member, variant: Variant, test: TestData, budget_s: float, batch: int,
                         count: int, tolerance: float) -> dict[str, Any]:
    """Per-token costs of one variant and, from them, its cost per public row."""
    lengths = lengths_to_measure(member, test)
    points, firsts = [], []
    for length in lengths:
        feed = _feed(runner, member, test, length, batch)
        per_call, settled, first = _time_point(runner, feed, budget_s / len(lengths), count, tolerance)
        points.append({"length": length, "batch": batch, "s_per_batch": per_call, "s_per_window": per_call / batch,
                       "stable": settled})
        firsts.append(first - per_call)
    x = np.array([p["length"] for p in points], dtype=float)
    y = np.array([p["s_per_window"] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    if slope < 0:  # noise on a tiny model: cost flat in length
        slope, intercept = 0.0, float(y.mean())
    if intercept < 0:  # attention's quadratic term bends the line: keep it through the origin
        slope, intercept = float((x @ y) / (x @ x)), 0.0
    rows = test.text_rows(member)
    assert member.text is not None, "text members only (text_rows refuses others)"
    grid = member_grid(rows.n_rows, member)
    text = {"s_per_token": float(slope), "s_per_window": float(intercept), "s_per_batch": 0.0, "points": points,
            "lengths": length_stats(rows), "assumption": ASSUMPTION}
    batches, padded = expected_padding(rows, grid, batch, member.text.max_tokens)
    text.update(batches=batches, padded_tokens=padded, padded_tokens_per_row=padded / max(rows.n_rows, 1),
                padding_waste=padded / max(int(rows.lengths.sum()), 1))
    spr = row_cost(VariantCost(text=TextCost.from_dict(text)), rows, grid, batch, member.text.max_tokens) or 0.0
    return {"s_per_row": spr, "text": text, "warmup_s": max(firsts[0], 0.0),
            "reshape_s": statistics.median([max(f, 0.0) for f in firsts[1:]] or [0.0]),
            "stable": all(p["stable"] for p in points)}


def profile_text_member(bundle, member: Member, test: TestData, options, measure_setup: Callable,
                        run_options) -> dict[str, VariantCost]:
    """``{variant: VariantCost}`` for a text member (see ``profile.profile_bundle``)."""
    from dataclasses import replace

    out: dict[str, VariantCost] = {}
    batch = member.batch_size
    for variant in member.variants:
        t0 = time.perf_counter()
        setup_s, runner = measure_setup(bundle, member, variant, replace(run_options, batch_size=batch))
        try:
            rec = profile_text_variant(runner, member, variant, test, options.seconds_per_member / len(member.variants),
                                       batch, options.stable_windows, options.tolerance)
            device, backend = runner.device_kind(), runner.describe()
        finally:
            runner.deactivate()
        spr = rec["s_per_row"]
        # One batch point in rows, so the estimator streams rows as for any member: the row
        # cost already holds the public length distribution.
        point = {"s_per_row": spr, "s_per_batch": spr * batch, "stable": rec["stable"], "first_call_s": 0.0,
                 "windows": [], "calls": 0, "rows": test.n_rows,
                 "stages": {"preprocess": 0.0, "infer": spr * batch, "postprocess": 0.0}}
        out[variant.name] = VariantCost.from_dict({
            **rec, "setup_s": setup_s, "batch_size": batch, "best_batch_size": batch, "precision": variant.precision,
            "tta": 1, "device": device, "backend": backend, "rows_measured": test.n_rows,
            "seconds": time.perf_counter() - t0, "batches": {str(batch): point},
        })
        t = rec["text"]
        LOG.info(f"{member.name}/{variant.name}: {t['s_per_token'] * 1e6:.2f} us/token + {t['s_per_window'] * 1e6:.1f} "
            f"us/window -> {spr * 1e3:.2f} ms/row over the public lengths (padding waste {t['padding_waste']:.2f}), "
            f"setup {setup_s * 1e3:.0f} ms")
    return out


__all__ = ["ASSUMPTION", "QUANTILES", "lengths_to_measure", "profile_text_member", "profile_text_variant"]
