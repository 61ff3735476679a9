"""Test tables read in pieces: Parquet by row groups, CSV in blocks, the same rows as a whole read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime.data.tables import CsvSource, ParquetSource, open_table
from runtime.data.testdata import open_test_data, read_table
from runtime.errors import DataError
from runtime.manifest import DataSpec, InputSpec, Member, Variant

pytestmark = pytest.mark.timeout(60)


def _frame(n: int = 1000, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    x[rng.random((n, 3)) < 0.01] = np.nan
    return pd.DataFrame({"id": [f"{i:05d}" for i in range(n)], "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "k": rng.integers(0, 9, n), "s": [f"t{i % 7}" for i in range(n)]})


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The system temp folder, where a run's scratch files (the table spool) go, made this test's own."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def spool_folders(scratch: Path) -> list[Path]:
    return sorted(scratch.glob("ninefit-table-*"))


@pytest.fixture(params=["parquet", "csv"])
def table(request, tmp_path):
    """(path, frame): the frame written as Parquet in row groups of 128 rows, or as CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _frame()
    if request.param == "parquet":
        path = tmp_path / "test.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=128)
    else:
        path = tmp_path / "test.csv"
        frame.to_csv(path, index=False)
    return path, frame


def test_pieces_are_the_rows_of_a_whole_read_in_any_order(table):
    path, _ = table
    whole = read_table(path, id_column="id")
    source = open_table(path, id_column="id")
    if isinstance(source, CsvSource):
        source.block_rows = 97  # blocks that do not line up with the requests
    else:
        assert isinstance(source, ParquetSource) and source.n_rows == 1000
    assert source.ids() == whole["id"].tolist()
    for a, b in [(0, 10), (5, 300), (300, 301), (250, 999), (0, 1000), (999, 1000), (10, 20), (0, 5)]:
        part = source.read(a, b, ["a", "c", "k"])
        expected = whole.iloc[a:b][["a", "c", "k"]].reset_index(drop=True)
        assert part.shape == expected.shape, (a, b)
        np.testing.assert_array_equal(part.to_numpy(), expected.to_numpy())
    assert source.read(990, 1010, ["id"])["id"].tolist() == whole["id"].tolist()[990:]
    source.close()


def test_test_data_reads_only_ids_up_front_and_feeds_the_same_values(table, monkeypatch):
    path, frame = table
    spec = DataSpec(format="table", test=path.name, id_column="id", missing="fill", fill_value=-1.0)
    test = open_test_data(path.parent, spec)
    # The ids up front, then the chunks asked for: the table is never read whole.
    monkeypatch.setattr(test.source, "whole", lambda: pytest.fail("the whole table was read"))
    member = Member(name="m", weight=1.0, inputs=(InputSpec("x", "float32", ("batch", 3), columns=("a", "b", "c")),),
                    output="y", variants=(Variant(name="full", file="m.onnx"),))
    test.check(member)
    x = frame[["a", "b", "c"]].to_numpy()
    expected = np.where(np.isfinite(x), x, -1.0).astype(np.float32)
    got = np.concatenate([test.feed(member, a, min(a + 64, 1000))["x"] for a in range(0, 1000, 64)])
    np.testing.assert_array_equal(got, expected)
    assert test.nonfinite(member).sum() == (~np.isfinite(x)).any(axis=1).sum()
    assert test.missing_columns(member) == {c: int(frame[c].isna().sum()) for c in "abc" if frame[c].isna().any()}
    assert test.rows(10, 12)["id"].tolist() == ["00010", "00011"]  # a chunk as a DataFrame, for a features hook
    test.close()


def test_a_text_column_is_said_not_numeric(table):
    path, _ = table
    test = open_test_data(path.parent, DataSpec(format="table", test=path.name, id_column="id"))
    member = Member(name="m", weight=1.0, inputs=(InputSpec("x", "float32", ("batch", 2), columns=("a", "s")),),
                    output="y", variants=(Variant(name="full", file="m.onnx"),))
    with pytest.raises(DataError, match=r"column\(s\) s \(\w+\) for model 'm' are not numeric"):
        test.check(member)
    test.close()


def test_missing_file_and_missing_id_column_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_table(tmp_path / "nope.parquet", id_column="id")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="has no id column 'id'; its columns are: a, b"):
        open_table(tmp_path / "t.csv", id_column="id")


def test_cudf_pandas_is_asked_for_on_a_gpu_target_and_pandas_runs_without_it(table):
    """The GPU table stage: cudf.pandas where installed (unverified on a GPU); here it is not, pandas reads.

    In a process of its own: whether cudf.pandas is installed is found once a process (installing it
    changes pandas for the whole process).
    """
    import json
    import os
    import subprocess
    import sys
    import textwrap

    path, frame = table
    code = textwrap.dedent(f"""
        import builtins, json
        from pathlib import Path
        asked = []
        real_import = builtins.__import__

        def spy(name, *args, **kwargs):
            if name.startswith("cudf"):
                asked.append(name)
                raise ImportError("No module named 'cudf'")
            return real_import(name, *args, **kwargs)

        builtins.__import__ = spy
        from runtime.data import tables
        source = tables.open_table(Path({str(path)!r}), id_column="id", gpu=False)
        source.read(0, 3)
        cpu = [list(asked), tables.table_engine()]
        source = tables.open_table(Path({str(path)!r}), id_column="id", gpu=True)
        ids = source.read(0, 3)["id"].tolist()
        source.close()
        print(json.dumps([cpu, asked, tables.table_engine(), ids]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "NINEFIT_CUDF"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cpu, asked, engine, ids = json.loads(done.stdout.splitlines()[-1])
    assert cpu == [[], "pandas"]  # a CPU target never asks for it
    assert asked == ["cudf.pandas"] and engine == "pandas" and ids == frame["id"].tolist()[:3]


def test_a_csv_read_at_several_places_in_turn_reads_forward_from_each(tmp_path, monkeypatch):
    """Lanes read different members' rows in turn: each place keeps its reader, none restarts the file."""
    from runtime.data import tables

    frame = pd.DataFrame({"id": [str(i) for i in range(1000)], "a": np.arange(1000.0)})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    source = tables.CsvSource(path, id_column="id", block_rows=50)
    opened = []  # the readers opened on the file (pandas.read_csv in blocks)
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **kw: opened.append(kw.get("chunksize")) or real(*a, **kw))
    for k in range(0, 500, 25):  # two lanes: one from row 0, one from row 500, taking turns
        for start in (k, 500 + k):
            got = source.read(start, start + 25, ["a"])
            np.testing.assert_array_equal(got["a"].to_numpy(), frame["a"].to_numpy()[start:start + 25])
    assert opened == [50, 50]  # one reader per place, each read forward
    source.close()


def test_the_table_is_parsed_once_then_chunks_come_from_the_spool(table, scratch, monkeypatch):
    path, frame = table
    spec = DataSpec(format="table", test=path.name, id_column="id", missing="fill", fill_value=-1.0)
    test = open_test_data(path.parent, spec)
    member = Member(name="m", weight=1.0, inputs=(InputSpec("x", "float32", ("batch", 3), columns=("a", "b", "c")),),
                    output="y", variants=(Variant(name="full", file="m.onnx"),))
    ints = Member(name="k", weight=1.0, inputs=(InputSpec("x", "int64", ("batch", 1), columns=("k",)),),
                  output="y", variants=(Variant(name="full", file="k.onnx"),))
    test.check(member)
    test.check(ints)
    (folder,) = spool_folders(scratch)  # on local disk, the run's own
    spools = sorted(folder.iterdir())
    assert len(spools) == 2 and all(p.stat().st_size == 1000 * 8 * n for p, n in zip(spools, (3, 1)))

    def no_reading(*_a, **_k):
        raise AssertionError("the table was read again")

    monkeypatch.setattr(test.source, "read", no_reading)
    monkeypatch.setattr(test.source, "blocks", no_reading)
    x = frame[["a", "b", "c"]].to_numpy()
    expected = np.where(np.isfinite(x), x, -1.0).astype(np.float32)
    for a, b in [(0, 64), (500, 1000), (999, 1000), (100, 101), (0, 1000)]:  # any order, any size
        np.testing.assert_array_equal(test.feed(member, a, b)["x"], expected[a:b])
        np.testing.assert_array_equal(test.feed(ints, a, b)["x"], frame[["k"]].to_numpy()[a:b])
    test.close()
    assert not folder.exists()  # the spool goes with the run


def test_blocks_of_differing_dtypes_are_read_from_the_table(tmp_path, scratch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # An int column with a gap in its second row group: pandas reads that group as float, the first as int.
    k = pa.array([1, 2, 3, 4, None, 6], type=pa.int64())
    pq.write_table(pa.table({"id": [str(i) for i in range(6)], "k": k}), tmp_path / "t.parquet", row_group_size=3)
    spec = DataSpec(format="table", test="t.parquet", id_column="id", missing="fill", fill_value=0.0)
    test = open_test_data(tmp_path, spec)
    member = Member(name="m", weight=1.0, inputs=(InputSpec("x", "float32", ("batch", 1), columns=("k",)),),
                    output="y", variants=(Variant(name="full", file="m.onnx"),))
    test.check(member)
    assert not [p for folder in spool_folders(scratch) for p in folder.iterdir()]  # k is not spooled
    np.testing.assert_array_equal(test.feed(member, 0, 6)["x"][:, 0], [1, 2, 3, 4, 0, 6])
    test.close()


def test_scratch_folders_of_killed_runs_are_swept(tmp_path):
    import os
    import subprocess
    import sys

    from runtime.fileio import scratch_dir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"ninefit-table-{gone.stdout.strip()}-abc"  # a run killed with kill -9 left it
    alive = tmp_path / f"ninefit-table-{os.getppid()}-abc"  # another run, still going
    other = tmp_path / "ninefit-table-notapid-abc"  # not ours
    spool = tmp_path / f"ninefit-spool-{gone.stdout.strip()}-abc"  # another kind: swept when that kind is made
    for folder in (dead, alive, other, spool):
        folder.mkdir()
    mine = scratch_dir("table", tmp_path)
    assert mine.is_dir() and mine.name.startswith(f"ninefit-table-{os.getpid()}-")
    assert not dead.exists() and alive.exists() and other.exists() and spool.exists()
