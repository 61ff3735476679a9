"""Submission formatting: values and argmax modes, fallback rows, and the collector left as found."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from runtime.manifest import SubmissionSpec
from runtime.submission import SampleSubmission, format_rows, gc_paused

pytestmark = pytest.mark.timeout(10)


def test_format_rows_in_sample_order_with_fallback_for_uncovered():
    values = np.array([[0.1, 0.9], [np.nan, np.nan], [0.7, 0.3]])
    covered = np.array([True, False, True])
    order = np.array([2, 0, 1])
    ids = ["a", "b", "c"]
    fallback = SampleSubmission(ids=ids, header=["id", "x", "y"], rows={i: ("0.5", "0.5") for i in ids})
    values_spec = SubmissionSpec(id_column="id", columns=("x", "y"))
    assert format_rows(values, covered, order, ids, values_spec, fallback) == [
        ["c", "0.7", "0.3"], ["a", "0.1", "0.9"], ["b", "0.5", "0.5"]]
    label = SubmissionSpec(id_column="id", columns=("label",), mode="argmax", classes=("cat", "dog"))
    fb = SampleSubmission(ids=ids, header=["id", "label"], rows={i: ("cat",) for i in ids})
    assert format_rows(values, covered, order, ids, label, fb) == [["c", "cat"], ["a", "dog"], ["b", "cat"]]


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_restores_the_collector(enabled):
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), gc_paused():
            raise RuntimeError("boom")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
