"""The user's own code in the bundle: the features hook and the postprocess hook.

A hook is named ``"module:function"`` in the spec; the module (one ``.py``
file next to the spec) and the side files it declares are copied into the
bundle's ``hooks/`` folder and checksummed like every file. A hook finds its
side files next to itself: ``Path(__file__).parent / "lookup.csv"``.

The features hook is called with a pandas DataFrame: one chunk of the test
table (all its columns, a fresh 0..n-1 index), and returns a DataFrame (or a
dict of arrays) of numeric columns with one row per input row, in order.
They are added to the test table (replacing columns of the same name) before
any member takes its columns. Chunks are ``FEATURES_CHUNK_ROWS`` consecutive
rows; with ``features_group`` a chunk is a set of whole groups of that
column (rows in table order), so a groupby-aggregate within groups gives the
same result chunked as on the whole table. Under ``NINEFIT_CUDF=1`` the
runtime installs ``cudf.pandas`` before reading the table, so the same hook
code runs on cuDF where a GPU and cuDF are present (pandas otherwise).

At run time a hook that raises, or returns the wrong thing, costs only its
chunk: the error is reported with the hook's name and the chunk's rows, those
rows stay uncovered (the fallback's values stand) and the run goes on.

Under a time limit a hook runs under the deadline like everything else
(:class:`HookCaller`): each call runs on a thread of its own, and a call still
running when its time is up is abandoned (Python cannot stop a thread: it runs
on in the background until it returns or the process ends). The rows it would
have fed fall back, the hook is not called again, and the run goes on to end
before the limit. The fallback submission is on disk before any hook runs.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from runtime.errors import HookError, HookTimeout

#: The bundle folder holding the hook modules and their side files.
HOOKS_DIR = "hooks"
#: Rows per features call at run time (a group never split, with ``features_group``);
#: ``NINEFIT_FEATURES_CHUNK_ROWS`` overrides it.
FEATURES_CHUNK_ROWS = 4096
_NUMERIC_KINDS = "biuf"


def hook_path(ref: str, folder: Path) -> Path:
    """The module file of a ``"module:function"`` hook inside ``folder``."""
    return Path(folder) / f"{ref.split(':', 1)[0]}.py"


def user_traceback(exc: BaseException, path: Path) -> str:
    """The traceback of ``exc`` from the first frame in the user's hook file (their code, not ninefit's)."""
    frames: list[traceback.FrameSummary] = traceback.extract_tb(exc.__traceback__)
    where = str(Path(path).resolve())
    for n, f in enumerate(frames):
        if str(Path(f.filename).resolve()) == where:
            frames = frames[n:]
            break
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(exc), exc)]
    return "".join(lines).rstrip()


def load_hook(ref: str, folder: str | Path) -> Callable:
    """Import the hook module from ``folder`` and return its function.

    Raises:
        HookError: The module is missing, fails to import (with its traceback),
            or lacks the function.
    """
    module, _, func = ref.partition(":")
    path = hook_path(ref, Path(folder))
    if not path.is_file():
        raise HookError(f"hook {ref!r}: module file {path} not found")
    name = f"_ninefit_hook_{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HookError(f"hook {ref!r}: {path} cannot be imported as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # a hook may import a helper module beside it
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        raise HookError(f"hook {ref!r}: importing {path.name} failed:\n{user_traceback(exc, path)}") from exc
    finally:
        sys.path.remove(str(path.parent))
    fn = getattr(mod, func, None)
    if not callable(fn):
        found = [n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n))]
        raise HookError(f"hook {ref!r}: {path.name} has no function {func!r} (its functions: {', '.join(found) or 'none'})")
    if inspect.isclass(fn):  # a hook that keeps state: one instance for the run, called batch by batch in order
        try:
            fn = fn()
        except Exception as exc:
            raise HookError(f"hook {ref!r}: creating {func}() failed:\n{user_traceback(exc, path)}") from exc
        if not callable(fn):
            raise HookError(f"hook {ref!r}: class {func} has no __call__ method; the runtime calls its instance "
                            f"batch by batch")
    _HOOK_FILES[id(fn)] = path
    return fn


#: The file each loaded hook came from (its traceback starts there): functions and instances alike.
_HOOK_FILES: dict[int, Path] = {}


def call_hook(fn: Callable, ref: str, *args: Any, **kwargs: Any) -> Any:
    """Call a hook; any exception becomes a HookError carrying the user's traceback."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        path = _HOOK_FILES.get(id(fn)) or Path(inspect.getfile(fn if inspect.isfunction(fn) else type(fn)))
        raise HookError(f"{type(exc).__name__} in the hook:\n{user_traceback(exc, path)}") from exc


class HookCaller:
    """Calls a hook under a time limit, on a thread it can leave behind.

    ``time_left()`` gives the seconds the call may take (None: no limit, the
    call runs in line as any function). With a limit the call runs on a daemon
    thread; one still running when the time is up raises :class:`HookTimeout`
    and is abandoned, and every later call raises at once (the hook is still
    busy, and calling it again on another thread could break state it keeps).

    Args:
        fn: The hook (:func:`load_hook`).
        ref: Its name in the spec, for messages.
        time_left: Seconds left for a call, read at each call; None: no limit.
    """

    def __init__(self, fn: Callable, ref: str, time_left: Callable[[], float | None] | None = None):
        self.fn, self.ref, self.time_left = fn, ref, time_left
        self.abandoned = ""  # why it was left behind; empty while it is usable

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.abandoned:
            raise HookTimeout(f"not called: {self.abandoned}", first=False)
        left = self.time_left() if self.time_left is not None else None
        if left is None:
            return call_hook(self.fn, self.ref, *args, **kwargs)
        if left <= 0:
            self.abandoned = "no time was left for it before the deadline"
            raise HookTimeout(f"not called: {self.abandoned}")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = call_hook(self.fn, self.ref, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reaches the caller below, never this thread's top
                box["exc"] = exc

        thread = threading.Thread(target=work, name=f"ninefit-hook {self.ref}", daemon=True)
        thread.start()
        thread.join(left)
        if thread.is_alive():
            self.abandoned = (f"it was still running when its time ran out ({left:.1f}s); abandoned, it runs on in "
                              "the background until it returns or the process ends")
            raise HookTimeout(self.abandoned)
        exc = box.get("exc")
        if isinstance(exc, Exception):
            raise exc
        if exc is not None:  # sys.exit() or the like inside the hook: its rows fail, the run goes on
            raise HookError(f"it raised {type(exc).__name__}({exc})")
        return box["out"]


def feature_chunks(frame, group: str, chunk_rows: int) -> list[np.ndarray]:
    """Row positions of each features call, in table order within a chunk.

    Without ``group``: consecutive runs of ``chunk_rows``. With it: whole
    groups (in order of first appearance), a new chunk starting where the
    rows so far reach ``chunk_rows``; a group larger than that is one chunk.
    """
    n = len(frame)
    if not group:
        return [np.arange(a, min(a + chunk_rows, n)) for a in range(0, n, chunk_rows)]
    import pandas as pd

    codes, _ = pd.factorize(frame[group], use_na_sentinel=False)
    codes = np.asarray(codes)
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts  # each group's offset in the group-sorted order
    chunk_of_group = starts // chunk_rows
    _, first = np.unique(chunk_of_group, return_index=True)
    order = np.argsort(codes, kind="stable")
    bounds = [*starts[first].tolist(), n]
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def features_output(out: Any, n: int) -> dict[str, np.ndarray]:
    """The hook's return value as ``column -> array`` of ``n`` numeric values; HookError otherwise."""
    if hasattr(out, "columns") and hasattr(out, "__getitem__"):
        names = list(out.columns)
        arrays = {}
        for c in names:
            col = out[c]
            arrays[c] = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
    elif isinstance(out, dict):
        arrays = {c: np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v) for c, v in out.items()}
    else:
        raise HookError(f"it returned {type(out).__name__}; expected a DataFrame (or a dict of arrays) with one row "
                        f"per input row")
    for c, v in arrays.items():
        if not isinstance(c, str) or not c:
            raise HookError(f"it returned a column named {c!r}; expected column names as non-empty strings")
        if v.ndim != 1 or len(v) != n:
            raise HookError(f"its column {c!r} has shape {v.shape}; expected {n} value(s), one per input row "
                            "(the hook must keep every row, in order)")
        if v.dtype.kind not in _NUMERIC_KINDS:
            raise HookError(f"its column {c!r} has dtype {v.dtype}; expected numbers (int, float or bool): "
                            "the models take numbers")
    return arrays


def _same_columns(out: dict[str, np.ndarray], columns: tuple[tuple[str, str], ...]) -> None:
    """A chunk's columns against the packaged ones: the same names, dtypes that cast without loss of kind."""
    if list(out) != [c for c, _ in columns]:
        raise HookError(f"it returned the columns {list(out)}; at packaging it returned {[c for c, _ in columns]}")
    for (c, dtype) in columns:
        if not np.can_cast(out[c].dtype, np.dtype(dtype), "same_kind"):
            raise HookError(f"its column {c!r} has dtype {out[c].dtype} here; at packaging it was {dtype}")


def pandas_engine() -> tuple[str, str]:
    """What runs the features hook's pandas code: (engine, a warning when ``NINEFIT_CUDF=1`` did not get cuDF's GPU).

    ``cudf.pandas`` is installed by :func:`runtime.data.tables.table_pandas` before the
    table is read; without a GPU it runs everything on pandas, which is said here.
    """
    from runtime.settings import env_flag

    try:
        asked = env_flag("NINEFIT_CUDF")
    except ValueError:
        asked = False
    if not asked:
        return "pandas", ""
    if "cudf.pandas" not in sys.modules:
        return "pandas", ("NINEFIT_CUDF=1, but cudf is not installed here: the features hook ran on pandas, "
                          "on the CPU")
    from runtime.gpu import gpu_present

    present, how = gpu_present()
    if not present:
        return "cudf.pandas", (f"NINEFIT_CUDF=1, but there is no GPU here ({how}): cudf.pandas ran the features hook "
                               "on pandas, on the CPU")
    return "cudf.pandas", ""


@dataclass
class FeaturesResult:
    """The test table with the hook's columns added, and what went wrong where."""

    frame: Any
    failed: np.ndarray | None = None  # rows whose chunk failed (their features are zeros); None: none did
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0  # in the hook itself
    columns: tuple[tuple[str, str], ...] = ()  # (name, dtype) of the hook's columns


def apply_features(frame, ref: str, folder: str | Path, *, group: str = "", ids=None,
                   columns: tuple[tuple[str, str], ...] = (), chunk_rows: int | None = None,
                   strict: bool = False, time_left: Callable[[], float | None] | None = None,
                   hook: HookCaller | None = None, inputs: Mapping[str, Any] | None = None) -> FeaturesResult:
    """Run the features hook over ``frame`` chunk by chunk and add its columns.

    Args:
        frame: The test table (pandas, or cudf.pandas).
        ref: The hook, ``"module:function"``.
        folder: The folder holding the module (the bundle's ``hooks/``).
        group: ``features_group``: the column whose groups a chunk never splits.
        ids: The rows' ids, for messages.
        columns: The packaged hook's (name, dtype) columns: every chunk must
            return them, and a failed chunk gets zeros of them.
        chunk_rows: Rows per call; None: ``NINEFIT_FEATURES_CHUNK_ROWS``, else :data:`FEATURES_CHUNK_ROWS`.
        strict: Raise on the first failure (packaging); else report it and go on.
        time_left: Seconds the hook may still take, read before each call (:class:`HookCaller`); a call
            still running when they are up is abandoned, and its rows and every later chunk's fall back.
        hook: The hook already loaded (a serving run keeps one for every batch: its state lives on);
            None loads ``ref`` from ``folder``.
        inputs: Keyword arguments passed with every chunk (a serving run's other ``predict`` arguments).
    """
    if chunk_rows is None:
        from runtime.settings import env_count

        chunk_rows = env_count("NINEFIT_FEATURES_CHUNK_ROWS", FEATURES_CHUNK_ROWS)
    if hook is None:
        hook = HookCaller(load_hook(ref, folder), ref, time_left)  # an import that fails fails every chunk: raised
    n = len(frame)
    result = FeaturesResult(frame=frame, columns=columns)
    arrays: dict[str, np.ndarray] = {c: np.zeros(n, dtype=d) for c, d in columns}
    failed = np.zeros(n, dtype=bool)
    chunks = feature_chunks(frame, group, chunk_rows)
    for k, idx in enumerate(chunks):
        contiguous = idx[-1] - idx[0] + 1 == len(idx)
        chunk = (frame.iloc[int(idx[0]):int(idx[-1]) + 1] if contiguous else frame.iloc[idx]).reset_index(drop=True)
        t0 = time.perf_counter()
        try:
            out = features_output(hook(chunk, **(inputs or {})), len(idx))
            if columns:
                _same_columns(out, columns)
        except HookError as exc:
            result.seconds += time.perf_counter() - t0
            shown = f" (ids {ids[int(idx[0])]} .. {ids[int(idx[-1])]})" if ids is not None else ""
            text = f"features hook {ref!r} failed on {len(idx)} test row(s) {int(idx[0])}..{int(idx[-1])}{shown}: {exc}"
            if strict:
                raise HookError(text) from exc
            if isinstance(exc, HookTimeout):  # this chunk and every later one: the hook is not called again
                rest = np.concatenate(chunks[k:])
                failed[rest] = True
                result.events.append(f"{text}; its {len(rest)} row(s) left to feature ({len(chunks) - k} chunk(s)) "
                                     "are left uncovered (the fallback's values stand), the run goes on")
                break
            failed[idx] = True
            result.events.append(f"{text}; those rows are left uncovered (the fallback's values stand), "
                                 "the run goes on")
            continue
        result.seconds += time.perf_counter() - t0
        for c, v in out.items():
            if c not in arrays:  # the first chunk to return a column fixes its dtype
                arrays[c] = np.zeros(n, dtype=v.dtype)
                result.columns = (*result.columns, (c, str(v.dtype)))
            arrays[c][idx] = v
    if arrays:
        added = frame.__class__(arrays, index=frame.index) if hasattr(frame, "index") else arrays
        keep = [c for c in frame.columns if c not in arrays]
        import pandas as pd

        result.frame = pd.concat([frame[keep], added], axis=1)
    result.failed = failed if failed.any() else None
    return result


__all__ = ["FEATURES_CHUNK_ROWS", "HOOKS_DIR", "FeaturesResult", "HookCaller", "apply_features", "call_hook", "feature_chunks",
           "features_output", "hook_path", "load_hook", "pandas_engine", "user_traceback"]
