"""Rehearse the submission notebook the way Kaggle reruns it: offline, read-only inputs, a time limit.

:func:`simulate` lays out a Kaggle-shaped tree in a temporary folder::

    kaggle/input/<bundle-slug>/    a copy of the bundle, read-only
    kaggle/input/<competition>/    a copy of the test data, read-only
    kaggle/working/                writable; the kernel's working directory

and executes the notebook there with nbclient, its parameters pointed at the
tree through their ``NINEFIT_*`` environment variables. Then it judges the
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
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from packager.offline.dataset import METADATA_FILENAME
from packager.offline.notebook import REPORT_TAG, build_notebook, bundle_slug
from packager.offline.sandbox import execute, guard_site, kernel_python, kernelspec, netns_unavailable, read_attempts
from runtime.bundle import check_files
from runtime.errors import DataError, PackagingError
from runtime.manifest import Manifest, SubmissionSpec
from runtime.settings import parse_duration

# -- verdicts ---------------------------------------------------------------------------------------

PASSED = "passed"
NETWORK = "network access attempted"
TIMEOUT = "time limit exceeded"
EXCEPTION = "notebook raised an exception"
NOT_FOUND = "submission.csv not found"
INVALID = "submission invalid"
#: A file of the bundle fails its checksum: whatever the notebook did, this is not the bundle that was packaged.
DAMAGED = "damaged bundle"
CPU_FALLBACK = "GPU target ran on the CPU"
#: The features or postprocess hook failed on most rows: a valid file, mostly the fallback's values.
HOOKS_FAILED = "hooks failed on most rows"

#: The failure Kaggle would report for each verdict (KAGGLE.md's list).
KAGGLE_FAILURES = {
    NETWORK: "Notebook Threw Exception",
    TIMEOUT: "Notebook Timeout",
    EXCEPTION: "Notebook Threw Exception",
    NOT_FOUND: "Submission CSV Not Found",
    INVALID: "Submission Scoring Error",
    # Kaggle reports nothing at once; the same models at CPU speed on the hidden test set:
    CPU_FALLBACK: "none at once, but a Notebook Timeout or a thin submission at full size",
    HOOKS_FAILED: "none at once, but a submission mostly of the fallback's values: a poor score",
}
#: A dead kernel is most often out of memory.
DEAD_KERNEL_FAILURE = "Notebook Exceeded Allowed Compute"

#: ``isolation=`` values: a network namespace, the kernel-side audit hook, or the first that works.
ISOLATIONS = ("auto", "netns", "audit")

#: What the audit-hook isolation cannot see, said with every verdict that used it.
AUDIT_GAPS = ("NOT covered: programs that are not Python (curl, wget, compiled tools: they only get a refusing "
              "HTTP proxy), Python started with -I, -E or -S or without PYTHONPATH, and sockets opened below Python's "
              "socket module (ctypes, native extensions); only a network namespace (isolation 'netns') cuts those off")

_DEAD_PROXY_PORT = 9  # "discard": nothing listens there
_NETWORK_ERRORS = ("NetworkBlockedError", "gaierror")
_NETWORK_TEXT = (
    "Network is unreachable", "Temporary failure in name resolution", "Name or service not known",
    "No address associated with hostname", "Failed to establish a new connection", "network access blocked",
)
_MISSING_VALUES = {"", "nan", "none", "null", "<na>"}


@dataclass(frozen=True)
class SimulationResult:
    """What a simulated Kaggle rerun produced.

    Attributes:
        verdict: One of ``passed``, ``network access attempted``, ``time limit
            exceeded``, ``notebook raised an exception``, ``submission.csv not
            found``, ``submission invalid``, ``damaged bundle`` (a bundle file
            fails its checksum; checked before the notebook runs, and it wins
            over the notebook's own verdict, which the details give), ``GPU
            target ran on the CPU`` (the run report's ``device_warnings``: a
            bundle for a GPU target ran on the CPU provider although this
            machine has a GPU).
        kaggle_failure: What Kaggle would report (``Notebook Timeout``...); None when passed, or when
            the bundle is damaged but the notebook still ran to a valid submission.
        details: What went wrong (the cell's error, what is wrong in the submission), or notes.
        seconds: The notebook's run time, from its kernel being ready.
        isolation: How the network was cut off.
        submission: The kept ``submission.csv``; None when there is none or nothing was kept.
        report: The run report (``run_report.json``), when the runtime wrote one.
        report_text: The run report as the notebook printed it.
        notebook: The kept executed notebook, with its outputs.
        network_attempts: Outside connections and lookups the kernel's Python tried.
    """

    verdict: str
    kaggle_failure: str | None
    details: str
    seconds: float
    isolation: str
    submission: Path | None = None
    report: dict[str, Any] | None = None
    report_text: str = ""
    notebook: Path | None = None
    network_attempts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    def summary(self) -> str:
        """The verdict, its details and the run report, for a terminal."""
        kaggle = self.kaggle_failure or "no failure, but the run left out what the damage belongs to"
        head = "verdict: passed" if self.passed else f"verdict: {self.verdict} (Kaggle: {kaggle})"
        lines = [head]
        if self.details:
            lines.append(textwrap.indent(self.details, "  "))
        lines.append(f"notebook ran {self.seconds:.1f} s; network isolation: {self.isolation}")
        if self.submission:
            lines.append(f"submission: {self.submission}")
        if self.notebook:
            lines.append(f"executed notebook: {self.notebook}")
        if self.report_text:
            lines += ["run report:", textwrap.indent(self.report_text.rstrip(), "  ")]
        return "\n".join(lines)


# -- the submission check ---------------------------------------------------------------------------


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [row for row in csv.reader(f) if row]  # blank lines are skipped, as pandas does


def _examples(items: Sequence[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


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
    dupes = set()
    for i in ids:
        (dupes if i in seen else seen).add(i)
    dupes = sorted(dupes)
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


# -- setting up the tree, the kernel and the isolation ----------------------------------------------


def _copy_readonly(src: Path, dest: Path, leave_out: Sequence[str] = ()) -> None:
    """Copy ``src`` to ``dest`` read-only, without ``__pycache__`` folders or the top-level ``leave_out`` files."""
    top = os.path.abspath(src)

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__" or (n in leave_out and os.path.abspath(folder) == top)]

    shutil.copytree(src, dest, ignore=ignore)
    for dirpath, _dirs, files in os.walk(dest, topdown=False):
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


def _remove_tree(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def _load_notebook(notebook: str | os.PathLike) -> nbformat.NotebookNode:
    path = Path(notebook)
    if not path.is_file():
        raise PackagingError(f"notebook {path} not found (expected an .ipynb file, e.g. from `ninefit notebook`)")
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except (ValueError, nbformat.ValidationError) as exc:  # NotJSONError is a ValueError
        raise PackagingError(f"{path} is not a valid Jupyter notebook: {exc}") from exc
    return nb


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
) -> SimulationResult:
    """Run the submission notebook offline on a Kaggle-shaped copy of the bundle and data, and judge it.

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

    Returns:
        The verdict; a notebook failure is a verdict, not an exception.

    Raises:
        NinefitError: the bundle, data or notebook cannot be used, or the simulator itself failed.
    """
    bundle, data_dir = Path(bundle_dir), Path(data)
    manifest = Manifest.load(bundle)
    damage = check_files(bundle, manifest)  # a manifest that cannot be trusted raises: nothing to rehearse
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


def _time_limit(time_limit: str | float) -> tuple[float, str | float]:
    """(seconds, the notebook's TIME_LIMIT with its unit)."""
    try:
        limit_s = parse_duration(time_limit)
    except ValueError as exc:
        raise PackagingError(f"time limit: {exc}") from None
    if isinstance(time_limit, (int, float)):  # seconds from Python: the notebook's TIME_LIMIT needs its unit
        time_limit = f"{limit_s:.3f}".rstrip("0").rstrip(".") + "s"
    return limit_s, time_limit


def _isolation(isolation: str) -> tuple[bool, str | None]:
    """(whether a network namespace cuts the network off, why not where it does not)."""
    if isolation not in ISOLATIONS:
        raise PackagingError(f"isolation {isolation!r}: expected one of {', '.join(ISOLATIONS)}")
    reason = netns_unavailable() if isolation != "audit" else "requested with isolation='audit'"
    if isolation == "netns" and reason:
        raise PackagingError(f"cannot cut the network off with a namespace: {reason}. Use isolation 'audit' or 'auto'.")
    return reason is None, reason


def _guarded_environment(root: Path, tree: dict[str, Path], time_limit: str, target: str | None, use_netns: bool,
                         netlog: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """The kernel's environment, the network guard first on its path (also ahead of a PYTHONPATH given in
    ``env``: the guard must load in every process)."""
    guard = guard_site(root / "netguard", netlog, block=not use_netns,
                       proxy_port=None if use_netns else _DEAD_PROXY_PORT)
    kernel_env = _kernel_environment(root, tree, time_limit, target, use_netns)
    kernel_env.update(env or {})
    kernel_env["PYTHONPATH"] = os.pathsep.join([str(guard), *filter(None, [kernel_env.get("PYTHONPATH")])])
    return kernel_env


def _run(root: Path, tree: dict[str, Path], kernel_env: dict[str, str], limit_s: float,
         use_netns: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute the notebook in the sandbox: (what the executor reported, the wall clock's view: seconds, killed...).

    Raises:
        PackagingError: the simulator itself failed (not the notebook).
    """
    spec = {"notebook": str(root / "notebook.ipynb"), "executed": str(root / "executed.ipynb"),
            "result": str(root / "result.json"), "pidfile": str(root / "kernel.pid"), "cwd": str(tree["working"]),
            "limit_s": limit_s, "netns": use_netns, "env": kernel_env, "ipc_dir": str(root / "ipc")}
    (root / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    wall = execute(root, use_netns, limit_s)
    outcome = json.loads((root / "result.json").read_text()) if (root / "result.json").is_file() else {}
    if not outcome and not wall["killed"]:
        log_tail = (root / "worker.log").read_text(errors="replace")[-3000:]
        raise PackagingError(f"the simulator's executor failed before reporting (exit {wall['returncode']}); "
                             f"its log:\n{log_tail}")
    if outcome.get("status") == "simulator-error":
        raise PackagingError(f"the simulator could not run the notebook: {outcome.get('message')}")
    return outcome, wall


def _layout(root: Path, bundle: Path, data_dir: Path, slug: str, competition: str) -> dict[str, Path]:
    """``kaggle/input/<slug>``, ``kaggle/input/<competition>`` (read-only copies) and ``kaggle/working``.

    The bundle is copied as Kaggle has it after ``kaggle datasets create``: without
    ``dataset-metadata.json``, which the Kaggle CLI reads and does not upload.
    """
    inputs = root / "kaggle" / "input"
    tree = {"bundle": inputs / slug, "data": inputs / competition, "working": root / "kaggle" / "working"}
    tree["working"].mkdir(parents=True)
    _copy_readonly(bundle, tree["bundle"], leave_out=(METADATA_FILENAME,))
    _copy_readonly(data_dir, tree["data"])
    os.chmod(inputs, 0o555)
    return tree


def _kernel_environment(root: Path, tree: Mapping[str, Path], time_limit: str, target: str | None,
                        use_netns: bool) -> dict[str, str]:
    """The kernel's environment: this one without NINEFIT_* settings, the parameters pointed at the tree."""
    # NINEFIT_GPU_PRESENT stays: it describes this machine (it is how tests rehearse a GPU here).
    env = {k: v for k, v in os.environ.items() if not k.startswith("NINEFIT_") or k == "NINEFIT_GPU_PRESENT"}
    env.update({
        "NINEFIT_BUNDLE_DIR": str(tree["bundle"]), "NINEFIT_DATA_DIR": str(tree["data"]),
        "NINEFIT_OUT": str(tree["working"] / "submission.csv"), "NINEFIT_WORK_DIR": str(tree["working"] / "ninefit"),
        "NINEFIT_TIME_LIMIT": time_limit,
        "JUPYTER_PATH": str(kernelspec(root, kernel_python(root))),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"), "IPYTHONDIR": str(root / "ipython"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    if target is not None:
        env["NINEFIT_TARGET"] = target
    if not use_netns:  # subprocesses escape the audit hook: give them a proxy that refuses
        proxy = f"http://127.0.0.1:{_DEAD_PROXY_PORT}"
        env.update({k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")})
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
    return env


def _printed(nb: nbformat.NotebookNode, tag: str) -> str:
    """What the cells tagged ``tag`` printed."""
    return "".join(out.get("text", "") for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", ())
                   for out in cell.get("outputs", ()) if out.get("output_type") == "stream")


def _isolation_text(use_netns: bool, reason: str | None, note: str) -> str:
    if use_netns:
        text = "network namespace (unshare --user --net): only a loopback interface, for the kernel and its subprocesses"
    else:
        text = (f"audit hook ({reason}) in the kernel and its Python subprocesses: socket connections and lookups "
                f"beyond loopback raise NetworkBlockedError. {AUDIT_GAPS}")
    return f"{text}; {note}" if note else text


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


def _kaggle_paths(tree: str, text: str) -> str:
    """Text with the simulated tree's paths shown as they are on Kaggle (``/kaggle/...``)."""
    return text.replace(tree, "/kaggle")


def _judge(outcome: Mapping[str, Any], wall: Mapping[str, Any], attempts: Sequence[str], submission: Path,
           sample: Path, spec: SubmissionSpec, limit_s: float) -> tuple[str, str]:
    """The verdict and its details, from the executor's outcome and the files it left."""
    status = outcome.get("status")
    tried = f"the kernel tried to reach: {_examples(sorted(set(attempts)))}" if attempts else ""
    if wall["killed"] or status == "timeout":
        where = f" in cell {outcome['cell']}" if outcome.get("cell") is not None else ""
        how = "the executor was killed" if wall["killed"] else "execution was stopped"
        lines = [f"the notebook ran past the {limit_s:g} s limit{where}; {how}", outcome.get("source", ""), tried]
        return TIMEOUT, "\n".join(filter(None, lines))
    if status in ("error", "dead"):
        error = f"cell {outcome.get('cell')}: {outcome.get('ename')}: {outcome.get('evalue')}"
        text = " ".join(str(outcome.get(k, "")) for k in ("ename", "evalue", "traceback"))
        if attempts or outcome.get("ename") in _NETWORK_ERRORS or any(t in text for t in _NETWORK_TEXT):
            return NETWORK, "\n".join(filter(None, [error, tried or "the error is a failed network access"]))
        if status == "dead":
            error += " (the kernel died: out of memory, or a crash in native code)"
        return EXCEPTION, "\n".join(filter(None, [error, outcome.get("traceback_tail", "")]))
    if not submission.is_file():
        return NOT_FOUND, (f"the notebook finished but wrote no {submission.name} in /kaggle/working "
                           "(Kaggle looks for exactly that file)")
    problems = check_submission(submission, sample, spec)
    if problems:
        return INVALID, "\n".join(problems)
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
