"""Per-member, per-chunk checkpoints of predictions, so a killed run resumes.

Each member's rows are cut into a fixed grid of chunks (:func:`chunk_grid`,
independent of timing and of ``--batch-size``). A finished chunk's activated,
TTA-averaged predictions are saved as one ``.npy`` file, written to a
temporary name and renamed into place, so a ``kill -9`` at any moment leaves
either no file or a complete one. Layout::

    WORK/checkpoints/<key>/<member>/<variant>/<start>-<stop>.npy
    WORK/checkpoints/<key>/costs.json        seconds measured live, per variant

``key`` (:func:`run_key`) hashes the manifest (which holds every bundle file's
sha256), the test data and the backend, so a different bundle, data set or
backend never reuses stale chunks. Safe against a killed process; two runs
sharing one work folder at the same time are not supported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import sha256_file
from runtime.data.pipeline import feed_bytes_per_row
from runtime.data.text import chunk_unit
from runtime.fileio import atomic_write, guarded
from runtime.locks import PY_COMPILE_LOCK
from runtime.manifest import Manifest, Member
from runtime.profile import Profile

#: Most chunks per member: bounds the number of files (and the per-file overhead).
MAX_CHUNKS = 512
#: A chunk of a profiled member is sized to take about this long where the bundle was profiled ...
CHUNK_TARGET_S = 0.05
#: ... while the member keeps at least this many chunks (lanes share them; the deadline is kept a chunk at a
#: time) and a chunk's prepared inputs stay within CHUNK_FEED_BYTES (measured on 1M Parquet rows of the digits
#: bundle: 8 MiB, 25k-row chunks, peak RSS 821 MiB; 1 MiB, 4k-row chunks, 633 MiB, 2% slower).
MIN_CHUNKS = 32
CHUNK_FEED_BYTES = 1 << 20
_CHUNK_FILE = re.compile(r"^(\d+)-(\d+)\.npy$")


def chunk_grid(n_rows: int, batch_size: int, max_chunks: int = MAX_CHUNKS, *, s_per_row: float | None = None,
               feed_bytes_per_row: int = 0) -> list[tuple[int, int]]:
    """Fixed ``[start, stop)`` chunks: whole packaged batches, at most ``max_chunks`` of them.

    With ``s_per_row`` (a member's profiled cost) a chunk holds as many whole
    batches as take about :data:`CHUNK_TARGET_S` at that cost, as long as
    there stay :data:`MIN_CHUNKS` chunks and a chunk's inputs
    (``feed_bytes_per_row`` each) stay within :data:`CHUNK_FEED_BYTES`: each
    chunk costs a file, a reload per submission write and the executor's
    bookkeeping, which a 128-row chunk of a small model spends more time on
    than on its inference (measured: 1,266 chunks of 128 rows, 0.5 s of
    inference, 1.4 s of writes).
    """
    if n_rows <= 0:
        return []
    batch = max(1, int(batch_size))
    per = max(1, math.ceil(n_rows / (batch * max_chunks)))
    if s_per_row is not None and math.isfinite(s_per_row) and s_per_row > 0:
        by_time = int(CHUNK_TARGET_S / (batch * s_per_row))
        by_count = n_rows // (batch * MIN_CHUNKS)
        by_bytes = CHUNK_FEED_BYTES // (batch * feed_bytes_per_row) if feed_bytes_per_row > 0 else by_time
        per = max(per, min(by_time, by_count, by_bytes))
    rows = batch * per
    return [(s, min(s + rows, n_rows)) for s in range(0, n_rows, rows)]


def member_grid(n_rows: int, member: Member, profile: Profile | Mapping[str, Any] | None = None) -> list[tuple[int, int]]:
    """The member's chunks over ``n_rows`` rows, as every run of the bundle cuts them.

    :func:`chunk_grid` at the member's chunk unit (:func:`runtime.data.text.chunk_unit`),
    sized by the cost of its first variant in ``profile`` (the manifest's: a
    bundle, its data and its profile fix the grid, so a resumed run finds the
    same chunks whatever the machine or ``--batch-size``). Text members, whose
    cost follows their token lengths, keep whole units. A mapping is read as a
    profile's JSON (:meth:`runtime.profile.Profile.from_dict`).
    """
    s_per_row = None
    if member.text is None and member.variants:
        cost = _as_profile(profile).cost(member.name, member.variants[0].name)
        s_per_row = float(cost.s_per_row) if cost is not None and cost.s_per_row is not None else None
    feed = feed_bytes_per_row(member, member.variants[0]) if s_per_row else 0
    return chunk_grid(n_rows, chunk_unit(member), s_per_row=s_per_row, feed_bytes_per_row=feed)


def _as_profile(profile: Profile | Mapping[str, Any] | None) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:  # a profile is measured data: one that does not read cuts the plain grid
        return Profile.from_dict(profile) if isinstance(profile, Mapping) else Profile()
    except ValueError:
        return Profile()


def data_fingerprint(path: Path) -> str:
    """sha256 of the test table (or image index) file."""
    return sha256_file(path)


def run_key(manifest: Manifest, data_sha256: str, backend: str) -> str:
    """Identity of a run's predictions: bundle contents, test data and backend."""
    h = hashlib.sha256()
    for part in (manifest.to_json(), data_sha256, backend):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:24]


def _safe(name: str) -> str:
    """A file-name-safe, collision-free folder name for a member or variant name."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "_"
    if clean == name:
        return name
    return f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class ChunkStore:
    """Chunk files of one run key under ``work_dir``."""

    def __init__(self, work_dir: str | os.PathLike, key: str):
        self.root = Path(work_dir) / "checkpoints" / key
        with guarded(self.root, "the work folder", CHECKPOINT_REMEDY):
            self.root.mkdir(parents=True, exist_ok=True)
        self.key = key
        for tmp in self.root.rglob("*.tmp"):  # left by a process killed mid-write
            tmp.unlink(missing_ok=True)

    def folder(self, member: str, variant: str) -> Path:
        return self.root / _safe(member) / _safe(variant)

    def path(self, member: str, variant: str, start: int, stop: int) -> Path:
        return self.folder(member, variant) / f"{start:09d}-{stop:09d}.npy"

    def chunks(self, member: str, variant: str) -> set[tuple[int, int]]:
        """Ranges with a complete file for this member and variant."""
        folder = self.folder(member, variant)
        if not folder.is_dir():
            return set()
        out = set()
        for name in os.listdir(folder):
            m = _CHUNK_FILE.match(name)
            if m:
                out.add((int(m.group(1)), int(m.group(2))))
        return out

    def save(self, member: str, variant: str, start: int, values: np.ndarray) -> Path:
        """Write one chunk atomically (tmp file + ``os.replace``)."""
        path = self.path(member, variant, start, start + len(values))
        array = np.ascontiguousarray(values, dtype=np.float64)
        return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), fsync=False,
                            what="a checkpoint", remedy=CHECKPOINT_REMEDY)

    def load(self, member: str, variant: str, start: int, stop: int, width: int) -> np.ndarray | None:
        """The chunk's predictions (NaN rows: skipped), or None when absent or unreadable (then it is removed)."""
        path = self.path(member, variant, start, stop)
        try:
            with PY_COMPILE_LOCK:  # the header is parsed by ast.literal_eval: one thread at a time (runtime.locks)
                values = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None
        # A row is a prediction (all finite) or skipped (all NaN: non-finite inputs or outputs); anything else is damage.
        if values.shape != (stop - start, width) or not (np.isfinite(values).all(axis=1) | np.isnan(values).all(axis=1)).all():
            path.unlink(missing_ok=True)
            return None
        return values

    def nbytes(self) -> int:
        """Bytes of every chunk file of this key."""
        return sum(p.stat().st_size for p in self.root.rglob("*.npy"))

    # -- live cost measurements, so a resumed run need not measure again ------------
    def load_costs(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{member: {variant: {"s_per_row": s, "setup_s": s}}}`` saved by earlier runs."""
        try:
            data = json.loads((self.root / "costs.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_costs(self, costs: dict[str, dict[str, dict[str, float]]]) -> None:
        atomic_write(self.root / "costs.json", json.dumps(costs, indent=1, sort_keys=True), fsync=False,
                     what="the measured costs", remedy=CHECKPOINT_REMEDY)


#: What to do when the work folder has no room for checkpoints (or may not be written).
CHECKPOINT_REMEDY = ("Point --work-dir (by default beside --out) at a writable folder on a disk with room (the "
                     "checkpoints take about rows x outputs x 8 bytes per member), or free some space there; a rerun "
                     "resumes from the checkpoints already written.")


__all__ = ["CHECKPOINT_REMEDY", "CHUNK_TARGET_S", "MAX_CHUNKS", "MIN_CHUNKS", "ChunkStore", "chunk_grid", "data_fingerprint", "member_grid",
           "run_key"]
