"""The Kaggle-shaped tree a rehearsal runs a notebook in, its kernel's environment and its isolation.

``ninefit simulate`` (:mod:`.simulate` for a bundle that writes a submission
file, :mod:`.serve_simulate` for one that serves the evaluation API) lays out::

    kaggle/input/<bundle-slug>/    a copy of the bundle, read-only
    kaggle/input/<competition>/    a copy of the competition data, read-only
    kaggle/working/                writable; the kernel's working directory

points the notebook's parameters at it through their ``NINEFIT_*`` variables,
cuts the network off (a namespace, or the audit hook of :mod:`.sandbox`) and
runs the executor of :mod:`.sandbox` on it, against the time limit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from packager.offline.dataset import METADATA_FILENAME
from packager.offline.sandbox import execute, guard_site, kernel_python, kernelspec, netns_unavailable
from runtime.errors import PackagingError
from runtime.settings import parse_duration

#: ``isolation=`` values: a network namespace, the kernel-side audit hook, or the first that works.
ISOLATIONS = ("auto", "netns", "audit")

#: What the audit-hook isolation cannot see, said with every verdict that used it.
AUDIT_GAPS = ("NOT covered: programs that are not Python (curl, wget, compiled tools: they only get a refusing "
              "HTTP proxy), Python started with -I, -E or -S or without PYTHONPATH, and sockets opened below Python's "
              "socket module (ctypes, native extensions); only a network namespace (isolation 'netns') cuts those off")

DEAD_PROXY_PORT = 9  # "discard": nothing listens there

#: The bundle's wheels this interpreter cannot install (built for Kaggle's Python): the notebook skips them.
FOREIGN_WHEELS_ENV = "NINEFIT_REHEARSAL_FOREIGN_WHEELS"


def foreign_wheels(bundle: Path) -> list[str]:
    """The bundle's wheels whose tags this interpreter does not support (a cp312 wheel here on Python 3.11).

    The rehearsal's kernel is this interpreter, so such a wheel cannot be rehearsed; packaging installed
    the whole wheelhouse offline into an interpreter of Kaggle's Python (``report.md``'s install check).
    """
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    here = set(sys_tags())
    foreign = []
    for wheel in sorted((bundle / "wheels").glob("*.whl")):
        try:
            tags = parse_wheel_filename(wheel.name)[3]
        except InvalidWheelFilename:
            continue  # the notebook's own install says what is wrong with it
        if not tags & here:
            foreign.append(wheel.name)
    return foreign


def foreign_note(foreign: Sequence[str]) -> str:
    """The verdict's note on the wheels the rehearsal could not install ("" when there are none)."""
    if not foreign:
        return ""
    import platform

    return (f"rehearsal note: {len(foreign)} wheel(s) of the bundle are built for Kaggle's Python, not this "
            f"Python {platform.python_version()}, and were not installed here ({', '.join(foreign)}); the notebook "
            "ran with this environment's packages instead. Packaging installed them offline into Kaggle's Python "
            "(report.md, 'offline install check'); to rehearse them too, run ninefit under that Python.")


def copy_readonly(src: Path, dest: Path, leave_out: Sequence[str] = ()) -> None:
    """Copy ``src`` to ``dest`` read-only, without ``__pycache__`` folders or the top-level ``leave_out`` files."""
    top = os.path.abspath(src)

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__" or (n in leave_out and os.path.abspath(folder) == top)]

    shutil.copytree(src, dest, ignore=ignore)
    for dirpath, _dirs, files in os.walk(dest, topdown=False):
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


def remove_tree(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def load_notebook(notebook: str | os.PathLike) -> nbformat.NotebookNode:
    path = Path(notebook)
    if not path.is_file():
        raise PackagingError(f"notebook {path} not found (expected an .ipynb file, e.g. from `ninefit notebook`)")
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except (ValueError, nbformat.ValidationError) as exc:  # NotJSONError is a ValueError
        raise PackagingError(f"{path} is not a valid Jupyter notebook: {exc}") from exc
    return nb


def parse_time_limit(time_limit: str | float) -> tuple[float, str | float]:
    """(seconds, the notebook's TIME_LIMIT with its unit)."""
    try:
        limit_s = parse_duration(time_limit)
    except ValueError as exc:
        raise PackagingError(f"time limit: {exc}") from None
    if isinstance(time_limit, (int, float)):  # seconds from Python: the notebook's TIME_LIMIT needs its unit
        time_limit = f"{limit_s:.3f}".rstrip("0").rstrip(".") + "s"
    return limit_s, time_limit


def choose_isolation(isolation: str) -> tuple[bool, str | None]:
    """(whether a network namespace cuts the network off, why not where it does not)."""
    if isolation not in ISOLATIONS:
        raise PackagingError(f"isolation {isolation!r}: expected one of {', '.join(ISOLATIONS)}")
    reason = netns_unavailable() if isolation != "audit" else "requested with isolation='audit'"
    if isolation == "netns" and reason:
        raise PackagingError(f"cannot cut the network off with a namespace: {reason}. Use isolation 'audit' or 'auto'.")
    return reason is None, reason


def guarded_environment(root: Path, tree: dict[str, Path], time_limit: str, target: str | None, use_netns: bool,
                         netlog: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """The kernel's environment, the network guard first on its path (also ahead of a PYTHONPATH given in
    ``env``: the guard must load in every process)."""
    guard = guard_site(root / "netguard", netlog, block=not use_netns,
                       proxy_port=None if use_netns else DEAD_PROXY_PORT)
    kernel_env = kernel_environment(root, tree, time_limit, target, use_netns)
    kernel_env.update(env or {})
    kernel_env["PYTHONPATH"] = os.pathsep.join([str(guard), *filter(None, [kernel_env.get("PYTHONPATH")])])
    return kernel_env


def run_executor(root: Path, tree: dict[str, Path], kernel_env: dict[str, str], limit_s: float, use_netns: bool,
                 extra: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute the notebook in the sandbox: (what the executor reported, the wall clock's view: seconds, killed...).

    ``extra``: more entries of the executor's spec (``gateway``: a process to run beside the kernel).

    Raises:
        PackagingError: the simulator itself failed (not the notebook).
    """
    spec = {"notebook": str(root / "notebook.ipynb"), "executed": str(root / "executed.ipynb"),
            "result": str(root / "result.json"), "pidfile": str(root / "kernel.pid"), "cwd": str(tree["working"]),
            "limit_s": limit_s, "netns": use_netns, "env": kernel_env, "ipc_dir": str(root / "ipc"), **(extra or {})}
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


def layout(root: Path, bundle: Path, data_dir: Path, slug: str, competition: str) -> dict[str, Path]:
    """``kaggle/input/<slug>``, ``kaggle/input/<competition>`` (read-only copies) and ``kaggle/working``.

    The bundle is copied as Kaggle has it after ``kaggle datasets create``: without
    ``dataset-metadata.json``, which the Kaggle CLI reads and does not upload.
    """
    inputs = root / "kaggle" / "input"
    tree = {"bundle": inputs / slug, "data": inputs / competition, "working": root / "kaggle" / "working"}
    tree["working"].mkdir(parents=True)
    copy_readonly(bundle, tree["bundle"], leave_out=(METADATA_FILENAME,))
    copy_readonly(data_dir, tree["data"])
    os.chmod(inputs, 0o555)
    return tree


def kernel_environment(root: Path, tree: Mapping[str, Path], time_limit: str, target: str | None,
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
    foreign = foreign_wheels(Path(tree["bundle"]))
    if foreign:
        env[FOREIGN_WHEELS_ENV] = os.pathsep.join(foreign)
    if not use_netns:  # subprocesses escape the audit hook: give them a proxy that refuses
        proxy = f"http://127.0.0.1:{DEAD_PROXY_PORT}"
        env.update({k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")})
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
    return env


def printed(nb: nbformat.NotebookNode, tag: str) -> str:
    """What the cells tagged ``tag`` printed."""
    return "".join(out.get("text", "") for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", ())
                   for out in cell.get("outputs", ()) if out.get("output_type") == "stream")


def isolation_text(use_netns: bool, reason: str | None, note: str) -> str:
    if use_netns:
        text = "network namespace (unshare --user --net): only a loopback interface, for the kernel and its subprocesses"
    else:
        text = (f"audit hook ({reason}) in the kernel and its Python subprocesses: socket connections and lookups "
                f"beyond loopback raise NetworkBlockedError. {AUDIT_GAPS}")
    return f"{text}; {note}" if note else text


def kaggle_paths(tree: str, text: str) -> str:
    """Text with the simulated tree's paths shown as they are on Kaggle (``/kaggle/...``)."""
    return text.replace(tree, "/kaggle")


__all__ = ["AUDIT_GAPS", "DEAD_PROXY_PORT", "FOREIGN_WHEELS_ENV", "ISOLATIONS", "choose_isolation", "copy_readonly",
           "foreign_note", "foreign_wheels", "guarded_environment", "isolation_text", "kaggle_paths", "kernel_environment", "layout", "load_notebook", "parse_time_limit",
           "printed", "remove_tree", "run_executor"]
