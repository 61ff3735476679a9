"""runtime.output.formats: each built-in format, the long format's ids, and the postprocess hook's checks."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.errors import DataError, HookError
from runtime.manifest import SubmissionSpec
from runtime.output.formats import Formatter, match, rle_decode, rle_encode, width
from runtime.output.submission import SampleSubmission
from tests.fixtures.projects import rle_reference


def _sample(ids, header=("id", "y"), cell="FB"):
    return SampleSubmission(ids=list(ids), header=list(header), rows={i: (cell,) for i in ids})


def _fmt(spec, ids, sample=None, **kw):
    sample = sample or _sample(ids, ("id", *spec.columns))
    return Formatter(spec, sample, ids, match(spec, sample, ids), sample, **kw)


@pytest.mark.parametrize("order", ["column", "row"])
def test_rle_matches_a_plain_loop_and_decodes_back(order):
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((5, 7)) > 0.5
        text = rle_encode(mask, order)
        if order == "column":
            assert text == rle_reference(mask)
        assert (rle_decode(text, (5, 7), order) == mask).all()
    assert rle_encode(np.zeros((3, 3)), order) == ""
    assert rle_encode(np.ones((2, 3)), order) == "1 6"


def test_rle_orders_differ_as_the_conventions_say():
    mask = np.array([[1, 1], [0, 0]], dtype=bool)  # the top row
    assert rle_encode(mask, "row") == "1 2"
    assert rle_encode(mask, "column") == "1 1 3 1"


def test_topk_best_first_ties_to_the_lower_class():
    spec = SubmissionSpec(id_column="id", columns=("y",), mode="topk", classes=("a", "b", "c", "d"), k=3)
    f = _fmt(spec, ["x", "z"])
    rows = f.rows(np.array([[0.1, 0.4, 0.4, 0.2], [1, 0, 0, 0.0]]), np.array([True, True]))
    assert rows == [["x", "b c d"], ["z", "a b c"]]
    assert width(spec) == 4


def test_multilabel_thresholds_separator_and_empty():
    spec = SubmissionSpec(id_column="id", columns=("y",), mode="multilabel", classes=("a", "b", "c"),
                          thresholds=(0.5,), separator="|", empty="-")
    rows = _fmt(spec, ["x", "z", "w"]).rows(np.array([[0.5, 0.9, 0.1], [0.0, 0.0, 0.0], [np.nan] * 3]),
                                             np.array([True, True, False]))
    assert rows == [["x", "a|b"], ["z", "-"], ["w", "FB"]]  # an uncovered row keeps the fallback
    per_class = SubmissionSpec(id_column="id", columns=("y",), mode="multilabel", classes=("a", "b"),
                               thresholds=(0.2, 0.8))
    assert _fmt(per_class, ["x"]).rows(np.array([[0.3, 0.7]]), np.array([True])) == [["x", "a"]]


def test_long_rows_follow_the_sample_order_and_fall_back_per_test_row():
    spec = SubmissionSpec(id_column="id", columns=("v",), mode="long", targets=("A", "B"), id_format="{id}_{target}")
    sample = _sample(["2_B", "1_A", "2_A", "1_B"], ("id", "v"))
    f = Formatter(spec, sample, ["1", "2"], match(spec, sample, ["1", "2"]), sample)
    rows = f.rows(np.array([[0.25, 0.5], [np.nan, np.nan]]), np.array([True, False]))
    assert rows == [["2_B", "FB"], ["1_A", "0.25"], ["2_A", "FB"], ["1_B", "0.5"]]


def test_long_sample_that_does_not_fit_names_the_ids_and_the_format():
    spec = SubmissionSpec(id_column="id", columns=("v",), mode="long", targets=("A", "B"))
    sample = _sample(["1_A", "1_B", "2_A", "2-B"], ("id", "v"))
    with pytest.raises(DataError) as err:
        match(spec, sample, ["1", "2"])
    text = str(err.value)
    assert "(e.g. 2-B)" in text and "(e.g. 2_B)" in text and "id_format = '{id}_{target}'" in text and "2 x 2 = 4" in text
    ambiguous = SubmissionSpec(id_column="id", columns=("v",), mode="long", targets=("1", "11"), id_format="{id}{target}")
    with pytest.raises(DataError, match="same row id"):
        match(ambiguous, _sample(["a"], ("id", "v")), ["11", "1"])


def _post_spec():
    return SubmissionSpec(id_column="id", columns=("y",), mode="postprocess", postprocess="post:fn", width=1)


@pytest.mark.parametrize("returned, message", [
    (lambda v, ids: 42, "returned int; expected a list of rows"),
    (lambda v, ids: [[i] for i in ids], "of 1 cell(s); expected 2 (id, y)"),
    (lambda v, ids: [["nope", 1.0]], "the id 'nope', which the sample submission does not have"),
    (lambda v, ids: [[ids[0], 1], [ids[0], 2]], "returned the id 'a' twice"),
    (lambda v, ids: [], "returned no rows for 2 test row(s)"),
    (lambda v, ids: 1 / 0, "ZeroDivisionError in the hook"),
    (lambda v, ids: [[i, np.float64(2.0194), np.float32(1)] for i in ids], "the row ['a', '2.0194', '1'] of 3 cell(s)"),
])
def test_postprocess_output_is_checked_against_the_sample(returned, message):
    ids = ["a", "b"]
    strict = _fmt(_post_spec(), ids, hook=returned, strict=True)
    with pytest.raises(HookError, match="failed on test rows 0..1") as err:
        strict.rows(np.zeros((2, 1)), np.ones(2, bool))
    assert message in str(err.value)
    lenient = _fmt(_post_spec(), ids, hook=returned)
    assert lenient.rows(np.zeros((2, 1)), np.ones(2, bool)) == [["a", "FB"], ["b", "FB"]]
    assert lenient.failed_rows == 2 and message in lenient.events[0] and "the run goes on" in lenient.events[0]


def test_postprocess_rows_missing_for_some_ids_are_said_and_not_counted():
    ids = ["a", "b", "c"]
    short = _fmt(_post_spec(), ids, hook=lambda v, ids: [[i, 1.0] for i in ids[1:]])
    assert short.rows(np.zeros((3, 1)), np.ones(3, bool)) == [["a", "FB"], ["b", "1"], ["c", "1"]]
    assert short.failed_rows == 1
    assert "returned no row for 1 of the 3 id(s) it was given (e.g. 'a')" in short.events[0]


def test_postprocess_takes_a_dataframe_and_formats_floats_like_values():
    import pandas as pd

    def hook(values, ids):
        return pd.DataFrame({"id": ids, "y": values[:, 0] * 2})

    rows = _fmt(_post_spec(), ["a", "b"], hook=hook).rows(np.array([[0.1], [0.5]]), np.array([True, True]))
    assert rows == [["a", "0.2"], ["b", "1"]]


def test_postprocess_is_called_once_per_block_while_its_values_stay_the_same():
    calls = []

    def hook(values, ids):
        calls.append(list(ids))
        return [[i, v] for i, v in zip(ids, values[:, 0])]

    f = _fmt(_post_spec(), ["a", "b", "c"], hook=hook)
    v, covered = np.array([[1.0], [2.0], [np.nan]]), np.array([True, True, False])
    first = f.rows(v, covered)
    assert f.rows(v, covered) == first and calls == [["a", "b"]]  # only covered rows, and cached
    f.rows(np.array([[1.0], [2.0], [3.0]]), np.ones(3, bool))
    assert calls[-1] == ["a", "b", "c"]
