"""Row-wise ensembling over the members that covered each row.

A member stopped part-way still contributes to the rows it finished: each row
is the weighted combination of the members that covered it, with the weights
renormalized per row. Rows no member covered are reported as uncovered and
filled from the fallback by the submission writer.
"""

from __future__ import annotations

import numpy as np

from runtime.manifest import COMBINERS

_EPS = 1e-12


def activate(values: np.ndarray, activation: str) -> np.ndarray:
    """Apply a member's output activation (none / softmax / sigmoid), row-wise, in float64."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    v = v.reshape(v.shape[0], -1)
    if activation == "softmax":
        v = np.exp(v - v.max(axis=1, keepdims=True))
        return v / v.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    return v


class Accumulator:
    """Weighted per-row accumulation of member predictions."""

    def __init__(self, n_rows: int, width: int, combiner: str = "mean"):
        if combiner not in COMBINERS:
            raise ValueError(f"unknown combiner {combiner!r}; expected one of {', '.join(COMBINERS)}")
        self.combiner = combiner
        self.total = np.zeros((n_rows, width), dtype=np.float64)
        self.weight = np.zeros(n_rows, dtype=np.float64)

    def add(self, weight: float, start: int, values: np.ndarray) -> None:
        """Add ``values`` (already activated) for rows ``[start, start + len(values))``; NaN rows are not covered."""
        stop = start + len(values)
        v = np.log(np.clip(values, _EPS, None)) if self.combiner == "geometric_mean" else values
        ok = np.isfinite(v).all(axis=1)
        if ok.all():
            self.total[start:stop] += weight * v
            self.weight[start:stop] += weight
        else:  # rows this member skipped (NaN) are left to the others, weights renormalised per row
            self.total[start:stop][ok] += weight * v[ok]
            self.weight[start:stop][ok] += weight

    @property
    def covered(self) -> np.ndarray:
        return self.weight > 0

    def result(self, *, consume: bool = False) -> np.ndarray:
        """Combined predictions; uncovered rows are NaN (see :attr:`covered`).

        With ``consume``, computed in place of the running totals (no second array the size of
        the predictions: a submission write's peak memory); the accumulator is spent after.
        """
        # No masked copies: an uncovered row is 0 / 0 = NaN.
        with np.errstate(invalid="ignore"):
            out = np.divide(self.total, self.weight[:, None], out=self.total if consume else None)
        if self.combiner == "geometric_mean":
            np.exp(out, out=out)
        return out


__all__ = ["Accumulator", "activate"]
