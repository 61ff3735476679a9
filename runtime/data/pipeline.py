"""The data path of a run: each chunk's inputs prepared ahead, in a bounded queue, while the last one is inferred.

:class:`FeedPipeline` answers one question for the executor: *the prepared
feeds of member M on variant V for rows [a, b)* (one feed per TTA transform).
It prepares the next chunks the executor names (``ahead``) in a background
thread while the current one runs, at most ``depth`` chunks ahead, so memory
stays bounded (back-pressure: nothing more is read until a prepared chunk is
taken; fewer chunks ahead when they would hold over :data:`AHEAD_BYTES`). A failure while preparing is raised to the executor when it takes
that chunk, naming the row, its id and the file; never a hang.

Stages, timed where they run and summed in :class:`StageTimes`:

* read: table rows (:meth:`runtime.data.testdata.TestData.rows`) and image file bytes;
* decode: PIL decoding the file (or DALI decoding and resizing it);
* preprocess: resize, scale and normalise, missing-value fill, TTA copies;
* wait: what the executor spent waiting for a chunk (the rest was hidden).

Shared preprocessing: image files are decoded once per run, whatever the
number of members reading them and their sizes. Each file is decoded once
into every (mode, size) any image member's variants need; the uint8 pixels
go to a spool file on local disk (``tempfile``), read back per chunk by the
later members, so RAM holds one chunk, not the images. Without room on the
disk for the spool (it needs half the free space at most), each member
decodes again, and the report says so. Members with the same input (a table
input's columns, dtype and missing policy; an image input's spec, size and
dtype) share the prepared array of a chunk while it is in the small prepared
cache (lanes reading one chunk: each chunk is then read, normalised and
filled once).

Decode workers are threads: PIL releases the GIL while it decodes and
resizes (and DALI runs its own threads), so threads scale with the cores
without pickling the pixels between processes; benchmarks/datapath.py
prints the rates measured with one and with ``workers`` threads.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.errors import DataError, NinefitError, UsageError
from runtime.fileio import SCRATCH_REMEDY, full_write, guarded, scratch_dir, scratch_room
from runtime.manifest import InputSpec, Member, Variant

#: Chunks prepared ahead of the one being inferred, by default (``NINEFIT_PREFETCH``; 0: prepared in line).
DEFAULT_DEPTH = 2
#: Environment variables: chunks ahead, and decode worker threads.
DEPTH_ENV = "NINEFIT_PREFETCH"
WORKERS_ENV = "NINEFIT_DATA_WORKERS"
#: Bytes of prepared feeds the queue may hold ahead (at least one chunk is always prepared ahead).
AHEAD_BYTES = 1 << 30
#: Images one decode task takes (a chunk is split into such slices across the workers).
_SLICE = 16
#: Prepared inputs (table arrays, normalised images) kept for other members on the same chunk: at most
#: this many, and this many bytes (the newest one always).
SHARED_ENTRIES = 8
SHARED_BYTES = 128 << 20


@dataclass
class StageTimes:
    """Seconds per data stage over the run (summed over worker threads), and what was decoded."""

    read_s: float = 0.0
    decode_s: float = 0.0
    preprocess_s: float = 0.0
    infer_s: float = 0.0  # booked by the executor: inference and output activation
    write_s: float = 0.0  # booked by the executor: chunk checkpoints and submission writes
    wait_s: float = 0.0  # the executor waiting for a prepared chunk
    images_decoded: int = 0
    chunks_prepared: int = 0
    depth: int = DEFAULT_DEPTH
    workers: int = 1
    decoder: str = ""  # pil / dali (cpu) / dali (gpu)
    table: str = ""  # pandas / cudf.pandas
    spool: str = ""  # decoded-image spool: "off (...)" or its size

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, **seconds: float) -> None:
        with self._lock:
            for k, v in seconds.items():
                setattr(self, k, getattr(self, k) + v)

    @property
    def prepare_s(self) -> float:
        """Read, decode and preprocess together."""
        return self.read_s + self.decode_s + self.preprocess_s

    @property
    def hidden_s(self) -> float:
        """Preparation time the executor did not wait for: overlapped with inference (or run in parallel)."""
        return max(0.0, self.prepare_s - self.wait_s)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["hidden_s"] = self.hidden_s
        return d


def _int_env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{name}={text!r} is not a whole number >= 0 (unset it for the default, {default})")
    return value


def default_workers(infer_threads: int | None = None, gpu: bool = False) -> int:
    """Decode threads: the cores inference leaves (``NINEFIT_DATA_WORKERS`` overrides)."""
    cores = os.cpu_count() or 1
    busy = infer_threads or (1 if gpu else max(1, cores // 2))
    return _int_env(WORKERS_ENV, max(1, min(8, cores - busy))) or 1


def feed_bytes_per_row(member: Member, variant: Variant) -> int:
    """Bytes of one row's prepared feeds (every input, every TTA copy)."""
    total = 0
    for inp in member.inputs:
        itemsize = np.dtype(inp.dtype).itemsize
        if inp.image is not None:
            h, w = variant.image_size or inp.image.size
            total += h * w * inp.image.channels * itemsize
        else:
            dims = [d for d in inp.shape[1:] if isinstance(d, int)]
            total += int(np.prod(dims)) * itemsize if dims else max(len(inp.columns), 1) * itemsize
    return total * max(len(variant.tta), 1)


def chunks_ahead(depth: int, chunk_bytes: float, budget: float = AHEAD_BYTES) -> int:
    """Chunks to prepare ahead: ``depth``, fewer when they would hold more than ``budget`` bytes (never under one)."""
    if depth <= 0:
        return 0
    return max(1, min(depth, int(budget // max(chunk_bytes, 1.0))))


def input_key(member: Member, inp: InputSpec, variant: Variant, spec) -> tuple:
    """What makes two members' inputs the same prepared array: columns (or image spec and size), dtype, missing policy."""
    if inp.image is not None:
        return ("image", inp.image, tuple(variant.image_size or inp.image.size), inp.dtype)
    return ("table", inp.columns, inp.dtype, tuple(inp.shape[1:]), member.missing_policy(spec))


class _Spool:
    """Decoded pixels of every image, per form, in one file per form on local disk; each image decoded once."""

    def __init__(self, n_rows: int, forms: Sequence[tuple[str, int, int]], folder: Path):
        self.folder = folder
        self.forms = list(forms)
        self.row_bytes = {f: f[1] * f[2] * (1 if f[0] == "L" else 3) for f in self.forms}
        self.fds = {}
        for i, f in enumerate(self.forms):
            with guarded(folder / f"form{i}.u8", "the decoded-image spool", SCRATCH_REMEDY):
                fd = os.open(folder / f"form{i}.u8", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self.fds[f] = fd
        self.done = np.zeros(n_rows, dtype=bool)
        self.claimed = np.zeros(n_rows, dtype=bool)
        self.cond = threading.Condition()

    @staticmethod
    def bytes_needed(n_rows: int, forms: Sequence[tuple[str, int, int]]) -> int:
        return n_rows * sum(h * w * (1 if m == "L" else 3) for m, h, w in forms)

    def claim(self, a: int, b: int) -> np.ndarray:
        """Rows of ``[a, b)`` this caller must decode (others are done, or being decoded elsewhere)."""
        with self.cond:
            mine = ~self.done[a:b] & ~self.claimed[a:b]
            self.claimed[a:b] |= mine
            return np.flatnonzero(mine) + a

    def put(self, row: int, pixels: dict) -> None:
        with guarded(self.folder, "the decoded-image spool", SCRATCH_REMEDY):
            for f, fd in self.fds.items():
                full_write(fd, pixels[f].tobytes(), row * self.row_bytes[f])

    def finish(self, rows: np.ndarray, ok: bool) -> None:
        with self.cond:
            if ok:
                self.done[rows] = True
            self.claimed[rows] = False
            self.cond.notify_all()

    def read(self, f: tuple[str, int, int], a: int, b: int) -> np.ndarray:
        with self.cond:  # rows another thread is decoding: wait for them
            while not self.done[a:b].all():
                if not self.claimed[a:b][~self.done[a:b]].all():
                    raise DataError(f"images of rows {a}-{b} were not decoded (an earlier decode failed)")
                self.cond.wait(1.0)
        n = self.row_bytes[f] * (b - a)
        buf = os.pread(self.fds[f], n, a * self.row_bytes[f])
        if len(buf) != n:
            raise DataError(f"the decoded-image spool in {self.folder} is short ({len(buf)} of {n} bytes): was it deleted?")
        mode, h, w = f
        return np.frombuffer(buf, dtype=np.uint8).reshape(b - a, h, w, 1 if mode == "L" else 3)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
        shutil.rmtree(self.folder, ignore_errors=True)


class FeedPipeline:
    """Prepared feeds for (member, variant, rows a..b), prepared ahead in a bounded queue.

    Args:
        test: The test data.
        members: Every member of the run (their image forms size the spool).
        depth: Chunks prepared ahead (0: each chunk prepared when asked, in the caller's thread).
        workers: Decode threads.
        loader: ``"pil"`` or ``"dali"`` (:func:`runtime.data.loaders.resolve_loader`).
        spool_dir: Where the decoded-image spool goes (default: the system temp folder).
        share: Share work between members: prepared inputs of a chunk, and the
            decoded-image spool (off to time every read and decode, as the profile does).
    """

    def __init__(self, test, members: Sequence[Member], *, depth: int | None = None, workers: int | None = None,
                 loader: str = "pil", spool_dir: str | os.PathLike | None = None, share: bool = True,
                 lanes: int = 1):
        self.test = test
        self.depth = _int_env(DEPTH_ENV, DEFAULT_DEPTH) if depth is None else depth
        self.workers = workers or default_workers()
        self.loader = loader
        self.times = StageTimes(depth=self.depth, workers=self.workers, decoder=loader)
        self._pending: OrderedDict[tuple, Future] = OrderedDict()
        self._shared: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._share = share
        self._shared_lock = threading.Lock()
        # Lanes (runtime.execute.lanes) ask from several threads, each for its own chunks: the queue of prepared chunks
        # is changed under a lock, each entry remembers the lane that asked for it ahead (a lane drops only its
        # own, and is bounded on its own), there is a preparing thread per lane, and chunks prepared in line
        # (no prefetch) are prepared one at a time.
        self._pending_lock = threading.Lock()
        self._owner: dict[tuple, int] = {}
        self._inline_lock = threading.Lock()
        self._prep = (ThreadPoolExecutor(max(1, lanes), thread_name_prefix="ninefit-prefetch")
                      if self.depth else None)
        self._decode = (ThreadPoolExecutor(self.workers, thread_name_prefix="ninefit-decode")
                        if self.workers > 1 and loader == "pil" else None)
        self._spool: _Spool | None = None
        self._closed = False
        forms = _image_forms(members) if loader == "pil" else []
        consumers = sum(1 for m in members if m.text is None and any(i.image is not None for i in m.inputs))
        if forms and share and (consumers > 1 or len(forms) > 1):
            self._open_spool(forms, spool_dir)
        elif forms:
            self.times.spool = "not needed (one image member at one size)"

    def _open_spool(self, forms, spool_dir) -> None:
        need = _Spool.bytes_needed(self.test.n_rows, forms)
        fits, free, base = scratch_room(need, spool_dir)
        if not fits:
            self.times.spool = (f"off: the decoded images need {need / 1e9:.2f} GB, {free / 1e9:.2f} GB free in {base}; "
                                "each member decodes its images again")
            return
        folder = scratch_dir("spool", base)
        self._spool = _Spool(self.test.n_rows, forms, folder)
        self.times.spool = f"{need / 1e9:.3f} GB in {folder}, {len(forms)} form(s)"

    # -- the executor's side ------------------------------------------------------
    def get(self, member: Member, variant: Variant, a: int, b: int,
            ahead: Sequence[tuple[int, int]] = (), lane: int = 0) -> list[dict[str, np.ndarray]]:
        """The feeds of rows ``[a, b)`` for ``member`` on ``variant``, one per TTA transform, in ``variant.tta`` order.

        ``ahead``: the chunks the caller will ask for next (prepared now, up to ``depth``).
        ``lane``: which lane asks (each lane's chunks ahead are its own).

        Raises:
            DataError: preparing the rows failed (the message names the row, id and file).
        """
        key = (member.name, variant.name, a, b)
        t0 = time.perf_counter()
        with self._pending_lock:
            fut = self._pending.pop(key, None)
            self._owner.pop(key, None)
            # What this lane prepared for another member or rung will not be asked for now: drop it (bounded memory).
            for k in [k for k in self._pending if k[:2] != key[:2] and self._owner.get(k, 0) == lane]:
                self._pending.pop(k).cancel()
                self._owner.pop(k, None)
            if fut is None and self._prep is not None and not self._closed:
                fut = self._prep.submit(self._prepare, member, variant, a, b)  # first in the queue: rows in order
            self._schedule(member, variant, ahead, lane)
        try:
            if fut is not None:
                feeds = fut.result()
            else:
                with self._inline_lock:
                    feeds = self._prepare(member, variant, a, b)
        except NinefitError:
            raise
        except BaseException as exc:  # a bug or a crash in a worker: said, with where it happened
            raise DataError(f"the data worker preparing rows {a}-{b} for {member.name} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.times.add(wait_s=time.perf_counter() - t0)
        return feeds

    def _schedule(self, member: Member, variant: Variant, ahead: Sequence[tuple[int, int]], lane: int = 0) -> None:
        if self._prep is None or self._closed or not ahead:
            return
        per_row = feed_bytes_per_row(member, variant)
        limit = chunks_ahead(self.depth, per_row * max(b - a for a, b in ahead))
        for a, b in ahead:
            mine = sum(1 for k in self._pending if self._owner.get(k, 0) == lane)
            if mine >= limit + 1:  # + the chunk being asked for, when it was not ready
                break
            key = (member.name, variant.name, a, b)
            if key not in self._pending:
                self._pending[key] = self._prep.submit(self._prepare, member, variant, a, b)
                self._owner[key] = lane

    def book(self, **seconds: float) -> None:
        """Book the executor's own stages (``infer_s``, ``write_s``)."""
        self.times.add(**seconds)

    def close(self) -> None:
        """Stop the workers and remove the spool."""
        self._closed = True
        with self._pending_lock:
            for fut in self._pending.values():
                fut.cancel()
            self._pending.clear()
            self._owner.clear()
        for pool in (self._prep, self._decode):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> FeedPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- preparing ------------------------------------------------------------------
    def _prepare(self, member: Member, variant: Variant, a: int, b: int) -> list[dict[str, np.ndarray]]:
        from runtime.data.testdata import apply_tta

        feed: dict[str, np.ndarray] = {}
        for inp in member.inputs:
            if inp.image is not None:
                continue
            key = (input_key(member, inp, variant, self.test.spec), a, b)
            arr = self._shared_get(key)
            if arr is None:
                t0 = time.perf_counter()
                matrix = self.test.table_matrix(a, b, inp.columns)  # a slice of one read span
                t1 = time.perf_counter()
                arr = self.test.table_input(member, inp, a, b, matrix=matrix)
                self._shared_put(key, arr)
                self.times.add(read_s=t1 - t0, preprocess_s=time.perf_counter() - t1)
            feed[inp.name] = arr
        for inp in member.inputs:
            if inp.image is not None:  # decoded once (the spool); normalised once per chunk for lanes reading it
                key = (input_key(member, inp, variant, self.test.spec), a, b)
                arr = self._shared_get(key)
                if arr is None:
                    arr = self._images(inp, variant, a, b)
                    self._shared_put(key, arr)
                feed[inp.name] = arr
        t0 = time.perf_counter()
        feeds = [apply_tta(feed, t, member) for t in variant.tta]
        self.times.add(preprocess_s=time.perf_counter() - t0, chunks_prepared=1)
        return feeds

    def _shared_get(self, key):
        with self._shared_lock:
            return self._shared.get(key)

    def _shared_put(self, key, arr) -> None:
        if not self._share:
            return
        with self._shared_lock:
            self._shared[key] = arr
            held = sum(x.nbytes for x in self._shared.values())
            while len(self._shared) > 1 and (len(self._shared) > SHARED_ENTRIES or held > SHARED_BYTES):
                held -= self._shared.popitem(last=False)[1].nbytes

    def _images(self, inp: InputSpec, variant: Variant, a: int, b: int) -> np.ndarray:
        assert inp.image is not None, "called for image inputs only"
        size = variant.image_size
        if self.loader == "dali":
            from runtime.data.loaders.dali import load_images

            t0 = time.perf_counter()
            out = load_images(self, self.test.image_files(a, b), inp, size)
            self.times.add(decode_s=time.perf_counter() - t0, images_decoded=b - a)
            return out
        from runtime.data.loaders.pil import form, normalise

        want = form(inp.image, size)
        if self._spool is not None and want in self._spool.forms:
            rows = self._spool.claim(a, b)
            ok = False
            try:
                self._decode_rows(rows, self._spool.forms, spool=True)
                ok = True
            finally:
                self._spool.finish(rows, ok)
            t0 = time.perf_counter()
            pixels = self._spool.read(want, a, b)
            self.times.add(read_s=time.perf_counter() - t0)
        else:
            pixels = self._decode_rows(np.arange(a, b), [want], spool=False)[want]
        t0 = time.perf_counter()
        out = normalise(pixels, inp.image, inp.dtype)
        self.times.add(preprocess_s=time.perf_counter() - t0)
        return out

    def _decode_rows(self, rows: np.ndarray, forms, *, spool: bool) -> dict:
        """Decode ``rows`` into ``forms`` (into the spool, or returned as one uint8 batch per form)."""
        out = {} if spool else {f: np.empty((len(rows), f[1], f[2], 1 if f[0] == "L" else 3), np.uint8) for f in forms}
        if not len(rows):
            return out
        slices = [rows[i:i + _SLICE] for i in range(0, len(rows), _SLICE)]
        base = int(rows[0])

        def work(part: np.ndarray) -> None:
            self._decode_slice(part, forms, out, base, spool)

        if self._decode is None or len(slices) == 1:
            for part in slices:
                work(part)
        else:
            for fut in [self._decode.submit(work, part) for part in slices]:
                fut.result()  # the first failure, in row order
        return out

    def _decode_slice(self, rows: np.ndarray, forms, out: dict, base: int, spool: bool) -> None:
        from runtime.data.loaders.pil import decode

        paths = self.test.image_files(int(rows[0]), int(rows[-1]) + 1)
        first = int(rows[0])
        for row in rows.tolist():
            path = paths[row - first]
            where = self.test.where(row)
            t0 = time.perf_counter()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DataError(f"could not read image {path} ({where}): {exc}") from exc
            t1 = time.perf_counter()
            times: dict[str, float] = {}
            pixels = decode(path, forms, where, data=data, times=times)
            t2 = time.perf_counter()
            if spool:
                assert self._spool is not None, "spool=True only where the pipeline keeps a spool"
                self._spool.put(row, pixels)
            else:
                for f in forms:
                    out[f][row - base] = pixels[f]
            self.times.add(read_s=t1 - t0 + time.perf_counter() - t2, decode_s=times.get("decode", t2 - t1),
                           preprocess_s=times.get("resize", 0.0), images_decoded=1)


def _image_forms(members: Sequence[Member]) -> list[tuple[str, int, int]]:
    """Every (mode, height, width) an image input of any member's variants needs, in first-seen order."""
    from runtime.data.loaders.pil import form

    forms: dict = {}
    for m in members:
        if m.text is not None:
            continue
        for inp in m.inputs:
            if inp.image is None:
                continue
            for v in m.variants:
                forms.setdefault(form(inp.image, v.image_size), None)
    return list(forms)


__all__ = ["AHEAD_BYTES", "DEFAULT_DEPTH", "DEPTH_ENV", "SHARED_BYTES", "SHARED_ENTRIES", "WORKERS_ENV", "FeedPipeline",
           "StageTimes", "chunks_ahead", "default_workers", "feed_bytes_per_row", "input_key"]
