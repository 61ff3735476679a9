"""runtime.hooks: loading a bundled hook, chunks that keep groups whole, failures that cost one chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runtime.errors import HookError
from runtime.hooks import apply_features, feature_chunks, features_output, load_hook
from runtime.settings import env_count


def _hook(tmp_path, body: str, name: str = "feat") -> str:
    (tmp_path / f"{name}.py").write_text(body)
    return f"{name}:make"


def test_chunks_without_a_group_are_consecutive_rows():
    frame = pd.DataFrame({"g": range(10)})
    assert [c.tolist() for c in feature_chunks(frame, "", 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_chunks_with_a_group_never_split_one_and_cover_every_row_once():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"g": rng.choice(list("abcdefghij") + [None], 200)})
    chunks = feature_chunks(frame, "g", 17)
    rows = np.concatenate(chunks)
    assert sorted(rows.tolist()) == list(range(200))
    seen = {}
    for n, c in enumerate(chunks):
        assert (np.diff(c) > 0).all()  # table order within a chunk
        for g in frame["g"].iloc[c].fillna("<NA>").unique():
            assert seen.setdefault(g, n) == n, f"group {g} split"


def test_a_failing_chunk_is_reported_with_the_hook_and_its_rows_and_the_rest_goes_on(tmp_path):
    ref = _hook(tmp_path, "def make(df):\n    if (df['x'] == 5).any():\n        raise KeyError('five')\n"
                          "    return {'y': df['x'] * 2.0}\n")
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(10)], "x": range(10)})
    result = apply_features(frame, ref, tmp_path, ids=frame["id"].tolist(), chunk_rows=4)
    assert result.failed.tolist() == [False] * 4 + [True] * 4 + [False] * 2
    assert result.frame["y"].tolist() == [0, 2, 4, 6, 0, 0, 0, 0, 16, 18]
    (event,) = result.events
    assert "features hook 'feat:make' failed on 4 test row(s) 4..7 (ids r4 .. r7)" in event
    assert "KeyError: 'five'" in event and "feat.py\", line 3, in make" in event and "the run goes on" in event
    assert "runtime/hooks.py" not in event  # the user's traceback, not ninefit's
    with pytest.raises(HookError, match="failed on 4 test row"):
        apply_features(frame, ref, tmp_path, chunk_rows=4, strict=True)


def test_a_chunk_returning_other_columns_than_at_packaging_fails(tmp_path):
    ref = _hook(tmp_path, "def make(df):\n    return {'z': df['x'] * 1.0}\n")
    frame = pd.DataFrame({"x": range(3)})
    result = apply_features(frame, ref, tmp_path, columns=(("y", "float64"),))
    assert result.failed.all() and "at packaging it returned ['y']" in result.events[0]
    assert result.frame["y"].tolist() == [0.0, 0.0, 0.0]  # zeros of the packaged columns: the rows are not written


@pytest.mark.parametrize("out, message", [
    ({"a": np.zeros(3)}, "shape (3,); expected 4 value(s)"),
    ({"a": np.array(["x"] * 4)}, "dtype <U1; expected numbers"),
    ([1, 2], "returned list; expected a DataFrame"),
    ({1: np.zeros(4)}, "column named 1"),
])
def test_features_output_is_checked(out, message):
    with pytest.raises(HookError) as err:
        features_output(out, 4)
    assert message in str(err.value)


def test_load_hook_says_what_is_missing(tmp_path):
    with pytest.raises(HookError, match="module file .*nothere.py not found"):
        load_hook("nothere:f", tmp_path)
    ref = _hook(tmp_path, "import json\ndef other(df):\n    return df\n")
    with pytest.raises(HookError, match="has no function 'make' \\(its functions: other\\)"):
        load_hook(ref, tmp_path)
    bad = _hook(tmp_path, "x = 1 / 0\n", "broken")
    with pytest.raises(HookError, match="(?s)importing broken.py failed:\n.*broken.py\", line 1.*ZeroDivisionError"):
        load_hook(bad, tmp_path)


def test_a_hook_class_without_call_is_refused_when_loaded(tmp_path):
    ref = _hook(tmp_path, "class make:\n    def predict(self, df):\n        return df\n", "stateful")
    with pytest.raises(HookError, match="hook 'stateful:make': class make has no __call__ method"):
        load_hook(ref, tmp_path)
    ok = _hook(tmp_path, "class make:\n    def __call__(self, df):\n        return df\n", "called")
    assert load_hook(ok, tmp_path)(5) == 5


def test_env_count():
    assert env_count("N", 7, {}) == 7
    assert env_count("N", 7, {"N": " 12 "}) == 12
    for raw in ("0", "-1", "x", "1.5"):
        with pytest.raises(ValueError, match=f"N={raw!r} is not a positive whole number"):
            env_count("N", 7, {"N": raw})
