"""runtime.data.text: tokenising into windows, length-sorted batches, reduction, per-token costs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from runtime.data.text import Chunk, expected_padding, length_stats, load_tokenizer, row_cost, row_costs, tokenize
from runtime.errors import BundleError, DataError
from runtime.manifest import TextSpec

pytest.importorskip("tokenizers")

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    """A word-level tokenizer with [CLS] ... [SEP] ([SEP] ... [SEP] for pairs) around each text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def spec_for(path, **kw) -> TextSpec:
    return TextSpec(**{"columns": ("text",), "tokenizer": str(path), "max_length": 8, "stride": 2, **kw})


def rows_of(path, texts, **kw):
    spec = spec_for(path, **kw)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))],
                          **({"text": texts} if isinstance(texts[0], str) or texts[0] is None else
                             {"text": [a for a, _ in texts], "second": [b for _, b in texts]})})
    return spec, tokenize(spec, load_tokenizer(path, spec), frame, list(frame["id"]))


def words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + k) % len(WORDS)] for k in range(n))


def test_short_texts_are_one_window_each_with_special_tokens(tokenizer_file):
    spec, rows = rows_of(tokenizer_file, [words(3), words(1), ""])
    assert rows.n_rows == 3 and rows.n_windows == 3
    assert rows.lengths.tolist() == [5, 3, 2]  # the empty string: [CLS] [SEP], a valid row
    feed = rows.feed(spec, np.array([0, 2]))
    assert feed["input_ids"].tolist() == [[2, 4, 5, 6, 3], [2, 3, 0, 0, 0]]
    assert feed["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert list(feed) == ["input_ids", "attention_mask"]  # the model's order, from the spec


def test_long_text_becomes_overlapping_windows(tokenizer_file):
    spec, rows = rows_of(tokenizer_file, [words(14), words(2)])
    # 14 words, 6 per window (8 minus [CLS] [SEP]), 2 shared: 6 + 4 + 4 -> 3 windows.
    assert np.diff(rows.first).tolist() == [3, 1]
    feed = rows.feed(spec, np.arange(3))
    assert all(len(x) <= 8 for x in feed["input_ids"])
    first, second = feed["input_ids"][0], feed["input_ids"][1]
    assert first[0] == 2 and first[7] == 3 and second[0] == 2
    assert list(first[5:7]) == list(second[1:3])  # stride 2: the last two tokens open the next window


def test_head_keeps_one_window_and_error_refuses(tokenizer_file):
    _, rows = rows_of(tokenizer_file, [words(14)], truncation="head")
    assert rows.n_windows == 1 and rows.lengths[0] == 8
    with pytest.raises(DataError, match=r"row 'r0' has 16 tokens, more than max_length 8"):
        rows_of(tokenizer_file, [words(14)], truncation="error")


def test_too_many_windows_is_a_data_error(tokenizer_file):
    with pytest.raises(DataError, match=r"row 'r1' needs 3 windows .* more than max_windows = 2"):
        rows_of(tokenizer_file, [words(2), words(14)], max_windows=2)


def test_pairs_split_only_the_second_text(tokenizer_file):
    spec, rows = rows_of(tokenizer_file, [(words(1), words(9)), (words(2), words(1))], columns=("text", "second"),
                         inputs=("input_ids", "attention_mask", "token_type_ids"))
    # 4 places left for the second text per window, 2 shared: 9 tokens -> 4 windows.
    assert np.diff(rows.first).tolist() == [4, 1]
    feed = rows.feed(spec, np.arange(5))
    assert feed["token_type_ids"][0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert (feed["input_ids"][:4, 1] == 4).all()  # the first text is repeated in every window


def test_pair_whose_first_text_fills_the_window_is_named(tokenizer_file):
    with pytest.raises(DataError, match=r"row 'r0' cannot be tokenised into windows of max_length 8"):
        rows_of(tokenizer_file, [(words(10), words(3))], columns=("text", "second"))


@pytest.mark.parametrize("value, what", [(None, "a missing value"), (3, r"a non-string value of type int \(3\)"), (float("nan"), "a missing value")])
def test_non_string_values_are_data_errors(tokenizer_file, value, what):
    with pytest.raises(DataError, match=f"text column 'text' holds {what} in row 1 \\(id 'r1'\\)"):
        rows_of(tokenizer_file, ["alpha", value])


def test_missing_column(tokenizer_file):
    spec = spec_for(tokenizer_file, columns=("body",))
    frame = pd.DataFrame({"id": ["a"], "text": ["alpha"]})
    with pytest.raises(DataError, match=r"no text column\(s\) 'body'; its columns: id, text"):
        tokenize(spec, load_tokenizer(tokenizer_file, spec), frame, ["a"])


def test_a_file_that_is_not_a_tokenizer(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(BundleError, match="does not load"):
        load_tokenizer(bad, spec_for(bad))


def test_chunk_sorts_by_length_and_pads_each_batch_to_its_longest(tokenizer_file):
    lengths = [9, 1, 5, 2, 6, 3]
    spec, rows = rows_of(tokenizer_file, [words(n) for n in lengths], max_length=32)
    chunk = Chunk.of(rows, 0, 6)
    assert chunk.lengths.tolist() == sorted(n + 2 for n in lengths)
    assert chunk.batch_end(0, 2, 0) == 2
    assert chunk.padded_tokens(2, 0) == 2 * (4 + 7 + 11)
    # Budget 16 padded tokens: [3, 4, 5] (3 x 5 = 15), then [7, 8] (16), then [11].
    assert chunk.batch_end(0, 2, 16) == 3 and chunk.batch_end(3, 2, 16) == 5 and chunk.batch_end(5, 2, 16) == 6
    assert chunk.padded_tokens(99, 16) == 15 + 16 + 11
    assert expected_padding(rows, [(0, 3), (3, 6)], 2, 0) == (4, 2 * 7 + 11 + 2 * 5 + 8)


def test_reduce_mean_and_max_over_windows_in_row_order(tokenizer_file):
    spec, rows = rows_of(tokenizer_file, [words(2), words(14), words(1)])
    chunk = Chunk.of(rows, 0, 3)
    values = np.arange(10, dtype=np.float64).reshape(5, 2)  # windows: row0 | row1 x3 | row2
    assert chunk.reduce(rows, values, "mean").tolist() == [[0, 1], [4, 5], [8, 9]]
    assert chunk.reduce(rows, values, "max").tolist() == [[0, 1], [6, 7], [8, 9]]
    sub = Chunk.of(rows, 1, 3)
    assert sub.reduce(rows, values[1:], "mean").tolist() == [[4, 5], [8, 9]]


def test_length_stats(tokenizer_file):
    _, rows = rows_of(tokenizer_file, [words(2), words(14), ""])
    stats = length_stats(rows)
    assert stats["rows"] == 3 and stats["windows"] == 5 and stats["rows_with_windows"] == 1
    assert stats["tokens_per_row"]["min"] == 2 and stats["tokens"] == 4 + 3 * 8 + 2
    assert sum(stats["histogram"].values()) == 3


def test_row_cost_applies_per_token_costs_to_this_tests_batches(tokenizer_file):
    spec, rows = rows_of(tokenizer_file, [words(n) for n in (1, 2, 3, 9)], max_length=32)
    entry = {"s_per_row": 123.0, "text": {"s_per_token": 0.5, "s_per_window": 2.0, "s_per_batch": 1.0}}
    batches, padded = expected_padding(rows, [(0, 4)], 2, 0)
    assert row_cost(entry, rows, [(0, 4)], 2, 0) == pytest.approx((0.5 * padded + 2.0 * 4 + batches) / 4)
    from runtime.manifest import Member

    member = Member("m", 1.0, (), "out", (), batch_size=2, text=spec)
    plain = Member("t", 1.0, (), "out", ())
    profile = {"m": {"fp32": entry}, "t": {"fp32": {"s_per_row": 1.0}}}
    out = row_costs(profile, (member, plain), {"m": rows}, {"m": [(0, 4)], "t": [(0, 4)]})
    assert out["m"]["fp32"]["s_per_row"] == pytest.approx((0.5 * padded + 8 + batches) / 4)
    assert out["t"] == profile["t"]
    assert row_cost({"s_per_row": 1.0}, rows, [(0, 4)], 2, 0) is None  # no per-token costs: kept as is
    assert replace(spec, max_tokens=4) != spec


class _TokenRunner:
    """Outputs each window's length as its logit pair; out of memory above ``limit`` padded tokens."""

    def __init__(self, limit: int):
        from runtime.backends.base import Runner

        class R(Runner):
            def activate_impl(inner):
                pass

            def deactivate_impl(inner):
                pass

            def infer_impl(inner, feed):
                ids = feed["input_ids"]
                self.shapes.append(ids.shape)
                if ids.size > limit:
                    from runtime.errors import OutOfMemoryError

                    raise OutOfMemoryError(f"{ids.size} tokens")
                n = feed["attention_mask"].sum(axis=1).astype(np.float32)
                return {"out": np.stack([n, -n], axis=1)}

        self.shapes: list[tuple[int, int]] = []
        self.runner = R("fake")


def test_executor_runs_sorted_padded_batches_and_halves_the_token_budget_on_oom(tokenizer_file, tmp_path):
    from runtime.data.testdata import TestData
    from runtime.execute.checkpoint import ChunkStore
    from runtime.execute.executor import Executor, ExecutorSettings, Work
    from runtime.execute.memory import MemoryMonitor
    from runtime.manifest import DataSpec, Member, Variant
    from runtime.output.report import MemberReport, RunReport
    from runtime.schedule.planner import Budget

    lengths = [30, 2, 9, 1, 20, 4, 14, 3]
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(8)], "text": [words(n) for n in lengths]})
    spec = spec_for(tokenizer_file, max_length=16, stride=4, max_tokens=64)
    member = Member("m", 1.0, (), "out", (Variant("fp32", "m.onnx"),), batch_size=4, text=spec)
    test = TestData(list(frame["id"]), frame, DataSpec("text", "t.csv", "id"), tmp_path)
    fake = _TokenRunner(limit=40)
    report = RunReport(bundle="b", rows=8, submission="s.csv")
    report.members = [MemberReport(name="m", weight=1.0, value=1.0)]
    test.check(member)
    rows = test.text_rows(member)
    ex = Executor(Work((member,), {"m": [(0, 8)]}, test, ChunkStore(tmp_path / "w", "k"), 2),
                  [("lane0", lambda m, v: fake.runner)], clock=lambda: 0.0,
                  budget=Budget(deadline=1e9, margin_s=0.0, reserve_s=0.0), report=report, monitor=MemoryMonitor(None),
                  write_submission=lambda: 0.0, settings=ExecutorSettings(limited=False, progress=False))
    ex.run()
    assert report.members[0].status == "done" and report.members[0].oom_retries >= 1
    assert ex.workers[0].token_budget(ex.states["m"]) <= 40  # 64 -> 32
    ran = [s for s in fake.shapes if s[0] * s[1] <= 40]
    assert sum(s[0] for s in ran) == rows.n_windows  # every window once, after the halving
    widths = [s[1] for s in ran]
    assert widths == sorted(widths)  # shortest first, each batch padded to its own longest
    values = ex.store.load("m", "fp32", 0, 8, 2)
    per_row = [np.mean(rows.lengths[rows.first[r]:rows.first[r + 1]]) for r in range(8)]
    assert values[:, 0].tolist() == pytest.approx(per_row)  # back in row order, mean over windows
    text = report.members[0].text
    assert text["real_tokens"] == int(rows.lengths.sum()) and text["padded_tokens"] >= text["real_tokens"]


def test_predict_rows_of_a_text_member_is_in_row_order(tokenizer_file, tmp_path):
    from runtime.data.testdata import TestData
    from runtime.execute.predict import predict_rows
    from runtime.manifest import DataSpec, Member, Variant

    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": [words(20), words(1), words(5)]})
    spec = spec_for(tokenizer_file, max_length=8, stride=2)
    member = Member("m", 1.0, (), "out", (Variant("fp32", "m.onnx"),), batch_size=2, text=spec)
    test = TestData(list(frame["id"]), frame, DataSpec("text", "t.csv", "id"), tmp_path)
    fake = _TokenRunner(limit=10**6)
    fake.runner.activate()
    values = predict_rows(fake.runner, member, member.variants[0], test, 1, 3, 2)
    assert values[:, 0].tolist() == [3.0, 7.0]  # rows b, c: their token counts, in row order
    rows = test.text_rows(member)
    whole = predict_rows(fake.runner, member, member.variants[0], test, 0, 3, 2)
    assert whole[0, 0] == pytest.approx(np.mean(rows.lengths[rows.first[0]:rows.first[1]]))
    assert all(s[0] <= 2 for s in fake.shapes)


def test_a_text_table_is_tokenised_a_block_at_a_time_and_never_held(tokenizer_file, tmp_path, monkeypatch):
    from runtime.data.testdata import open_test_data
    from runtime.manifest import DataSpec, Member, Variant

    texts = [words(1 + (k * 7) % 19, k) for k in range(500)]
    texts[123] = ""
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(500)], "text": texts})
    frame.to_csv(tmp_path / "test.csv", index=False)
    spec = spec_for(tokenizer_file)
    whole = tokenize(spec, load_tokenizer(tokenizer_file, spec), frame, list(frame["id"]))
    test = open_test_data(tmp_path, DataSpec(format="text", test="test.csv", id_column="id"))
    test.source.block_rows = 37  # blocks that do not line up with the tokenizer's batches
    monkeypatch.setattr(test.source, "whole", lambda: pytest.fail("the whole text table was read"))
    member = Member(name="t", weight=1.0, inputs=(), output="y", variants=(Variant(name="full", file="t.onnx"),),
                    text=spec)
    rows = test.text_rows(member)  # read block by block, never held whole
    for field in ("ids", "types", "starts", "lengths", "first"):
        np.testing.assert_array_equal(getattr(rows, field), getattr(whole, field))
    frame.loc[300, "text"] = None  # a gap past the first blocks is named by its row and id
    frame.to_csv(tmp_path / "gap.csv", index=False, na_rep="")
    gap = open_test_data(tmp_path, DataSpec(format="text", test="gap.csv", id_column="id"))
    gap.source.block_rows = 37
    rows = gap.text_rows(member)  # read as written: an empty cell is an empty string in a CSV
    assert rows.n_rows == 500
    pq_frame = frame.copy()
    pq_frame.to_parquet(tmp_path / "gap.parquet", index=False)
    parquet = open_test_data(tmp_path, DataSpec(format="text", test="gap.parquet", id_column="id"))
    with pytest.raises(DataError, match=r"a missing value in row 300 \(id 'r300'\)"):
        parquet.text_rows(member)
