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
   bundle's ``wheels/`` with ``pip install --no-index --find-links``, each
   wheel whose distribution the image lacks at that version
   (``importlib.metadata``, never "does a module of that name import"),
   first removing an installed distribution of another name that is the same
   module (the CPU ``onnxruntime`` under ``onnxruntime-gpu``).
3. *Run*: puts the bundle first on ``sys.path``, imports the runtime
   vendored there and runs it with the deadline ``NINEFIT_START + TIME_LIMIT``.
4. *Report*: prints the run report (its JSON is ``run_report.json`` next to
   the submission).

Steps 1 and 2 and the runtime check of step 3 are shared with the evaluation
API's notebook (:mod:`.notebook_cells`, where their code is written as real,
tested functions). A bundle whose manifest has ``serve`` gets that notebook
instead (:mod:`.serve_notebook`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_notebook

from packager.offline.dataset import METADATA_FILENAME
from packager.offline.notebook_cells import (
    COMPETITION_PLACEHOLDER,
    KAGGLE_INPUT,
    KAGGLE_WORKING,
    PARAMETERS_TAG,
    Parameter,
    bundle_slug,
    check_runtime_source,
    check_target,
    checked_durations,
    code_cell,
    install_cell,
    markdown_cell,
    packaged_target,
    parameters_cell,
)
from packager.offline.serve_notebook import serve_notebook
from runtime.errors import PackagingError
from runtime.fileio import atomic_write
from runtime.manifest import Manifest

#: Kaggle's dataset description, written into the bundle by ``packager.offline.dataset``.
DATASET_METADATA = METADATA_FILENAME
#: Tag of the cell that prints the run report (``ninefit simulate`` reads its output).
REPORT_TAG = "ninefit-report"


# -- building the notebook -----------------------------------------------------------------------


def parameters(*, slug: str, competition_data: str, time_limit: str, target: str, margin: str = "") -> tuple[Parameter, ...]:
    """The notebook's parameters with their defaults (each overridable by its environment variable)."""
    return (
        Parameter("BUNDLE_DIR", "NINEFIT_BUNDLE_DIR", f"{KAGGLE_INPUT}/{slug}", "the bundle dataset, attached read-only"),
        Parameter("DATA_DIR", "NINEFIT_DATA_DIR", competition_data, "the competition data (test table, sample submission)"),
        Parameter("OUT", "NINEFIT_OUT", f"{KAGGLE_WORKING}/submission.csv", "Kaggle scores this file"),
        Parameter("WORK_DIR", "NINEFIT_WORK_DIR", f"{KAGGLE_WORKING}/ninefit", "engine caches, checkpoints"),
        Parameter("TIME_LIMIT", "NINEFIT_TIME_LIMIT", time_limit,
                  "the competition's run-time limit, with its unit (9h, 540m, 1h30m)"),
        Parameter("TIME_MARGIN", "NINEFIT_TIME_MARGIN", margin, "safety margin before the limit; empty: the runtime's default"),
        Parameter("TARGET", "NINEFIT_TARGET", target, "hardware the notebook runs on (the accelerator you select)"),
    )


def build_notebook(
    bundle_dir: str | os.PathLike,
    *,
    slug: str | None = None,
    competition: str | None = None,
    competition_data: str | None = None,
    time_limit: str = "9h",
    target: str | None = None,
    margin: str = "",
) -> NotebookNode:
    """Build the submission notebook for a bundle: the file run's, or, for a bundle with ``serve``, the
    evaluation API's (:mod:`packager.offline.serve_notebook`).

    Args:
        bundle_dir: The bundle folder (``ninefit package`` output).
        slug: Kaggle dataset slug the bundle is uploaded as; None: from
            ``dataset-metadata.json``, else the folder name.
        competition: Competition slug; the data default is ``/kaggle/input/<competition>``.
        competition_data: The competition data folder in the notebook; overrides ``competition``.
        time_limit: The competition's run-time limit, e.g. ``"9h"``.
        target: Hardware target (``t4x2``, ``p100``, ``cpu``...); None: the one the bundle was
            packaged for (its manifest's), else ``t4x2``.
        margin: Safety margin before the limit, e.g. ``"20m"``; empty: the runtime's default.

    Returns:
        A validated nbformat-4 notebook.

    Raises:
        BundleError: ``bundle_dir`` is not a bundle.
        PackagingError: a parameter is malformed.
    """
    root = Path(bundle_dir)
    manifest = Manifest.load(root)  # no folder there: the error says what is (a spec?) and how to make one
    slug = slug or bundle_slug(root)
    time_limit = checked_durations(slug, time_limit, margin)
    target = target or packaged_target(manifest)
    check_target(target)
    data = competition_data or f"{KAGGLE_INPUT}/{competition or COMPETITION_PLACEHOLDER}"
    if manifest.serve is not None:  # an evaluation-API bundle: its notebook serves the competition's gateway
        if margin:
            raise PackagingError(f"notebook margin {margin!r}: a serving bundle keeps the runtime's margin before the "
                                 "time limit and before each response deadline; leave the margin out")
        nb = serve_notebook(manifest, slug=slug, data=data, time_limit=time_limit, target=target)
        nbformat.validate(nb)
        return nb
    params = parameters(slug=slug, competition_data=data, time_limit=time_limit, target=target, margin=margin)
    nb = new_notebook(
        cells=[
            _intro_cell(manifest, slug),
            parameters_cell(params),
            markdown_cell("ninefit-install-md", "## Inputs and offline install of the bundle's wheels"),
            _install_cell(manifest),
            markdown_cell("ninefit-run-md", "## Run the ensemble before the deadline"),
            _run_cell(),
            _report_cell(),
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


def _intro_cell(manifest: Manifest, slug: str) -> NotebookNode:
    return markdown_cell("ninefit-intro", "\n".join([
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


def _install_cell(manifest: Manifest) -> NotebookNode:
    return install_cell(f"DATA_DIR = _find_input(DATA_DIR, {manifest.submission.sample!r})")


def _run_cell() -> NotebookNode:
    return code_cell("ninefit-run", "\n".join([
        "import sys",
        "from pathlib import Path",
        "",
        check_runtime_source(),
        "",
        "",
        "sys.path.insert(0, BUNDLE_DIR)  # the runtime travels in the bundle: no pip install",
        "import runtime",
        "import runtime.settings",
        "",
        "_check_runtime(runtime, BUNDLE_DIR)",
        "options = runtime.RunOptions(",
        "    work_dir=Path(WORK_DIR),",
        '    report_path=Path(OUT).with_name("run_report.json"),',
        "    time_limit_s=runtime.settings.parse_duration(TIME_LIMIT),",
        "    start_time=NINEFIT_START,",
        "    margin_s=runtime.settings.parse_duration(TIME_MARGIN) if TIME_MARGIN else None,",
        ")",
        'print(f"target {TARGET}, limit {TIME_LIMIT}: {time.time() - NINEFIT_START:.0f} s used before the run")',
        "report = runtime.run(BUNDLE_DIR, DATA_DIR, OUT, options)",
    ]))


def _report_cell() -> NotebookNode:
    return code_cell("ninefit-report", "\n".join([
        "print(report.table())",
        'print(f"run report: {Path(OUT).with_name(\'run_report.json\')}")',
    ]), tags=(REPORT_TAG,))


def write_notebook(bundle_dir: str | os.PathLike, out: str | os.PathLike, **options: Any) -> Path:
    """Build the notebook for ``bundle_dir`` (options as :func:`build_notebook`) and write it to ``out``."""
    nb = build_notebook(bundle_dir, **options)
    text = nbformat.writes(nb)
    return atomic_write(out, text if text.endswith("\n") else text + "\n",  # as nbformat.write ends it
                        what="the notebook", remedy="Give -o a path in a writable folder on a disk with room.")


__all__ = ["DATASET_METADATA", "PARAMETERS_TAG", "REPORT_TAG", "Parameter", "build_notebook", "bundle_slug",
           "parameters", "write_notebook"]
