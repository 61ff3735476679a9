"""Submission formatting: values and argmax modes, fallback rows, and the collector left as found."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from runtime.manifest import SubmissionSpec
from runtime.output.submission import SampleSubmission, format_rows, gc_paused

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


def test_a_streamed_write_gives_the_same_bytes_and_leaves_nothing_when_it_fails(tmp_path):
    from runtime.output.submission import write_atomic

    rows = [[f"id{i}", f"{i / 7:.9g}", 'a "quoted", cell'] for i in range(10)]
    write_atomic(tmp_path / "whole.csv", ["id", "x", "y"], rows)
    write_atomic(tmp_path / "streamed.csv", ["id", "x", "y"], (rows[a:a + 3] for a in range(0, 10, 3)), blocks=True)
    assert (tmp_path / "streamed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()

    def failing():
        yield rows[:3]
        raise RuntimeError("the formatter failed half-way")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "whole.csv", ["id", "x", "y"], failing(), blocks=True)
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "streamed.csv").read_bytes()  # the old file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.csv", "whole.csv"]  # no temporary left


def test_the_ensemble_result_is_nan_exactly_where_no_member_covered():
    from runtime.output.ensemble import Accumulator

    for combiner in ("mean", "geometric_mean"):
        acc = Accumulator(4, 2, combiner)
        acc.add(1.0, 0, np.array([[0.2, 0.8], [np.nan, np.nan]]))
        acc.add(3.0, 1, np.array([[0.5, 0.5], [0.4, 0.6]]))
        out = acc.result()
        assert np.isnan(out[3]).all() and np.isfinite(out[:3]).all()
        assert np.allclose(out[0], [0.2, 0.8]) and np.allclose(out[1], [0.5, 0.5]), combiner
        spent = acc.result(consume=True)  # in place of the totals: the same values, no second array
        assert spent is acc.total and np.array_equal(spent, out, equal_nan=True)


def test_the_sample_is_read_as_written_and_a_bad_line_is_named(tmp_path):
    import pandas as pd

    from runtime.errors import DataError
    from runtime.output.submission import match_ids, read_sample

    spec = SubmissionSpec(id_column="id", columns=("label", "text"))
    path = tmp_path / "sample_submission.csv"
    # A BOM, quoted cells holding the separator and quotes, cells that look like numbers, a blank line.
    path.write_bytes('\ufeffid,label,text\n007,0.50,"a, b"\n"x""y",1e3,\n\nNA,,"line\nbreak"\n'.encode())
    sample = read_sample(path, spec)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert sample.ids == frame["id"].tolist() == ["007", 'x"y', "NA"]
    assert sample.rows == {r[0]: tuple(r[1:]) for r in frame.itertuples(index=False)}
    assert sample.rows["007"] == ("0.50", "a, b") and sample.rows["NA"] == ("", "line\nbreak")
    assert list(match_ids(sample, ["007", 'x"y', "NA"])) == [0, 1, 2]  # the test order: no index built
    assert list(match_ids(sample, ["NA", "007", 'x"y'])) == [1, 2, 0]
    path.write_text("id,label,text\n1,a,b\n2,a\n")
    with pytest.raises(DataError, match=r"sample_submission.csv line 3: 2 field\(s\), expected 3"):
        read_sample(path, spec)
    path.write_text("id,lable,text\n1,a,b\n")
    with pytest.raises(DataError, match=r"has columns \['id', 'lable', 'text'\]"):
        read_sample(path, spec)
