"""Per-row combination: a member's NaN rows (skipped) leave it out of those rows only."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.output.ensemble import Accumulator


@pytest.mark.parametrize("combiner", ["mean", "geometric_mean"])
def test_nan_rows_are_left_to_the_other_members(combiner):
    acc = Accumulator(4, 2, combiner)
    a = np.array([[0.2, 0.8], [np.nan, np.nan], [0.6, 0.4], [np.nan, np.nan]])
    b = np.array([[0.4, 0.6], [0.3, 0.7], [np.nan, np.nan], [np.nan, np.nan]])
    acc.add(3.0, 0, a)
    acc.add(1.0, 0, b)
    assert acc.covered.tolist() == [True, True, True, False]
    assert acc.weight.tolist() == [4.0, 1.0, 3.0, 0.0]
    out = acc.result()
    np.testing.assert_allclose(out[1], [0.3, 0.7])  # b alone, renormalised
    np.testing.assert_allclose(out[2], [0.6, 0.4])  # a alone
    expected = (3 * np.log([0.2, 0.8]) + np.log([0.4, 0.6])) / 4 if combiner == "geometric_mean" else [0.25, 0.75]
    np.testing.assert_allclose(out[0], np.exp(expected) if combiner == "geometric_mean" else expected)
    assert np.isnan(out[3]).all()
