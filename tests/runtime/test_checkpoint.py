"""Chunk grid, atomic chunk files, and the run key that keeps stale chunks out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runtime.checkpoint import MAX_CHUNKS, ChunkStore, chunk_grid, run_key
from runtime.manifest import DataSpec, Manifest, SubmissionSpec

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(("n", "batch"), [(0, 8), (1, 8), (540, 32), (540, 256), (10**6, 64), (999_983, 1)])
def test_chunk_grid_covers_every_row_once_in_whole_batches(n, batch):
    grid = chunk_grid(n, batch)
    assert len(grid) <= MAX_CHUNKS
    assert [a for a, _ in grid] == ([0, *(b for _, b in grid[:-1])] if n else [])  # contiguous
    assert (grid[-1][1] if grid else 0) == n
    assert all((b - a) % batch == 0 for a, b in grid[:-1])
    assert chunk_grid(n, batch) == grid  # depends on nothing else


def test_chunks_round_trip_and_bad_files_are_dropped(tmp_path):
    store = ChunkStore(tmp_path, "k")
    values = np.arange(20, dtype=np.float64).reshape(10, 2)
    store.save("cnn", "fp32", 30, values)
    assert store.chunks("cnn", "fp32") == {(30, 40)}
    assert store.chunks("cnn", "fp16") == set() and store.chunks("nobody", "fp32") == set()
    np.testing.assert_array_equal(store.load("cnn", "fp32", 30, 40, 2), values)
    assert store.load("cnn", "fp32", 30, 40, 3) is None  # wrong width: removed, recomputed later
    assert store.chunks("cnn", "fp32") == set()
    store.path("cnn", "fp32", 0, 10).write_bytes(b"torn")
    assert store.load("cnn", "fp32", 0, 10, 2) is None and not store.path("cnn", "fp32", 0, 10).exists()
    skipped = values.copy()
    skipped[[2, 7]] = np.nan  # rows a member skipped (non-finite inputs or outputs) are whole NaN rows
    store.save("cnn", "fp32", 0, skipped)
    np.testing.assert_array_equal(store.load("cnn", "fp32", 0, 10, 2), skipped)
    for damage in (np.nan, np.inf):  # part of a row non-finite, or inf: not something the runtime writes
        torn = values.copy()
        torn[3, 1] = damage
        store.save("cnn", "fp32", 0, torn)
        assert store.load("cnn", "fp32", 0, 10, 2) is None and not store.path("cnn", "fp32", 0, 10).exists()


def test_leftover_temp_files_are_removed_and_odd_names_are_safe(tmp_path):
    store = ChunkStore(tmp_path, "k")
    store.save("a/b", "fp 16", 0, np.zeros((4, 1)))
    folder = store.folder("a/b", "fp 16")
    assert folder.is_relative_to(store.root) and folder.parent.parent == store.root
    assert store.folder("a/b", "x") != store.folder("a_b", "x")
    (folder / ".000000000-000000004.abc.tmp").write_bytes(b"half")
    ChunkStore(tmp_path, "k")
    assert not list(store.root.rglob("*.tmp"))
    assert store.chunks("a/b", "fp 16") == {(0, 4)}


def test_costs_survive_a_restart(tmp_path):
    store = ChunkStore(tmp_path, "k")
    assert store.load_costs() == {}
    store.save_costs({"cnn": {"fp32": {"s_per_row": 0.5, "setup_s": 2.0}}})
    assert ChunkStore(tmp_path, "k").load_costs()["cnn"]["fp32"]["s_per_row"] == 0.5


def test_run_key_changes_with_bundle_data_and_backend():
    m = Manifest(name="x", members=(), data=DataSpec(format="table", test="t.csv", id_column="id"),
                 submission=SubmissionSpec(id_column="id", columns=("y",)), files={"a.onnx": "0" * 64})
    k = run_key(m, "d" * 64, "onnxruntime")
    assert k == run_key(m, "d" * 64, "onnxruntime")
    assert k != run_key(dataclasses.replace(m, files={"a.onnx": "1" * 64}), "d" * 64, "onnxruntime")
    assert k != run_key(m, "e" * 64, "onnxruntime")
    assert k != run_key(m, "d" * 64, "tensorrt")
