"""Chunk grid, atomic chunk files, and the run key that keeps stale chunks out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from runtime.execute.checkpoint import (
    CHUNK_FEED_BYTES,
    CHUNK_TARGET_S,
    MAX_CHUNKS,
    MIN_CHUNKS,
    ChunkStore,
    chunk_grid,
    member_grid,
    run_key,
)
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


@pytest.mark.parametrize(("n", "batch", "s_per_row"), [(54_000, 32, 2e-6), (10**6, 256, 2e-6), (20_000, 64, 1e-3),
                                                     (540, 32, 1e-7), (10**6, 1, 1e-8)])
def test_a_profiled_member_gets_chunks_of_about_the_target_time(n, batch, s_per_row):
    grid = chunk_grid(n, batch, s_per_row=s_per_row)
    rows = grid[0][1] - grid[0][0]
    assert all((b - a) % batch == 0 for a, b in grid[:-1]) and grid[-1][1] == n
    assert len(grid) <= MAX_CHUNKS
    plain = chunk_grid(n, batch)
    assert rows >= plain[0][1] - plain[0][0]  # never finer than the grid without a profile
    if rows > plain[0][1] - plain[0][0]:  # grown: within the target time, and enough chunks left to share
        assert rows * s_per_row <= CHUNK_TARGET_S and len(grid) >= MIN_CHUNKS
    assert chunk_grid(n, batch, s_per_row=s_per_row) == grid  # the same grid on every run
    # 54,000 rows of a 2 us/row model at batch 32 (the lanes benchmark): 33 chunks of 1,664 rows, not 422 of 128
    if (n, batch) == (54_000, 32):
        assert (len(plain), len(grid), rows) == (422, 33, 1664)


def test_a_chunk_s_inputs_stay_bounded():
    grid = chunk_grid(10**6, 64, s_per_row=1e-8, feed_bytes_per_row=3 * 224 * 224 * 4)
    rows = grid[0][1] - grid[0][0]
    assert rows * 3 * 224 * 224 * 4 <= max(CHUNK_FEED_BYTES, 64 * 3 * 224 * 224 * 4 * -(-10**6 // (64 * MAX_CHUNKS)))


def test_member_grid_follows_the_manifest_s_profile(digits_bundle):
    m = Manifest.load(digits_bundle)
    member = m.members[0]
    rows = 200_000
    unprofiled = member_grid(rows, member, None)
    assert unprofiled == chunk_grid(rows, member.batch_size)
    profile = {"members": {member.name: {member.variants[0].name: {"s_per_row": 1e-6}}}}
    grid = member_grid(rows, member, profile)
    assert len(grid) < len(unprofiled) and grid[0][1] % member.batch_size == 0
    for bad in ({}, {"members": {member.name: {member.variants[0].name: {"s_per_row": "fast"}}}},
                {"members": {member.name: {member.variants[0].name: {"s_per_row": float("nan")}}}},
                {"members": {member.name: None}}, {"members": []}, {"members": ["x"]}, {"members": {member.name: 3}}):
        assert member_grid(rows, member, bad) == unprofiled, bad  # a damaged profile cuts the plain grid
    text = dataclasses.replace(member, text=object())  # a text member keeps whole units of batches
    assert member_grid(rows, text, profile) == chunk_grid(rows, member.batch_size * 8)


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


@pytest.mark.timeout(120)
def test_a_profiled_bundle_runs_and_resumes_on_its_profile_s_grid(digits_bundle, digits_dir, tmp_path):
    import json
    import shutil

    from packager.estimate.measure.sampling import tile_data
    from runtime.manifest import MANIFEST_NAME
    from runtime.run import RunOptions, run

    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    data["profile"] = {"members": {m["name"]: {v["name"]: {"s_per_row": 2e-6, "setup_s": 0.01} for v in m["variants"]}
                                   for m in data["members"]}}
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))
    m = Manifest.load(bundle)
    rows = 65_536
    tiled = tile_data(digits_dir / "data", m.data, m.submission.sample, m.submission.id_column, rows, tmp_path / "data",
                      m.submission)

    def once(name: str, work: Path) -> bytes:
        out = tmp_path / name / "submission.csv"
        run(bundle, tiled, out, RunOptions(work_dir=work, progress=False, lanes=1))
        return out.read_bytes()

    reference = once("reference", tmp_path / "w-ref")
    for member in m.members:
        grid = member_grid(rows, member, m.profile)
        assert len(grid) == MIN_CHUNKS < len(chunk_grid(rows, member.batch_size))  # coarser than the plain grid
        files = sorted(p.name for p in (tmp_path / "w-ref").glob(f"checkpoints/*/{member.name}/*/*.npy"))
        assert files == [f"{a:09d}-{b:09d}.npy" for a, b in grid]
    # Half the chunks lost (a killed run): the rerun computes the rest and writes the same bytes.
    work = shutil.copytree(tmp_path / "w-ref", tmp_path / "w")
    for k, path in enumerate(sorted(work.glob("checkpoints/*/*/*/*.npy"))):
        if k % 2:
            path.unlink()
    assert once("resumed", work) == reference
