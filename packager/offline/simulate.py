"""Rehearse the submission notebook the way Kaggle reruns it: offline, read-only inputs, a time limit.

:func:`simulate` lays out a Kaggle-shaped tree in a temporary folder::

    kaggle/input/<bundle-slug>/    a copy of the bundle, read-only
    kaggle/input/<competition>/    a copy of the test data, read-only
    kaggle/working/                writable; the kernel's working directory

and executes the notebook there with nbclient, its parameters pointed at the
tree through their ``NINEFIT_*`` environment variables (:mod:`.rehearsal`). Then it judges the
run the way Kaggle would and returns a :class:`SimulationResult` naming the
Kaggle failure the user would have seen.

The kernel. A private kernelspec (found through ``JUPYTER_PATH``, so no
``python3`` spec of the user's can shadow it) starts ``ipykernel`` with an
overlay virtual environment of *this* interpreter: the same executable, with
this environment's site-packages added by a ``.pth`` file. The kernel thus
imports exactly what ``ninefit`` itself sees, while the notebook's
``pip install`` of the bundle's wheels lands in the throwaway overlay, never
in the user's environment.

The network. By default the whole executor (nbclient and the kernel) runs in
a new user and network namespace (``unshare --user --map-root-user --net``):
it holds a loopback interface alone, which the executor brings up for the
ZeroMQ link to the kernel, so every outside connection and DNS lookup fails,
in the kernel and in every process it starts. The executor then drops its
capabilities before starting the kernel: the namespace's root could
otherwise write to the read-only inputs, which Kaggle mounts read-only for
root too. Where unprivileged namespaces are not permitted, an audit hook
(:func:`sys.addaudithook`) refuses socket connections and name lookups
beyond loopback. It is installed by a ``sitecustomize`` module on the
kernel's ``PYTHONPATH``, so it runs in the kernel before any cell and in
every Python subprocess the notebook starts (``subprocess.run([sys.executable,
...])``, ``!python script.py``, ``pip``). What it cannot cover, said in the
verdict: processes that are not Python (``curl``, ``wget``, a compiled tool:
they only get a refusing HTTP proxy, which honours ``http_proxy`` or not),
Python started with ``-I``, ``-E`` or ``-S`` or with an environment that
drops ``PYTHONPATH``, and sockets used below Python's socket module (ctypes
calls into libc, native extensions opening their own connections). Only the
namespace covers those. In both modes the hook logs every outside attempt,
which is how an attempt is told from an unrelated error. The verdict says
which isolation was used.

The time limit is enforced twice: nbclient's per-cell timeout is the time
left until the deadline, and the whole executor is killed if it overruns.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from packager.offline.notebook import REPORT_TAG, build_notebook, bundle_slug
from packager.offline.rehearsal import (
    ISOLATIONS,
    choose_isolation as _isolation,
    foreign_note,
    foreign_wheels,
    guarded_environment as _guarded_environment,
    isolation_text as _isolation_text,
    kaggle_paths as _kaggle_paths,
    layout as _layout,
    load_notebook as _load_notebook,
    parse_time_limit as _time_limit,
    printed as _printed,
    remove_tree as _remove_tree,
    run_executor as _run,
)
from packager.offline.sandbox import netns_unavailable, read_attempts
from packager.offline.serve_simulate import simulate_serve
from packager.offline.verdicts import (
    CPU_FALLBACK,
    DAMAGED,
    DEAD_KERNEL_FAILURE,
    EXCEPTION,
    HOOKS_FAILED,
    INVALID,
    KAGGLE_FAILURES,
    NETWORK,
    NOT_FOUND,
    PASSED,
    TIMEOUT,
    SimulationResult,
    examples as _examples,
    judge_notebook,
)
from runtime.bundle import check_files
from runtime.errors import DataError
from runtime.manifest import Manifest, SubmissionSpec

_MISSING_VALUES = {"", "nan", "none", "null", "<na>"}


# -- the submission check ---------------------------------------------------------------------------


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [row for row in csv.reader(f) if row]  # blank lines are skipped, as pandas does


def check_submission(path: str | os.PathLike, sample: str | os.PathLike, spec: SubmissionSpec) -> list[str]:
    """What is wrong with a submission, compared with the sample submission (empty: nothing).

    Checks the header, the ids (same set, same order, no duplicates), the row
    count, missing values (empty, NaN), and the values themselves: labels
    among the declared classes in argmax mode, finite numbers otherwise.
    """
    try:
        rows = _read_csv(Path(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [f"cannot read it as UTF-8 CSV: {exc}"]
    expected = _read_csv(Path(sample))
    if not expected:
        return [f"the sample submission {Path(sample).name} is empty: nothing to check against"]
    if not rows:
        return ["the file is empty (not even a header)"]
    header, body = rows[0], rows[1:]
    want_header, want_body = expected[0], expected[1:]
    problems = []
    if header != want_header:
        problems.append(f"columns {header}, expected {want_header} (as in {Path(sample).name})")
    ragged = [str(n + 2) for n, r in enumerate(body) if len(r) != len(want_header)]
    if ragged:
        problems.append(f"{len(ragged)} row(s) do not have {len(want_header)} cells (lines {_examples(ragged)})")
    if len(body) != len(want_body):
        problems.append(f"{len(body)} rows, the sample submission has {len(want_body)}")
    id_col = header.index(spec.id_column) if spec.id_column in header else 0
    ids = [r[id_col] if len(r) > id_col else "" for r in body]
    want_ids = [r[0] for r in want_body]
    seen: set[str] = set()
    repeated: set[str] = set()
    for i in ids:
        (repeated if i in seen else seen).add(i)
    dupes = sorted(repeated)
    if dupes:
        problems.append(f"{len(dupes)} duplicated id(s) ({_examples(dupes)})")
    missing = [i for i in want_ids if i not in seen]
    extra = sorted(seen - set(want_ids))
    if missing:
        problems.append(f"{len(missing)} id(s) of the sample submission are missing ({_examples(missing)})")
    if extra:
        problems.append(f"{len(extra)} id(s) are not in the sample submission ({_examples(extra)})")
    if not (missing or extra or dupes) and ids != want_ids:
        at = next(n for n, (a, b) in enumerate(zip(ids, want_ids)) if a != b)
        problems.append(f"ids are in another order than the sample's (line {at + 2}: {ids[at]!r}, expected {want_ids[at]!r})")
    empty, bad = [], []
    for n, r in enumerate(body):
        for name, cell in zip(header, r):
            if name == spec.id_column:
                continue
            where = f"line {n + 2} {name}={cell!r}"
            if spec.mode in ("multilabel", "rle") and cell == spec.empty:
                continue  # the declared value of a row without a label, or of an empty mask
            if cell.strip().lower() in _MISSING_VALUES:
                empty.append(where)
            elif not _valid_cell(cell, spec):
                bad.append(where)
    if empty:
        problems.append(f"{len(empty)} empty or NaN value(s) ({_examples(empty)})")
    if bad:
        problems.append(f"{len(bad)} {_WHAT.get(spec.mode, 'invalid values').format(list(spec.classes))} "
                        f"({_examples(bad)})")
    return problems


_WHAT = {"argmax": "labels not among the declared classes {}", "values": "values that are not finite numbers",
         "long": "values that are not finite numbers", "topk": "cells that are not k labels among the classes {}",
         "multilabel": "cells with labels not among the classes {}", "rle": "cells that are not run-length pairs"}


def _valid_cell(cell: str, spec: SubmissionSpec) -> bool:
    """Whether one written cell is what the format writes (a postprocess hook's cells are its own)."""
    mode = spec.mode
    if mode in ("values", "long"):
        return _finite(cell)
    if mode == "argmax":
        return not spec.classes or cell in spec.classes
    if mode in ("topk", "multilabel"):
        labels = cell.split(spec.separator)
        return all(x in spec.classes for x in labels) and (mode != "topk" or len(labels) == spec.k)
    if mode == "rle":
        nums = cell.split()
        return len(nums) % 2 == 0 and all(x.isdigit() and int(x) > 0 for x in nums)
    return True


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# -- running ----------------------------------------------------------------------------------------


def simulate(
    bundle_dir: str | os.PathLike,
    data: str | os.PathLike,
    *,
    time_limit: str | float = "9h",
    notebook: str | os.PathLike | None = None,
    keep: str | os.PathLike | None = None,
    competition: str | None = None,
    target: str | None = None,
    isolation: str = "auto",
    env: Mapping[str, str] | None = None,
    seed: int | None = None,
) -> SimulationResult:
    """Run the submission notebook offline on a Kaggle-shaped copy of the bundle and data, and judge it.

    A bundle with ``serve`` is rehearsed as Kaggle's evaluation API reruns it, its notebook serving
    ninefit's rehearsal gateway (:func:`packager.offline.serve_simulate.simulate_serve`).

    Args:
        bundle_dir: The bundle folder.
        data: The competition data folder (test table and sample submission).
        time_limit: The run-time limit (``"9h"``, ``"2m"``, seconds); also the notebook's ``TIME_LIMIT``.
        notebook: The notebook to run; None: the one :func:`packager.offline.notebook.build_notebook` builds.
            It must read its paths from the ``NINEFIT_*`` variables, as ninefit's notebook does.
        keep: Folder to keep the executed notebook, ``submission.csv`` and ``run_report.json`` in;
            None: keep nothing.
        competition: Name of the competition data folder under ``kaggle/input``; None: ``data``'s name.
        target: The notebook's ``TARGET``; None: the notebook's default.
        isolation: ``"netns"``, ``"audit"`` or ``"auto"`` (netns where permitted, else audit).
        env: Further environment variables for the notebook's kernel (e.g. ``NINEFIT_TIME_MARGIN``).
        seed: A serving bundle's random batch order: its seed (None: one from the clock, printed).

    Returns:
        The verdict; a notebook failure is a verdict, not an exception.

    Raises:
        NinefitError: the bundle, data or notebook cannot be used, or the simulator itself failed.
    """
    bundle, data_dir = Path(bundle_dir), Path(data)
    manifest = Manifest.load(bundle)
    damage = check_files(bundle, manifest)  # a manifest that cannot be trusted raises: nothing to rehearse
    if manifest.serve is not None:
        return simulate_serve(bundle, data_dir, manifest, damage, time_limit=time_limit, notebook=notebook, keep=keep,
                              competition=competition, target=target, isolation=isolation, env=env, seed=seed)
    sample = _sample(data_dir, manifest)
    limit_s, time_limit = _time_limit(time_limit)
    use_netns, reason = _isolation(isolation)
    slug, comp = bundle_slug(bundle), competition or data_dir.resolve().name

    root = Path(tempfile.mkdtemp(prefix="ninefit-sim-"))
    try:
        tree = _layout(root, bundle, data_dir, slug, comp)
        nb = _load_notebook(notebook) if notebook is not None else \
            build_notebook(bundle, slug=slug, competition=comp, time_limit=str(time_limit))
        nbformat.write(nb, str(root / "notebook.ipynb"))
        netlog = root / "network.jsonl"
        kernel_env = _guarded_environment(root, tree, str(time_limit), target, use_netns, netlog, env)
        outcome, wall = _run(root, tree, kernel_env, limit_s, use_netns)
        executed = nbformat.read(root / "executed.ipynb", as_version=4) if (root / "executed.ipynb").is_file() else nb
        attempts = tuple(read_attempts(netlog))
        working = tree["working"]
        report = json.loads((working / "run_report.json").read_text()) if (working / "run_report.json").is_file() else None
        verdict, details = _judge(outcome, wall, attempts, working / "submission.csv", sample, manifest.submission, limit_s)
        verdict, details = _judge_device(verdict, details, report)
        verdict, details = _judge_hooks(verdict, details, report)
        details = "\n".join(filter(None, [details, foreign_note(foreign_wheels(bundle))]))
        failure = None if verdict == PASSED else (
            DEAD_KERNEL_FAILURE if outcome.get("status") == "dead" else KAGGLE_FAILURES[verdict])
        if damage:
            verdict, details = DAMAGED, "\n".join(filter(None, [
                f"{len(damage.files)} of {damage.checked} bundle file(s) fail their checksum:",
                *(f"  {line}" for line in damage.lines()), f"the notebook's own verdict: {verdict}", details]))
        kept_nb, kept_sub = _keep(Path(keep), executed, root) if keep is not None else (None, None)
        kaggle_paths = functools.partial(_kaggle_paths, str(root / "kaggle"))
        return SimulationResult(
            verdict=verdict, kaggle_failure=failure, details=kaggle_paths(details),
            seconds=float(outcome.get("seconds", wall["seconds"])),
            isolation=_isolation_text(use_netns, reason, outcome.get("note", "")), submission=kept_sub,
            report=report, report_text=kaggle_paths(_printed(executed, REPORT_TAG)), notebook=kept_nb,
            network_attempts=attempts,
        )
    finally:
        _remove_tree(root)


def _sample(data_dir: Path, manifest: Manifest) -> Path:
    """The competition data's sample submission (the data folder must hold it)."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist (expected the competition data: test table and "
                        f"{manifest.submission.sample})")
    sample = data_dir / manifest.submission.sample
    if not sample.is_file():
        raise DataError(f"{sample} not found: the data folder must hold the sample submission the bundle was packaged for")
    return sample


def _keep(dest: Path, executed: nbformat.NotebookNode, root: Path) -> tuple[Path, Path | None]:
    """Copy the executed notebook, the submission, the run report and the executor's log to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, str(dest / "notebook.ipynb"))
    working = root / "kaggle" / "working"
    for name in ("submission.csv", "run_report.json"):
        (dest / name).unlink(missing_ok=True)  # never leave a previous run's file behind
        if (working / name).is_file():
            shutil.copyfile(working / name, dest / name)
    shutil.copyfile(root / "worker.log", dest / "simulate.log")
    return dest / "notebook.ipynb", (dest / "submission.csv" if (dest / "submission.csv").is_file() else None)


def _judge(outcome: Mapping[str, Any], wall: Mapping[str, Any], attempts: Sequence[str], submission: Path,
           sample: Path, spec: SubmissionSpec, limit_s: float) -> tuple[str, str]:
    """The verdict and its details, from the executor's outcome and the files it left."""
    said = judge_notebook(outcome, wall, attempts, limit_s)
    if said is not None:
        return said
    if not submission.is_file():
        return NOT_FOUND, (f"the notebook finished but wrote no {submission.name} in /kaggle/working "
                           "(Kaggle looks for exactly that file)")
    problems = check_submission(submission, sample, spec)
    if problems:
        return INVALID, "\n".join(problems)
    tried = f"the kernel tried to reach: {_examples(sorted(set(attempts)))}" if attempts else ""
    note = f"note: {tried}, and the notebook carried on" if tried else ""
    return PASSED, note


def _judge_device(verdict: str, details: str, report: Mapping[str, Any] | None) -> tuple[str, str]:
    """A run that passed but ran a GPU-target bundle on the CPU, with a GPU here, does not pass."""
    warnings = list((report or {}).get("device_warnings") or ())
    if not warnings:
        return verdict, details
    text = "\n".join(f"the runtime warned: {w}" for w in warnings)
    if verdict != PASSED:
        return verdict, "\n".join(filter(None, [details, text]))
    return CPU_FALLBACK, "\n".join(filter(None, [text, details]))


def _judge_hooks(verdict: str, details: str, report: Mapping[str, Any] | None) -> tuple[str, str]:
    """A run that passed with a hook failing on most rows does not pass; on fewer rows it passes with a note."""
    rows = int((report or {}).get("rows") or 0)
    said = []
    for name in ("features", "postprocess"):
        hook = (report or {}).get(name) or {}
        if hook.get("rows_failed"):
            said.append((hook["rows_failed"], f"the {name} hook {hook['hook']!r} failed on {hook['rows_failed']} of "
                                              f"{rows} row(s): they hold the fallback's values"))
    if not said:
        return verdict, details
    events = [e for e in (report or {}).get("events", ()) if "hook" in e][:3]
    text = "\n".join([*(t for _, t in said), *(f"  {e}" for e in events)])
    if verdict == PASSED and any(n * 2 > rows for n, _ in said):
        return HOOKS_FAILED, "\n".join(filter(None, [text, details]))
    return verdict, "\n".join(filter(None, [details, ("note: " if verdict == PASSED else "") + text]))


__all__ = [
    "CPU_FALLBACK", "DAMAGED", "EXCEPTION", "HOOKS_FAILED", "INVALID", "ISOLATIONS", "KAGGLE_FAILURES", "NETWORK", "NOT_FOUND", "PASSED",
    "TIMEOUT",
    "SimulationResult", "check_submission", "netns_unavailable", "simulate",
]
