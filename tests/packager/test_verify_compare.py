"""Element-wise parity: what counts as the export agreeing with the original model."""

import numpy as np

from packager.verify import compare


def _check(expected, got, atol=1e-5, rtol=1e-3):
    return compare("y", len(expected), np.asarray(expected, np.float32), np.asarray(got, np.float32), atol, rtol)


def test_close_values_pass_and_far_values_fail_at_the_worst_index():
    assert _check([[1.0, 2.0]], [[1.0, 2.0000001]]).ok
    bad = _check([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.5]])
    assert not bad.ok and bad.worst_index == (1, 1) and bad.got == 4.5


def test_the_same_nan_or_inf_on_both_sides_is_faithful():
    c = _check([[np.nan, 1.0], [np.inf, -np.inf]], [[np.nan, 1.0], [np.inf, -np.inf]])
    assert c.ok and c.max_abs == 0.0 and c.max_rel == 0.0


def test_a_nan_or_inf_on_one_side_only_fails():
    assert not _check([[0.5, 1.0]], [[np.nan, 1.0]]).ok
    assert not _check([[np.nan, 1.0]], [[0.5, 1.0]]).ok
    assert not _check([[np.inf, 1.0]], [[-np.inf, 1.0]]).ok
    assert not _check([[np.inf, 1.0]], [[1e30, 1.0]]).ok


def test_the_worst_index_points_at_a_one_sided_infinity():
    c = _check([[1.0, np.inf, 2.0]], [[1.0, 1e30, 2.0]])
    assert not c.ok and c.worst_index == (0, 1)
