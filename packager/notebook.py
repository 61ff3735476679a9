"""The offline Kaggle submission notebook that runs a bundle.

Kaggle reruns a code-competition notebook with the internet off, on the
hidden test set, under a time limit. The notebook built here has four steps,
one code cell each:

1. *Parameters* (tagged ``parameters``, papermill style): records
   ``NINEFIT_START`` first - the runtime's deadline clock starts there - then
   the bundle and data folders, the submission path, the work folder, the
   time limit and the hardware target. Each parameter can be overridden by an
   environment variable (``NINEFIT_BUNDLE_DIR``...), which is how
   ``ninefit simulate`` points the very same notebook at a local
   Kaggle-shaped tree without editing it.
2. *Inputs and wheelhouse*: finds the bundle and the competition data (under
   ``/kaggle/input`` if the given folders are wrong), then installs the
   bundle's ``wheels/`` with ``pip install --no-index --find-links``, only
   the wheels whose top-level module the image cannot already import.
3. *Run*: puts the bundle first on ``sys.path``, imports the runtime
   vendored there and runs it with the deadline ``NINEFIT_START + TIME_LIMIT``.
4. *Report*: prints the run report (its JSON is ``run_report.json`` next to
   the submission).

The helper code of steps 2 and 3 is written here as real functions and put
into the cells with :func:`inspect.getsource`, so it is linted, imported and
unit-tested like any other code; those functions use the standard library
only, since they run before the runtime is importable.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from packager.dataset import METADATA_FILENAME
from runtime.errors import BundleError, PackagingError
from runtime.fileio import atomic_write
from runtime.manifest import Manifest

#: Kaggle's dataset description, written into the bundle by ``packager.dataset``.
DATASET_METADATA = METADATA_FILENAME
#: Tag of the cell that prints the run report (``ninefit simulate`` reads its output).
REPORT_TAG = "ninefit-report"
#: Tag of the parameters cell (papermill's convention).
PARAMETERS_TAG = "parameters"
COMPETITION_PLACEHOLDER = "<competition>"
KAGGLE_INPUT = "/kaggle/input"
KAGGLE_WORKING = "/kaggle/working"


@dataclass(frozen=True)
class Parameter:
    """One editable notebook parameter and the environment variable overriding it."""

    name: str
    env: str
    default: str
    help: str

    def line(self) -> str:
        return f"{self.name} = os.environ.get({self.env!r}, {self.default!r})  # {self.help}"


# -- code that runs inside the notebook (standard library only) ------------------------------------


def _find_input(path: str, marker: str, root: str = "/kaggle/input") -> str:
    """``path`` if ``path/marker`` exists, else the one folder under ``root`` holding ``marker``."""
    import glob
    import os

    if os.path.isfile(os.path.join(path, marker)):
        return path
    found = sorted({os.path.dirname(p) for depth in ("*", "*/*", "*/*/*")
                    for p in glob.glob(os.path.join(root, depth, marker))})
    if len(found) == 1:
        print(f"{path} has no {marker}; using {found[0]}")
        return found[0]
    listing = ", ".join(sorted(os.listdir(root))) if os.path.isdir(root) else f"{root} does not exist"
    raise FileNotFoundError(
        f"{path} has no {marker}, and {len(found)} folders under {root} have one ({', '.join(found) or 'none'}). "
        f"Attach the dataset and set the parameter (or its NINEFIT_* variable). {root} holds: {listing}")


def _wheel_modules(wheel: str) -> list[str]:
    """Top-level modules a wheel installs: ``top_level.txt``, else its root entries."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        listed = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/top_level.txt")]
        if listed:
            return [m.strip() for m in z.read(listed[0]).decode().splitlines() if m.strip()]
    modules = set()
    for name in names:
        head, _, rest = name.partition("/")
        if head.endswith((".dist-info", ".data")):
            continue
        if rest:
            modules.add(head)
        elif head.endswith((".py", ".so", ".pyd")):
            modules.add(head.split(".")[0])
    return sorted(modules)


def _install_wheels(bundle_dir: str) -> tuple[list[str], list[str]]:
    """Install the bundle's wheels whose modules are not importable here; returns (installed, skipped)."""
    import glob
    import importlib
    import importlib.util
    import os
    import subprocess
    import sys

    wheels = sorted(glob.glob(os.path.join(bundle_dir, "wheels", "*.whl")))
    if not wheels:
        print("no wheels/ in the bundle: nothing to install")
        return [], []
    install, skipped = [], []
    for wheel in wheels:
        modules = _wheel_modules(wheel)
        have = bool(modules) and all(importlib.util.find_spec(m) is not None for m in modules)
        (skipped if have else install).append(wheel)
    for wheel in skipped:
        print(f"skipped (the image has it): {os.path.basename(wheel)}")
    if install:
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
               os.path.join(bundle_dir, "wheels"), "--no-warn-script-location", "--disable-pip-version-check", *install]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            print(done.stdout)
            raise RuntimeError(f"offline install of {len(install)} wheel(s) failed (pip exit {done.returncode}); "
                               "pip's output is above. The wheelhouse lacks a dependency: rebuild it for Kaggle's Python.")
        importlib.invalidate_caches()
        for wheel in install:
            print(f"installed: {os.path.basename(wheel)}")
    return [os.path.basename(w) for w in install], [os.path.basename(w) for w in skipped]


def _check_runtime(runtime, bundle_dir: str) -> None:
    """Fail unless ``runtime`` is the package vendored in the bundle (not another one on ``sys.path``)."""
    import os

    where = os.path.realpath(os.path.dirname(runtime.__file__))
    if os.path.commonpath([where, os.path.realpath(bundle_dir)]) != os.path.realpath(bundle_dir):
        raise ImportError(f"`import runtime` found {where}, not the runtime vendored in {bundle_dir}; "
                          "restart the kernel so that the bundle's copy is imported")
    print(f"ninefit runtime {runtime.__version__} from {where}")


# -- building the notebook -----------------------------------------------------------------------


def _source(*functions: Callable[..., Any]) -> str:
    return "\n\n\n".join(textwrap.dedent(inspect.getsource(f)).rstrip() for f in functions)


def _code(cell_id: str, source: str, tags: tuple[str, ...] = ()) -> NotebookNode:
    cell = new_code_cell(source=source.strip() + "\n", metadata={"tags": list(tags)} if tags else {})
    cell.id = cell_id  # stable ids: the same bundle gives the same notebook
    return cell


def _markdown(cell_id: str, source: str) -> NotebookNode:
    cell = new_markdown_cell(source=source.strip() + "\n")
    cell.id = cell_id
    return cell


def bundle_slug(bundle_dir: str | os.PathLike) -> str:
    """The Kaggle dataset slug of a bundle: ``dataset-metadata.json``'s ``id``, else the folder name.

    Raises:
        PackagingError: ``dataset-metadata.json`` is unreadable or has no ``owner/slug`` id.
    """
    root = Path(bundle_dir)
    meta = root / DATASET_METADATA
    if not meta.is_file():
        return root.resolve().name
    try:
        ident = json.loads(meta.read_text(encoding="utf-8"))["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackagingError(f"{meta} is not a Kaggle dataset description with an 'id' ({exc!r}); "
                             "expected {\"id\": \"owner/slug\", ...}") from exc
    if not isinstance(ident, str) or not ident.strip("/").split("/")[-1]:
        raise PackagingError(f"{meta}: id {ident!r} is not 'owner/slug'")
    return ident.strip("/").split("/")[-1]


def parameters(*, slug: str, competition_data: str, time_limit: str, target: str, margin: str = "") -> tuple[Parameter, ...]:
    """The notebook's parameters with their defaults (each overridable by its environment variable)."""
    return (
        Parameter("BUNDLE_DIR", "NINEFIT_BUNDLE_DIR", f"{KAGGLE_INPUT}/{slug}", "the bundle dataset, attached read-only"),
        Parameter("DATA_DIR", "NINEFIT_DATA_DIR", competition_data, "the competition data (test table, sample submission)"),
        Parameter("OUT", "NINEFIT_OUT", f"{KAGGLE_WORKING}/submission.csv", "Kaggle scores this file"),
        Parameter("WORK_DIR", "NINEFIT_WORK_DIR", f"{KAGGLE_WORKING}/ninefit", "engine caches, checkpoints"),
        Parameter("TIME_LIMIT", "NINEFIT_TIME_LIMIT", time_limit, "the competition's run-time limit (9h, 540m, 1h30m)"),
        Parameter("TIME_MARGIN", "NINEFIT_TIME_MARGIN", margin, "safety margin before the limit; empty: the runtime's default"),
        Parameter("TARGET", "NINEFIT_TARGET", target, "hardware the notebook runs on (the accelerator you select)"),
    )


def _check_target(target: str) -> None:
    from packager.estimate.hardware import TARGETS

    known = [t for t in TARGETS if t != "local"]
    if target not in known:
        raise PackagingError(f"unknown notebook target {target!r}; expected one of {', '.join(known)}")


def build_notebook(
    bundle_dir: str | os.PathLike,
    *,
    slug: str | None = None,
    competition: str | None = None,
    competition_data: str | None = None,
    time_limit: str = "9h",
    target: str = "t4x2",
    margin: str = "",
) -> NotebookNode:
    """Build the submission notebook for a bundle.

    Args:
        bundle_dir: The bundle folder (``ninefit package`` output).
        slug: Kaggle dataset slug the bundle is uploaded as; None: from
            ``dataset-metadata.json``, else the folder name.
        competition: Competition slug; the data default is ``/kaggle/input/<competition>``.
        competition_data: The competition data folder in the notebook; overrides ``competition``.
        time_limit: The competition's run-time limit, e.g. ``"9h"``.
        target: Hardware target (``t4x2``, ``p100``, ``cpu``...).
        margin: Safety margin before the limit, e.g. ``"20m"``; empty: the runtime's default.

    Returns:
        A validated nbformat-4 notebook.

    Raises:
        BundleError: ``bundle_dir`` is not a bundle.
        PackagingError: a parameter is malformed.
    """
    from runtime.settings import parse_duration

    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist (expected the folder `ninefit package` wrote)")
    manifest = Manifest.load(root)
    slug = slug or bundle_slug(root)
    if "/" in slug or not slug.strip():
        raise PackagingError(f"dataset slug {slug!r}: expected the slug alone (the part after 'owner/')")
    for label, value in (("time limit", time_limit), ("margin", margin)):
        try:
            if value or label == "time limit":
                parse_duration(value)
        except ValueError as exc:
            raise PackagingError(f"notebook {label}: {exc}") from None
    _check_target(target)
    data = competition_data or f"{KAGGLE_INPUT}/{competition or COMPETITION_PLACEHOLDER}"
    params = parameters(slug=slug, competition_data=data, time_limit=time_limit, target=target, margin=margin)

    intro = _markdown("ninefit-intro", "\n".join([
        f"# ninefit submission: `{manifest.name}`",
        "",
        f"Runs the ensemble packaged by ninefit {manifest.ninefit_version} ({manifest.created or 'date unknown'}) "
        "offline and writes `submission.csv`, planning its work to end before the time limit.",
        "",
        *(f"- `{m.name}`: weight {m.weight:g}, variants {', '.join(v.name for v in m.variants)}" for m in manifest.members),
        "",
        f"Before submitting: turn **Internet off**, attach the bundle dataset (`{slug}`) and the competition data, "
        "and check the parameters below. Each parameter can also be set by the environment variable named on its "
        "line (`ninefit simulate` uses them to rehearse this notebook locally).",
    ]))
    params_cell = _code("ninefit-parameters", "\n".join([
        "import time",
        "",
        "NINEFIT_START = time.time()  # the runtime's deadline clock starts here: keep this first",
        "",
        "import os",
        "",
        *(p.line() for p in params),
    ]), tags=(PARAMETERS_TAG,))
    install_cell = _code("ninefit-install", "\n".join([
        _source(_find_input, _wheel_modules, _install_wheels),
        "",
        "",
        'BUNDLE_DIR = _find_input(BUNDLE_DIR, "manifest.json")',
        f"DATA_DIR = _find_input(DATA_DIR, {manifest.submission.sample!r})",
        "installed, skipped = _install_wheels(BUNDLE_DIR)",
    ]))
    run_cell = _code("ninefit-run", "\n".join([
        "import sys",
        "from pathlib import Path",
        "",
        _source(_check_runtime),
        "",
        "",
        "sys.path.insert(0, BUNDLE_DIR)  # the runtime travels in the bundle: no pip install",
        "import runtime",
        "import runtime.settings",
        "",
        "_check_runtime(runtime, BUNDLE_DIR)",
        "options = runtime.RunOptions(",
        "    work_dir=Path(WORK_DIR),",
        "    time_limit_s=runtime.settings.parse_duration(TIME_LIMIT),",
        "    start_time=NINEFIT_START,",
        "    margin_s=runtime.settings.parse_duration(TIME_MARGIN) if TIME_MARGIN else None,",
        ")",
        'print(f"target {TARGET}, limit {TIME_LIMIT}: {time.time() - NINEFIT_START:.0f} s used before the run")',
        "report = runtime.run(BUNDLE_DIR, DATA_DIR, OUT, options)",
    ]))
    report_cell = _code("ninefit-report", "\n".join([
        "print(report.table())",
        'print(f"run report: {Path(OUT).with_name(\'run_report.json\')}")',
    ]), tags=(REPORT_TAG,))
    nb = new_notebook(
        cells=[
            intro,
            params_cell,
            _markdown("ninefit-install-md", "## Inputs and offline install of the bundle's wheels"),
            install_cell,
            _markdown("ninefit-run-md", "## Run the ensemble before the deadline"),
            run_cell,
            report_cell,
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "ninefit": {"bundle": manifest.name, "slug": slug, "data": data, "time_limit": time_limit,
                        "target": target, "ninefit_version": manifest.ninefit_version},
        },
    )
    nbformat.validate(nb)
    return nb


def write_notebook(bundle_dir: str | os.PathLike, out: str | os.PathLike, **options: Any) -> Path:
    """Build the notebook for ``bundle_dir`` (options as :func:`build_notebook`) and write it to ``out``."""
    nb = build_notebook(bundle_dir, **options)
    text = nbformat.writes(nb)
    return atomic_write(out, text if text.endswith("\n") else text + "\n")  # as nbformat.write ends it


__all__ = ["DATASET_METADATA", "PARAMETERS_TAG", "REPORT_TAG", "Parameter", "build_notebook", "bundle_slug",
           "parameters", "write_notebook"]
