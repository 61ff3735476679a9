"""The evaluation-API notebook: a bundle's budgeted ``predict`` served to the competition's gateway.

A bundle whose manifest has ``serve`` (the spec's ``[serve]`` table) answers
Kaggle's gateway batch by batch instead of writing ``submission.csv``. Its
notebook, built by :func:`packager.offline.notebook.build_notebook` through
:func:`serve_notebook`, has three code cells:

1. *Parameters* (shared with the file-run notebook, :mod:`.notebook_cells`):
   ``NINEFIT_START`` first, then the bundle and competition folders, the time
   limit, the target, the backend and the serving report's path, each
   overridable by its ``NINEFIT_*`` variable.
2. *Inputs and wheelhouse* (shared): the bundle and the competition's folder
   found, the bundle's wheels installed offline.
3. *Serve*: imports the runtime vendored in the bundle, builds
   ``runtime.serve.Predictor`` (cheap: the members load on the gateway's
   first call, which has no deadline), defines the plain module-level
   ``def predict(*args, **kwargs)`` Kaggle's server requires, imports the
   competition's server class from ``[serve] server`` (the competition's data
   folder on ``sys.path``, as its demo notebook does) and starts it:
   ``server.serve()`` on the rerun (``KAGGLE_IS_COMPETITION_RERUN`` set: it
   blocks, and nothing after it runs), else ``server.run_local_gateway(...)``
   on ``[serve] gateway_paths``. A generative bundle (``manifest.generate``)
   builds :class:`runtime.generate.serve.GenerationPredictor` instead: each
   row of a call (one item per call, AIMO's shape) answered by the causal LM
   within the call's deadline and its share of the time bank.

ninefit's stand-in server (:class:`runtime.serve.server.InferenceServer`) is
used only where the bundle names no server, or where ``ninefit simulate``
asks for it (``NINEFIT_SERVE_STANDIN=1``); a competition module that does not
import fails the cell, naming the module and the folder searched.
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbformat.v4 import new_notebook

from packager.offline.notebook_cells import (
    KAGGLE_INPUT,
    KAGGLE_WORKING,
    Parameter,
    check_runtime_source,
    code_cell,
    install_cell,
    markdown_cell,
    parameters_cell,
    source_of,
)
from runtime.manifest import Manifest

#: Tag of the cell that starts the server.
SERVE_TAG = "ninefit-serve"
#: Set (to "1") by ``ninefit simulate``: the notebook serves with ninefit's stand-in server.
STANDIN_ENV = "NINEFIT_SERVE_STANDIN"
#: Where the predictor's per-call report goes (a summary is kept beside it).
REPORT_NAME = "serve_report.jsonl"

# -- code that runs inside the notebook -----------------------------------------------------------


def _server_class(server: str, data_dir: str):
    """The competition's inference server class (``"module:Class"``, imported from its data folder), or
    ninefit's stand-in where the bundle names none or ``ninefit simulate`` asks for it."""
    import importlib
    import os
    import sys

    if not server or os.environ.get("NINEFIT_SERVE_STANDIN") == "1":
        from runtime.serve.server import InferenceServer

        why = ("the bundle names no competition server" if not server
               else "NINEFIT_SERVE_STANDIN=1: the rehearsal of `ninefit simulate`")
        print(f"inference server: ninefit's stand-in runtime.serve.server.InferenceServer ({why})")
        return InferenceServer
    module_name, _, class_name = server.partition(":")
    if data_dir not in sys.path:
        sys.path.append(data_dir)  # the competition ships its kaggle_evaluation package in its data
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        listing = ", ".join(sorted(os.listdir(data_dir))) if os.path.isdir(data_dir) else "it does not exist"
        raise ImportError(
            f"cannot import {module_name!r}, the competition's inference server module ([serve] server = {server!r}), "
            f"from {data_dir} ({type(exc).__name__}: {exc}). Attach the competition's data, which ships "
            f"{module_name.split('.')[0]}/, and check DATA_DIR. {data_dir} holds: {listing}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        names = sorted(n for n in dir(module) if n[:1].isupper())
        raise ImportError(f"{module_name} ({module.__file__}) has no class {class_name!r}; it has: {', '.join(names)}")
    print(f"inference server: {module_name}.{class_name} from {module.__file__}")
    return cls


def _local_gateway(server, data_dir: str, paths) -> None:
    """Off the rerun: the competition's local gateway on its public data (ninefit's stand-in has none)."""
    import os

    if not hasattr(server, "run_local_gateway"):
        print("ninefit's stand-in server has no local gateway: rehearse the rerun with "
              "`ninefit simulate BUNDLE --data DIR` (batches, response deadlines, validation)")
        return
    server.run_local_gateway(tuple(os.path.join(data_dir, p) for p in paths) if paths else None)
    print(f"the local gateway finished; it wrote submission.parquet in {os.getcwd()}")


# -- building the notebook ------------------------------------------------------------------------


def serve_parameters(*, slug: str, competition_data: str, time_limit: str, target: str) -> tuple[Parameter, ...]:
    """The serving notebook's parameters with their defaults (each overridable by its environment variable)."""
    return (
        Parameter("BUNDLE_DIR", "NINEFIT_BUNDLE_DIR", f"{KAGGLE_INPUT}/{slug}", "the bundle dataset, attached read-only"),
        Parameter("DATA_DIR", "NINEFIT_DATA_DIR", competition_data,
                  "the competition data (its kaggle_evaluation package, the public test)"),
        Parameter("TIME_LIMIT", "NINEFIT_TIME_LIMIT", time_limit,
                  "the competition's run-time limit, with its unit (9h, 540m, 1h30m)"),
        Parameter("TARGET", "NINEFIT_TARGET", target, "hardware the notebook runs on (the accelerator you select)"),
        Parameter("BACKEND", "NINEFIT_BACKEND", "", "inference backend; empty: the runtime's fallback chain"),
        Parameter("REPORT", "NINEFIT_SERVE_REPORT", f"{KAGGLE_WORKING}/{REPORT_NAME}",
                  "the per-call report, written as the calls come (a summary beside it)"),
    )


def serve_notebook(manifest: Manifest, *, slug: str, data: str, time_limit: str, target: str) -> NotebookNode:
    """The evaluation-API notebook of a bundle with ``serve`` (arguments checked by
    :func:`packager.offline.notebook.build_notebook`, which calls this)."""
    spec = manifest.serve
    assert spec is not None, "serve_notebook is for a bundle with a [serve] table"
    params = serve_parameters(slug=slug, competition_data=data, time_limit=time_limit, target=target)
    marker = repr(manifest.data.test)  # the stand-in needs no competition package: the public test marks the folder
    if spec.server:
        marker = (f"{manifest.data.test!r} if os.environ.get({STANDIN_ENV!r}) == '1' else "
                  f"{spec.server.partition(':')[0].split('.')[0]!r}")
    nb = new_notebook(
        cells=[
            _intro_cell(manifest, slug),
            parameters_cell(params),
            markdown_cell("ninefit-install-md", "## Inputs and offline install of the bundle's wheels"),
            install_cell(f"DATA_DIR = _find_input(DATA_DIR, {marker})"),
            markdown_cell("ninefit-serve-md", "## Serve the gateway: `predict` for each batch, to the deadline"),
            _serve_cell(generative=manifest.generate is not None),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "ninefit": {"bundle": manifest.name, "slug": slug, "data": data, "time_limit": time_limit,
                        "target": target, "ninefit_version": manifest.ninefit_version, "serve": True},
        },
    )
    return nb


def _intro_cell(manifest: Manifest, slug: str) -> NotebookNode:
    spec = manifest.serve
    assert spec is not None, "serve_notebook is for a bundle with a [serve] table"
    server = f"`{spec.server}`" if spec.server else "ninefit's stand-in (the bundle names no competition server)"
    to_come = (f"{spec.expected_rows} rows" if spec.expected_rows else
               f"{spec.expected_batches} batches" if spec.expected_batches else "an unknown number of batches")
    return markdown_cell("ninefit-intro", "\n".join([
        f"# ninefit evaluation-API submission: `{manifest.name}`",
        "",
        f"Serves the ensemble packaged by ninefit {manifest.ninefit_version} ({manifest.created or 'date unknown'}) "
        "to the competition's gateway, batch by batch: each call answers with the most valuable members that fit "
        f"its share of the time and its response deadline ({spec.response_timeout_s:g} s; the first call has none: "
        f"the members load there), pacing the time limit over {to_come}.",
        "",
        *(f"- `{m.name}`: weight {m.weight:g}, variants {', '.join(v.name for v in m.variants)}" for m in manifest.members),
        *([f"- `{manifest.generate.name}`: a causal language model ({manifest.generate.engine} engine), each row of a "
           f"call one item: up to {manifest.generate.samples} sample(s) voted, its share of the time banked or "
           f"borrowed, the answer in `{manifest.generate.answer_column}` ({manifest.generate.fallback_answer!r} "
           "where nothing is extracted)"] if manifest.generate is not None else []),
        "",
        f"Inference server: {server}. On Kaggle's rerun (`KAGGLE_IS_COMPETITION_RERUN` set) `server.serve()` "
        "blocks until the gateway is done and nothing after it runs; otherwise the competition's local gateway "
        f"runs on its public data ({', '.join(f'`{p}`' for p in spec.gateway_paths) or 'its own default paths'}).",
        "",
        f"Before submitting: turn **Internet off**, attach the bundle dataset (`{slug}`) and the competition data, "
        "and check the parameters below (each can also be set by the environment variable named on its line). "
        "Rehearse the rerun offline with `ninefit simulate`.",
    ]))


def _predictor_lines(generative: bool) -> list[str]:
    """The cell's lines that build the predictor: the ensemble's, or a causal LM's (one item per row)."""
    if generative:
        return [
            "import runtime.generate.serve",
            "predictor = runtime.generate.serve.GenerationPredictor(",
            "    BUNDLE_DIR,",
            "    time_limit_s=runtime.settings.parse_duration(TIME_LIMIT),",
            "    start_time=NINEFIT_START,",
            "    report_path=Path(REPORT),",
            ")  # cheap: the model loads on the gateway's first call, which has no deadline",
        ]
    return [
        "predictor = runtime.serve.Predictor(BUNDLE_DIR, runtime.serve.ServeOptions.from_spec(",
        "    SERVE,",
        "    time_limit_s=runtime.settings.parse_duration(TIME_LIMIT),",
        "    start_time=NINEFIT_START,",
        "    report_path=Path(REPORT),",
        "    backend=BACKEND or None,",
        "))  # cheap: the bundle opens and the members load on the gateway's first call, which has no deadline",
    ]


def _serve_cell(generative: bool = False) -> NotebookNode:
    return code_cell("ninefit-serve", "\n".join([
        "import sys",
        "from pathlib import Path",
        "",
        check_runtime_source(),
        "",
        "",
        source_of(_server_class, _local_gateway),
        "",
        "",
        "sys.path.insert(0, BUNDLE_DIR)  # the runtime travels in the bundle: no pip install",
        "import runtime",
        "import runtime.serve",
        "import runtime.settings",
        "",
        "_check_runtime(runtime, BUNDLE_DIR)",
        "SERVE = runtime.Manifest.load(BUNDLE_DIR).serve  # the bundle's [serve] table",
        "if SERVE is None:",
        '    raise RuntimeError(f"the bundle in {BUNDLE_DIR} has no [serve] table: it writes submission.csv; "',
        '                       "write its notebook again with `ninefit notebook`")',
        *_predictor_lines(generative),
        "",
        "",
        "def predict(*args, **kwargs):",
        '    """The gateway calls this for each batch (Kaggle\'s server takes a plain function named predict)."""',
        "    return predictor(*args, **kwargs)",
        "",
        "",
        "server = _server_class(SERVE.server, DATA_DIR)(predict)",
        'print(f"target {TARGET}, limit {TIME_LIMIT}: the server starts {time.time() - NINEFIT_START:.1f} s after the "',
        '      f"notebook\'s start (the gateway waits {SERVE.startup_limit_s:g} s at most)")',
        'if os.getenv("KAGGLE_IS_COMPETITION_RERUN"):',
        "    server.serve()  # blocks until the gateway is done: nothing after this line runs on the rerun",
        "else:",
        "    _local_gateway(server, DATA_DIR, SERVE.gateway_paths)",
        "    predictor.close()",
        '    print(f"serving report: {REPORT}")',
    ]), tags=(SERVE_TAG,))


__all__ = ["REPORT_NAME", "SERVE_TAG", "STANDIN_ENV", "serve_notebook", "serve_parameters"]
