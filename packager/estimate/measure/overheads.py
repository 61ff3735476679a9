"""The bundle-wide parts of a run, measured here: everything but the members' own work.

* :func:`measure_startup`: interpreter start, the runtime's imports and the
  interpreter's exit with the members' sessions loaded, in subprocesses run in
  the bundle folder (the vendored runtime is imported), and the extra cost of
  a process's first inference session.
* :func:`hash_rate`: ``sha256_file`` throughput, for bundle verification.
* :func:`measure_write`: one submission write (combine, format, write
  atomically) at two row counts, as fixed + per row.
* :func:`measure_checkpoint` / :func:`measure_ensemble`: saving and loading
  one chunk of predictions, and the per-row add into the ensemble.
* :func:`check_run`: the runtime itself, end to end, at two sizes: what its
  report shows beyond the measured parts is its own work, split into fixed
  and per chunk; and how much slower ``predict_rows`` runs inside it than
  alone (its other threads compete for the cores; its prefetch threads hide
  the data stages), kept within [0.5, 1.5].
  Where the run's own rule gives this machine more than one CPU lane, the
  larger size runs once more on those lanes: the members' part of the run
  on N lanes against one is the *lane speedup* the estimate prices the run
  with (:func:`lane_speedup`).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from packager.estimate.measure.sampling import fit_line, tile_data
from runtime.bundle import Bundle, checksum_tree
from runtime.data.testdata import TestData
from runtime.execute.checkpoint import MAX_CHUNKS, member_grid
from runtime.execute.lanes import usable_cores
from runtime.manifest import MANIFEST_NAME, Manifest
from runtime.output.ensemble import Accumulator
from runtime.output.formats import Formatter, match
from runtime.output.submission import format_rows, write_atomic
from runtime.profile import Checkpoint, CheckRun, DataRead, Ensemble, Startup, VariantCost, Write
from runtime.run import RunOptions, member_width

# What `python -m runtime run` imports, plus what pandas imports lazily on first use
# (string dtypes load pyarrow: 0.2 s).
_IMPORTS = ("import io, importlib.util, runtime.cli, runtime.run, runtime.data, runtime.output.submission, onnxruntime, "
            "pandas; importlib.util.find_spec('psutil') and __import__('psutil'); "
            "pandas.read_csv(io.StringIO('id,x\\nA,1\\n'), dtype={'id': str}).astype(str).to_numpy().tolist()")
_STARTUP_RUNS = 5  # subprocesses timed for the process stages; the least disturbed is kept
_PROCESS_RUNS = 3  # whole `python -m runtime run` processes of the small check run (the fastest is kept)
_WRITE_ROWS = 1 << 17  # rows the submission write is also timed at (one row per id formats)
_CHECK_SECONDS = 1.0  # inference time the end-to-end check run is sized for
_CHECK_REPEATS = 2  # runs of each check size (the faster is kept)
_CHECK_CHUNKS = 256  # chunks of the largest batch the larger check run aims for (64 overestimated 100k-row runs by 23%)
_FACTOR_MIN_S = 0.2  # least inference in the check run to derive the in-runtime factor from
_FACTOR_MIN, _FACTOR_MAX = 0.5, 1.5
_BIG_CHUNK = 16  # batches in the larger chunk measure_checkpoint times
_SPEEDUP_MIN = 0.5  # lanes that slow a run down are priced so, up to 2x slower


_FIRST_SESSION = """
import sys, time
import onnxruntime as ort
def make():
    so = ort.SessionOptions()
    so.log_severity_level = 3
    t = time.perf_counter()
    ort.InferenceSession(sys.argv[1], sess_options=so, providers=["CPUExecutionProvider"])
    return time.perf_counter() - t
first = make()
print(max(first - min(make(), make()), 0.0))
"""


# Timestamps on the system-wide monotonic clock (time.perf_counter is CLOCK_MONOTONIC on Linux,
# mach_absolute_time on macOS, QueryPerformanceCounter on Windows: one clock for all processes),
# so the parent can tell interpreter start and exit from the work in between.
_PROCESS = """
import time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.log_severity_level = 3
sessions = []
for path in sys.argv[1:]:  # loaded and called once, as the run leaves them for the exit
    try:
        s = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        sessions.append(s)
        s.run(None, {{i.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in i.shape],
                                       np.float16 if "float16" in i.type else np.float32) for i in s.get_inputs()}})
    except Exception:  # other dtypes, or not loadable here: what is loaded is what the exit tears down
        pass
print(t0, t1, time.perf_counter(), flush=True)
"""


def _bundle_env() -> dict[str, str]:
    """The environment of a subprocess run in the bundle folder: no PYTHONPATH (the vendored runtime
    must be the one imported) and no .pyc files written into the bundle (on Kaggle it is read-only,
    so the runtime compiles each time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def measure_startup(root: Path, model: Path, images: bool, models: tuple[Path, ...] = ()) -> Startup:
    """The process around a run, as a user times it: the least of ``_STARTUP_RUNS`` runs, in the
    bundle folder (so the vendored runtime is imported), and the extra cost of a process's first session.

    Returns ``python_s`` (launch to the first line of the script), ``imports_s``
    (what ``python -m runtime run`` imports, its lazy imports included),
    ``exit_s`` (the last line to the parent seeing the process end, with
    ``models`` loaded: their sessions are torn down at exit), ``import_s``
    (the three together, the older profile's one figure) and
    ``first_session_s``.
    """
    env = _bundle_env()
    script = _PROCESS.format(imports=_IMPORTS + ("; import PIL.Image" if images else ""))
    runs = []
    for _ in range(_STARTUP_RUNS):
        launched = time.perf_counter()
        # Absolute paths: the subprocess runs in the bundle folder, and ``root`` may be relative.
        done = subprocess.run([sys.executable, "-c", script, *(str(Path(m).resolve()) for m in models)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        ended = time.perf_counter()
        if done.returncode != 0:
            return Startup.from_dict({"import_s": None, "note": f"imports failed: {done.stderr.strip()[-300:]}"})
        try:
            t0, t1, t2 = (float(x) for x in done.stdout.split()[-3:])
        except ValueError:
            return Startup.from_dict({"import_s": None, "note": f"unexpected output: {done.stdout.strip()[-300:]}"})
        if not launched <= t0 <= t1 <= t2 <= ended:  # not one clock after all: no split
            return Startup.from_dict({"import_s": None, "note": "the subprocess's clock is not this one's"})
        runs.append((t0 - launched, t1 - t0, ended - t2, ended - launched - (t2 - t1)))
    # The least disturbed of each: other work on the machine only ever slows a process down
    # (as the member windows keep the fastest).
    python_s, imports_s, exit_s, total = (min(r[k] for r in runs) for k in range(4))
    out: dict[str, Any] = {"python_s": python_s, "imports_s": imports_s, "exit_s": exit_s, "import_s": total,
                           "import_runs": [r[3] for r in runs]}
    done = subprocess.run([sys.executable, "-c", _FIRST_SESSION, str(Path(model).resolve())], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    try:
        out["first_session_s"] = float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out["first_session_s"] = None
    return Startup.from_dict(out)


def cold_start(startup: Startup, run: CheckRun) -> float | None:
    """What a fresh process pays on first touch (lazy imports, first calls, the first chunk's wait)
    beyond the measured process stages: the small check run as a whole process
    (:func:`process_check`) less its start, imports, first session and exit (``startup``) and the
    same run in the warm packaging process. None when either side was not measured.

    Negative where the parts measured apart add up to more than the whole process: the imports
    measure loads what any run may import (pandas' lazy pyarrow, PIL), a given run less. The
    estimate then takes it off the imports (:func:`packager.estimate.price.bundle.bundle_items`),
    so that the small run's estimate is its whole process, measured."""
    wall, points = run.process.wall_s, run.points
    # The process stages as the estimate prices them (each one's best), so that the small run's estimate
    # is its whole process; an older profile has their sum only.
    parts = [startup.python_s, startup.imports_s, startup.exit_s]
    around = sum(p for p in parts if p is not None) if None not in parts else startup.import_s
    if wall is None or not points or points[0].seconds is None or around is None:
        return None
    return float(wall) - float(around) - float(startup.first_session_s or 0.0) - float(points[0].seconds)


def hash_rate(size: int = 32 << 20) -> float:
    """Bytes per second of ``sha256_file`` on a file in the page cache (as bundle verification)."""
    from runtime.bundle import sha256_file

    with tempfile.NamedTemporaryFile(prefix="ninefit-hash-") as f:
        f.write(np.random.default_rng(0).bytes(size))
        f.flush()
        sha256_file(f.name)  # warm the page cache
        t0 = time.perf_counter()
        sha256_file(f.name)
        return size / (time.perf_counter() - t0)


def measure_write(manifest: Manifest, test: TestData, sample, rows: list[int], folder: Path) -> Write:
    """Ensemble finalisation plus formatting + ``write_atomic`` at each row count.

    ``values`` and ``argmax`` format the first ``n`` rows alone, and once more
    :data:`_WRITE_ROWS` rows of tiled ids, so the line is fitted out to a
    hidden test's size; the other formats write the whole sample with the
    first ``n`` test rows covered (the rest from the fallback). The postprocess hook is not called here: its cost
    is the profile's ``hooks`` entry, measured when packaging.
    """
    width = member_width(manifest)
    rng = np.random.default_rng(0)
    points = []
    sub = manifest.submission
    formatter = None
    ids = test.ids
    if sub.mode not in ("values", "argmax"):
        formatter = Formatter(sub, sample, test.ids, match(sub, sample, test.ids), sample)
    elif rows and rows[-1] < _WRITE_ROWS:  # one row per id: timed at a hidden test's size too, on tiled ids
        # (a line through two small points read 9e-8 s a row for digits; 6e-7 at 100k rows)
        reps = -(-_WRITE_ROWS // max(len(test.ids), 1))
        ids = [f"{i}~{k}" for k in range(reps) for i in test.ids][:_WRITE_ROWS]
        rows = [*rows, len(ids)]
    for n in rows:
        acc = Accumulator(n if formatter is None else test.n_rows, width, manifest.combiner)
        acc.add(1.0, 0, rng.random((n, width)))
        t0 = time.perf_counter()
        values = acc.result()
        if formatter is None:
            body = format_rows(values, acc.covered, np.arange(n), ids[:n], sub, sample)
        else:
            body = formatter.rows(values, acc.covered if sub.mode != "postprocess" else np.zeros(test.n_rows, bool))
        write_atomic(folder / "submission.csv", sample.header, body)
        points.append((n, time.perf_counter() - t0))
    fixed, per_row = fit_line(points)
    return Write.from_dict({"fixed_s": fixed, "s_per_row": per_row, "points": points})


def measure_checkpoint(manifest: Manifest, folder: Path, files: int = MAX_CHUNKS) -> Checkpoint:
    """Seconds to save (tmp file + ``os.replace``) and load one chunk of predictions.

    The runtime checkpoints every chunk (at most ``MAX_CHUNKS`` per member, in
    one folder) and reloads them for each submission write. Creating a file
    costs more as the folder fills, so a full folder's worth is written:
    ``save_s`` is the mean over all of them, ``save_few_s`` over the first
    twenty; measured on the largest member batch. A profiled bundle's chunks
    hold many batches (:func:`runtime.execute.checkpoint.member_grid`), and a file's
    cost is mostly its creation: twenty chunks of :data:`_BIG_CHUNK` times
    the rows give the cost of each further row (``save_s_per_row``,
    ``load_s_per_row``).
    """
    width = member_width(manifest)
    rows = max(m.batch_size for m in manifest.members)
    folder.mkdir(parents=True, exist_ok=True)

    def timed(n: int, count: int, prefix: str) -> tuple[list[float], list[float]]:
        values = np.random.default_rng(0).random((n, width))
        saves, loads = [], []
        for k in range(count):
            t0 = time.perf_counter()
            fd, tmp = tempfile.mkstemp(prefix=f".{prefix}{k}.", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as f:
                np.save(f, values, allow_pickle=False)
            os.replace(tmp, folder / f"{prefix}{k}.npy")
            saves.append(time.perf_counter() - t0)
        for k in range(count):
            t0 = time.perf_counter()
            np.load(folder / f"{prefix}{k}.npy", allow_pickle=False)
            loads.append(time.perf_counter() - t0)
        return saves, loads

    saves, loads = timed(rows, files, "")
    few_saves, few_loads = saves[-20:], loads[-20:]  # the same files in a full folder, as the big ones
    big_saves, big_loads = timed(rows * _BIG_CHUNK, 20, "b")
    extra = rows * (_BIG_CHUNK - 1)
    return Checkpoint.from_dict({
        "rows": rows, "files": files, "save_s": statistics.mean(saves),
        "save_few_s": statistics.median(saves[:20]), "load_s": statistics.mean(loads),
        "save_s_per_row": max(statistics.median(big_saves) - statistics.median(few_saves), 0.0) / extra,
        "load_s_per_row": max(statistics.median(big_loads) - statistics.median(few_loads), 0.0) / extra})


def measure_ensemble(manifest: Manifest, rows: int) -> Ensemble:
    """Seconds per row and member of ``Accumulator.add`` at each member's batch size."""
    width = member_width(manifest)
    rng = np.random.default_rng(0)
    per_row = []
    for member in manifest.members:
        b = member.batch_size
        values = rng.random((min(b, rows), width))
        acc = Accumulator(rows, width, manifest.combiner)
        t0, done = time.perf_counter(), 0
        while done + len(values) <= rows:
            acc.add(member.weight, done, values)
            done += len(values)
        per_row.append((time.perf_counter() - t0) / max(done, 1))
    return Ensemble.from_dict({"s_per_row": max(per_row) if per_row else 0.0})


def check_run(bundle: Bundle, data_dir: Path, work: Path, members: Mapping[str, Mapping[str, VariantCost]],
              read: DataRead, write: Write, chunk: Checkpoint, max_rows: int, run_options: RunOptions,
              hash_bytes_per_s: float | None = None) -> CheckRun:
    """Run the runtime itself end to end (``runtime.run.run``) at two sizes.

    What its run report shows beyond the measured parts (session setup,
    ``predict_rows``, reading, the submission writes, and the verification
    of the listed files at ``hash_bytes_per_s``, the estimate's ``verify``
    stage) is the runtime's own work: set-up (fixed) and checkpointing each
    chunk, memory checks, re-planning (per chunk). The two sizes separate the two.
    The runs see the members' costs just measured as the bundle's profile, so
    they cut the chunks a run of the profiled bundle cuts
    (:func:`runtime.execute.checkpoint.member_grid`); the manifest is put back after.
    """
    manifest = bundle.manifest
    per_row = sum(float(members[m.name][m.variants[0].name].s_per_row or 0.0) for m in manifest.members)
    batch = max(m.batch_size for m in manifest.members)
    # Enough chunks to tell per-chunk work from fixed work, within about a second of inference.
    big = int(min(max_rows, max(4 * batch, min(_CHECK_SECONDS / max(per_row, 1e-9), _CHECK_CHUNKS * batch))))
    small = min(batch, big)
    files = manifest.files
    path = Path(bundle.root) / MANIFEST_NAME
    if not files:  # a staged bundle inside `ninefit package`: list its files for verification
        files = checksum_tree(bundle.root)
    kept = replace(manifest, files=files)
    bundle = replace(bundle, manifest=replace(kept, profile=replace(manifest.profile, members=members)))
    path.write_text(bundle.manifest.to_json(), encoding="utf-8")
    listed = sum((Path(bundle.root) / rel).stat().st_size for rel in files if (Path(bundle.root) / rel).is_file())
    verify_s = listed / hash_bytes_per_s if hash_bytes_per_s else 0.0  # priced apart, as the verify stage
    try:
        return _check_runs(bundle, data_dir, work, members, read, write, chunk, run_options, verify_s, small, big)
    finally:
        path.write_text(kept.to_json(), encoding="utf-8")


def _check_runs(bundle: Bundle, data_dir: Path, work: Path, members: Mapping[str, Mapping[str, VariantCost]],
                read: DataRead, write: Write, chunk: Checkpoint, run_options: RunOptions, verify_s: float,
                small: int, big: int) -> CheckRun:
    manifest = bundle.manifest
    # Each size twice, the faster kept (other work only slows a run down): the per-chunk residual below
    # is a difference of whole runs, and one disturbed run would price every chunk of a hidden test.
    runs = [[_one_check(bundle, data_dir, work / f"check-{rows}-{k}", rows, read, write, run_options, verify_s)
             for k in range(_CHECK_REPEATS)] for rows in (small, big)]
    points = [min(repeats, key=lambda p: p["seconds"]) for repeats in runs]
    folders = [p.pop("_folder") for p in points]
    a, b = points
    # predict_rows inside the runtime against the same rows measured in isolation, each member's
    # first call included on both sides (warmup_s here, warmup_seconds in the report). Above 1
    # where the runtime's own threads (checkpoint writes, memory monitor) compete for the cores;
    # below 1 where its prefetch threads hide the data stages that predict_rows runs in line (or
    # where other work slowed the member windows and not the check run).
    # Too short a run says little: 1.
    alone = sum(_stream_s(members[m.name][m.variants[0].name], m.batch_size, big)
                + float(members[m.name][m.variants[0].name].warmup_s or 0.0) for m in manifest.members)
    in_runtime = 1.0
    if alone > 0 and b["inference_s"] >= _FACTOR_MIN_S:
        in_runtime = min(max(b["inference_s"] / alone, _FACTOR_MIN), _FACTOR_MAX)
    if b["chunks"] > a["chunks"]:
        per_chunk = max((b["residual_s"] - a["residual_s"]) / (b["chunks"] - a["chunks"]), 0.0)
    else:
        per_chunk = b["residual_s"] / max(b["chunks"], 1)
    fixed = max(a["residual_s"] - per_chunk * a["chunks"], 0.0)
    # What a chunk costs beyond saving and loading it (measured apart, at a full
    # folder): memory checks, re-planning, progress.
    beyond = max(per_chunk - float(chunk.save_few_s or 0.0) - float(chunk.load_s or 0.0), 0.0)
    out = {"points": points, "fixed_s": fixed, "overhead_s_per_chunk": per_chunk, "bookkeeping_s_per_chunk": beyond,
           "inference_factor": in_runtime,
           # every repeat's seconds per size: how far the repeats agreed (packager.estimate.price.noise)
           "repeats_s": [[r["seconds"] for r in repeats] for repeats in runs]}
    process = process_check(bundle, Path(folders[0]), work / f"check-{small}-process", run_options)
    if process is not None:
        out["process"] = {**process, "rows": small}
    if run_options.lanes == 1 and usable_cores() > 1:
        out["lanes"] = lane_speedup(bundle, data_dir, work, big, b, per_chunk, read, write, run_options, verify_s)
    return CheckRun.from_dict(out)


def lane_speedup(bundle: Bundle, data_dir: Path, work: Path, rows: int, one: dict[str, Any], per_chunk: float,
                 read: DataRead, write: Write, run_options: RunOptions, verify_s: float = 0.0) -> dict[str, Any]:
    """The members' part of a run on the lanes the run's rule gives here, against one lane.

    ``one`` is the one-lane check run at ``rows`` (the faster of two); the same
    rows run twice on the default lanes (``runtime.execute.lanes.choose_lanes``), the
    faster kept (other work only slows a run down). The members' part of a run
    is its lanes' span in the run report: from the first lane step's start to
    the last one's end (loads, inference, checkpoints; not the start, reading,
    the writes between members or the verification, the same work on any
    number of lanes). ``speedup`` = one-lane span / N-lane span, within
    [``_SPEEDUP_MIN``, N]. (A report without lane steps: the one-lane part is
    its load and inference plus ``per_chunk`` x chunks, and the N-lane part that
    less the difference of the two runs.) ``lanes`` is 1 (and the speedup 1)
    where the rule gives one lane for these rows.
    """
    many = replace(run_options, lanes=None)
    runs_n = [_one_check(bundle, data_dir, work / f"check-lanes-{k}", rows, read, write, many, verify_s)
              for k in range(_CHECK_REPEATS)]
    best_n = min(runs_n, key=lambda p: p["seconds"])
    lanes = int(best_n.get("lanes") or 1)
    one_s = one["seconds"]
    if one.get("span_s") and best_n.get("span_s"):  # a ratio of spans: no difference of whole runs' noise
        part_1, part_n = one["span_s"], best_n["span_s"]
    else:
        part_1 = one["inside_s"] + per_chunk * one["chunks"]
        part_n = max(part_1 - (one_s - best_n["seconds"]), part_1 / lanes)
    if lanes <= 1 or part_1 <= 0:
        return {"lanes": 1, "speedup": 1.0, "rows": rows}
    speedup = min(max(part_1 / part_n, _SPEEDUP_MIN), float(lanes))
    return {"lanes": lanes, "threads": best_n.get("threads"), "rows": rows, "one_lane_s": one_s,
            "lanes_s": best_n["seconds"], "members_one_lane_s": part_1, "speedup": speedup,
            "runs_s": [r["seconds"] for r in runs_n]}


def _stream_s(cost: VariantCost, batch: int, rows: int) -> float:
    """Seconds of ``predict_rows`` over ``rows`` rows at ``batch``, from a member's measurement."""
    point = cost.batches.get(batch)
    if point is None:
        return float(cost.s_per_row or 0.0) * rows
    full, rest = divmod(rows, batch)
    return full * float(point.s_per_batch or 0.0) + rest * float(point.s_per_row or 0.0)


def _one_check(bundle: Bundle, data_dir: Path, work: Path, rows: int, read: DataRead, write: Write,
               run_options: RunOptions, verify_s: float = 0.0) -> dict[str, Any]:
    from runtime.run import run

    manifest = bundle.manifest
    folder = tile_data(data_dir, manifest.data, manifest.submission.sample, manifest.submission.id_column, rows,
                       work / "data", manifest.submission)
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the run's log lines are not the user's business here
        report = run(bundle.root, folder, work / "out" / "submission.csv",
                     replace(run_options, progress=False, work_dir=work / "work"))
    wall = time.perf_counter() - t0
    data = report.to_dict()
    seconds = float(data.get("seconds") or wall)
    # The report books load, the warm-up batch and the other batches apart (runtime.output.report.MemberReport).
    load = sum(float(m.get("load_seconds") or 0) for m in data["members"])
    infer = sum(float(m.get("seconds") or 0) + float(m.get("warmup_seconds") or 0) for m in data["members"])
    inside = load + infer
    writes = int(data.get("submission_writes") or len(manifest.members) + 2)
    one_write = float(write.fixed_s or 0.0) + float(write.s_per_row or 0.0) * rows
    reading = float(read.read_fixed_s or 0.0) + float(read.read_s_per_row or 0.0) * rows
    chunks = sum(len(member_grid(rows, m, manifest.profile)) for m in manifest.members)
    hooks = float((data.get("features") or {}).get("seconds") or 0.0)  # the features stage, priced apart
    residual = max(seconds - inside - reading - writes * one_write - verify_s - hooks, 0.0)
    lanes = data.get("lanes") or []
    steps = [s for lane in lanes for s in lane.get("steps") or []]
    span = max(s["end_s"] for s in steps) - min(s["start_s"] for s in steps) if steps else 0.0
    return {"rows": rows, "seconds": seconds, "inside_s": inside, "inference_s": infer, "writes": writes,
            "chunks": chunks, "residual_s": residual, "lanes": max(len(lanes), 1), "span_s": span,
            "threads": lanes[0].get("threads") if lanes else None, "_folder": str(folder)}


def process_check(bundle: Bundle, folder: Path, work: Path, run_options: RunOptions) -> dict[str, Any] | None:
    """The small check run again as a user runs it: a whole ``python -m runtime run`` process in the
    bundle folder (the vendored runtime, nothing imported or warmed up yet), launch to exit, the
    faster of ``_PROCESS_RUNS``. Against the same run in this warm process, it shows what a fresh
    process pays on first touch beyond its measured start, imports and exit (the profile's
    ``startup.cold_s``). None where it cannot run here."""
    env = _bundle_env()
    cmd = [sys.executable, "-m", "runtime", "run", ".", "--data", str(Path(folder).resolve()), "--fresh", "--quiet",
           "--lanes", "1", "--out", str((work / "process" / "submission.csv").resolve()),
           "--work-dir", str((work / "process" / "work").resolve())]
    if run_options.backend:
        cmd += ["--backend", run_options.backend]
    if run_options.threads:
        cmd += ["--threads", str(run_options.threads)]
    walls = []
    for _ in range(_PROCESS_RUNS):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=bundle.root, env=env, capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - t0)
        if done.returncode != 0:
            return None
    return {"wall_s": min(walls), "runs": walls}


__all__ = ["check_run", "cold_start", "hash_rate", "lane_speedup", "measure_checkpoint", "measure_ensemble",
           "measure_startup", "measure_write", "process_check"]
