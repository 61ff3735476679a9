"""Rehearse a serving bundle as Kaggle's evaluation API reruns it: its notebook serving a gateway, offline.

For a bundle whose manifest has ``serve``, ``ninefit simulate`` lays out the
same Kaggle-shaped tree as for a file run (:mod:`.rehearsal`) and runs the
notebook as on the rerun (``KAGGLE_IS_COMPETITION_RERUN`` set, so
``serve()`` blocks), with ninefit's rehearsal gateway
(:mod:`packager.offline.gateway`) as a process of its own beside the kernel,
in the same network namespace (one loopback for both; the audit hook where
namespaces are not permitted). The gateway cuts the public test into the
competition's batches, holds every call but the first to the response
deadline and validates each answer; when it is done the kernel is killed, as
Kaggle tears the notebook down. The notebook's overall limit holds as in a
file run.

The server is the competition's when its package (``kaggle_evaluation/``) is
in the data folder, else ninefit's stand-in, which speaks the same protocol
(``NINEFIT_SERVE_STANDIN=1``; the verdict says which).

The verdict is the gateway's (``passed``, or Kaggle's error name:
``INVALID_SUBMISSION``, ``SERVER_RAISED_EXCEPTION``, ``SERVER_NEVER_STARTED``,
``GRPC_DEADLINE_EXCEEDED``...) unless the notebook itself failed first (a
time-out, an exception, the network). The summary adds what each call did,
from the gateway's latency record and the predictor's report: rows,
latency, deadline and slack, the members and rungs used, fallback rows, the
startup and first-call times.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat

from packager.offline.gateway import ErrorType, GatewaySpec
from packager.offline.gateway.run import LATENCY, RESULT, SUBMISSION
from packager.offline.notebook import build_notebook
from packager.offline.notebook_cells import bundle_slug
from packager.offline.rehearsal import (
    choose_isolation,
    foreign_note,
    foreign_wheels,
    guarded_environment,
    isolation_text,
    kaggle_paths,
    layout,
    load_notebook,
    parse_time_limit,
    remove_tree,
    run_executor,
)
from packager.offline.sandbox import read_attempts
from packager.offline.serve_notebook import REPORT_NAME, STANDIN_ENV
from packager.offline.serve_report import batch_table
from packager.offline.verdicts import (
    DAMAGED,
    DEAD_KERNEL_FAILURE,
    KAGGLE_FAILURES,
    PASSED,
    SimulationResult,
    judge_notebook,
)
from runtime.bundle import BundleDamage
from runtime.errors import DataError, PackagingError
from runtime.manifest import Manifest

#: What a serving rehearsal needs besides ninefit's own requirements (Kaggle's image has them all).
SERVE_MODULES = {"grpc": "grpcio", "google.protobuf": "protobuf", "polars": "polars", "pyarrow": "pyarrow"}
#: The gateway's error names a verdict can be (each fails the whole submission on Kaggle).
GATEWAY_VERDICTS = tuple(e.name for e in ErrorType)
_SUMMARY_NAME = REPORT_NAME.replace(".jsonl", ".summary.json")


@dataclass(frozen=True)
class ServeSimulationResult(SimulationResult):
    """A serving rehearsal's outcome: :class:`SimulationResult` (``submission`` is the kept
    ``submission.parquet``) and what the gateway and the predictor saw.

    Attributes:
        gateway: The gateway's ``result.json`` (Kaggle's keys, ninefit's figures under ``"ninefit"``); None
            when the gateway left none.
        calls: One entry per call, in the order sent: the gateway's record (``rows``, ``latency_s``,
            ``deadline_s``, ``slack_s``...) with the predictor's (``members``, ``fallback_rows``, ``load_s``)
            under ``"predictor"`` where it wrote one.
        serve_summary: The predictor's report summary (calls, rows, fallback rows, members' use).
        server: Which inference server the notebook ran.
        seed: The random batch order's seed (None: file order).
    """

    gateway: dict[str, Any] | None = None
    calls: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    serve_summary: dict[str, Any] | None = None
    server: str = ""
    seed: int | None = None

    def summary(self) -> str:
        """The verdict, its details, the startup, each call and the members' use, for a terminal."""
        return batch_table(self)


def simulate_serve(bundle: Path, data_dir: Path, manifest: Manifest, damage: BundleDamage, *,
                   time_limit: str | float = "9h", notebook: str | os.PathLike | None = None,
                   keep: str | os.PathLike | None = None, competition: str | None = None, target: str | None = None,
                   isolation: str = "auto", env: Mapping[str, str] | None = None,
                   seed: int | None = None) -> ServeSimulationResult:
    """Rehearse a serving bundle (arguments as :func:`packager.offline.simulate.simulate`, which calls this).

    Raises:
        NinefitError: The data lacks a file the gateway reads, a module the rehearsal needs is missing, or the
            simulator itself failed.
    """
    _check_modules()
    _check_data(data_dir, manifest)
    limit_s, time_limit = parse_time_limit(time_limit)
    use_netns, reason = choose_isolation(isolation)
    slug, comp = bundle_slug(bundle), competition or data_dir.resolve().name
    seed = (time.time_ns() % 2**31) if seed is None else seed
    root = Path(tempfile.mkdtemp(prefix="ninefit-sim-"))
    try:
        tree = layout(root, bundle, data_dir, slug, comp)
        nb = load_notebook(notebook) if notebook is not None else \
            build_notebook(bundle, slug=slug, competition=comp, time_limit=str(time_limit))
        nbformat.write(nb, str(root / "notebook.ipynb"))
        server, standin = _server(manifest, data_dir)
        netlog, working, gw_dir = root / "network.jsonl", tree["working"], root / "gateway"
        rerun = {"KAGGLE_IS_COMPETITION_RERUN": "1", "NINEFIT_SERVE_REPORT": str(working / REPORT_NAME),
                 **({STANDIN_ENV: "1"} if standin else {})}
        kernel_env = guarded_environment(root, tree, str(time_limit), target, use_netns, netlog, {**rerun, **(env or {})})
        spec = GatewaySpec.from_manifest(manifest, tree["data"], gw_dir, seed=seed)
        outcome, wall = run_executor(root, tree, kernel_env, limit_s, use_netns, extra={"gateway": _gateway(root, spec)})
        executed = nbformat.read(root / "executed.ipynb", as_version=4) if (root / "executed.ipynb").is_file() else nb
        attempts = tuple(read_attempts(netlog))
        result = _json(gw_dir / RESULT)
        if result is None and outcome.get("status") == "served":  # the gateway itself failed (not the notebook)
            tail = (root / "gateway.log").read_text(errors="replace")[-3000:] if (root / "gateway.log").is_file() else ""
            raise PackagingError(f"the rehearsal gateway ended without writing its result; its log:\n{tail}")
        calls = _calls(_lines(gw_dir / LATENCY), _lines(working / REPORT_NAME))
        verdict, details, failure = _judge(outcome, wall, attempts, result, limit_s)
        details = "\n".join(filter(None, [details, foreign_note(foreign_wheels(bundle))]))
        if damage:
            verdict, details = DAMAGED, "\n".join(filter(None, [
                f"{len(damage.files)} of {damage.checked} bundle file(s) fail their checksum:",
                *(f"  {line}" for line in damage.lines()), f"the notebook's own verdict: {verdict}", details]))
        kept_nb, kept_sub = _keep(Path(keep), executed, root, working, gw_dir) if keep is not None else (None, None)
        paths = functools.partial(kaggle_paths, str(root / "kaggle"))
        return ServeSimulationResult(
            verdict=verdict, kaggle_failure=failure, details=paths(details),
            seconds=float(outcome.get("seconds", wall["seconds"])),
            isolation=isolation_text(use_netns, reason, outcome.get("note", "")), submission=kept_sub,
            notebook=kept_nb, network_attempts=attempts, gateway=result, calls=calls,
            serve_summary=_json(working / _SUMMARY_NAME), server=server,
            seed=seed if manifest.serve is not None and manifest.serve.order == "random" else None)
    finally:
        remove_tree(root)


def _check_modules() -> None:
    missing = [dist for module, dist in SERVE_MODULES.items() if not _importable(module)]
    if missing:
        raise PackagingError(f"rehearsing the evaluation API needs {', '.join(missing)} (the gateway speaks gRPC and "
                             "sends polars frames; Kaggle's image has them): pip install \"ninefit[serve]\"")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def _check_data(data_dir: Path, manifest: Manifest) -> None:
    """The public files the gateway reads are in the data folder."""
    s = manifest.serve
    assert s is not None, "rehearsing the evaluation API is for a bundle with a [serve] table"
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist (expected the competition's public data: "
                        f"{manifest.data.test})")
    needed = [("the public test", manifest.data.test)]
    if s.sample:
        needed.append((f"predict's argument {s.sample!r} (the sample submission)", manifest.submission.sample))
    needed += [(f"predict's argument {arg!r}", name) for arg, name in s.files]
    for what, name in needed:
        if not (data_dir / name).is_file():
            raise DataError(f"{data_dir / name} not found: the rehearsal gateway sends {what} from it")


def _server(manifest: Manifest, data_dir: Path) -> tuple[str, bool]:
    """(which server the notebook runs, whether the rehearsal asks for ninefit's stand-in)."""
    assert manifest.serve is not None, "rehearsing the evaluation API is for a bundle with a [serve] table"
    name = manifest.serve.server
    if not name:
        return "ninefit's stand-in (the bundle names no competition server)", False
    top = name.partition(":")[0].split(".")[0]
    if (data_dir / top).is_dir() or (data_dir / f"{top}.py").is_file():
        return f"the competition's {name} (from {top}/ in the data)", False
    return (f"ninefit's stand-in, which speaks the same protocol: the data has no {top}/ for {name} "
            "(attach the competition's data to rehearse with its own server)"), True


def _gateway(root: Path, spec: GatewaySpec) -> dict[str, Any]:
    """How the executor starts the gateway: this interpreter, this packager, the spec written beside it."""
    Path(spec.out_dir).mkdir()
    (root / "gateway.json").write_text(spec.to_json(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NINEFIT_", "KAGGLE_IS_COMPETITION_RERUN"))}
    here = str(Path(__file__).resolve().parents[2])  # the repo root: the gateway imports this very packager
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"command": [sys.executable, "-m", "packager.offline.gateway", str(root / "gateway.json")],
            "cwd": spec.out_dir, "env": env, "log": str(root / "gateway.log"), "pidfile": str(root / "gateway.pid")}


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut short by the kill
                continue
    return out


def _calls(latency: list[dict[str, Any]], predictor: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The gateway's record of each call, with the predictor's record of the same call under ``predictor``."""
    by_batch = {r.get("batch"): r for r in predictor}
    return tuple({**rec, "predictor": by_batch.get(rec["batch"])} for rec in latency)


def _judge(outcome: Mapping[str, Any], wall: Mapping[str, Any], attempts: tuple[str, ...],
           result: Mapping[str, Any] | None, limit_s: float) -> tuple[str, str, str | None]:
    """(verdict, details, what Kaggle would report) from the executor's outcome and the gateway's result."""
    said = judge_notebook(outcome, wall, attempts, limit_s)
    if said is not None:
        verdict, details = said
        failure = DEAD_KERNEL_FAILURE if outcome.get("status") == "dead" else KAGGLE_FAILURES[verdict]
        return verdict, details, failure
    if outcome.get("status") != "served":  # the notebook ran to its end, the gateway still waiting or serving
        answered = ((result or {}).get("ninefit") or {}).get("answered") or 0
        name = (ErrorType.SERVER_CONNECTION_FAILED if answered else ErrorType.SERVER_NEVER_STARTED).name
        return name, ("the notebook ran to its end while the gateway was " + (
            f"serving (after {answered} call(s))" if answered else "waiting for the server") + ": on the rerun "
            "(KAGGLE_IS_COMPETITION_RERUN set) server.serve() must block, and nothing after it runs"), _failure(name)
    tried = f"the kernel tried to reach: {', '.join(sorted(set(attempts))[:3])}" if attempts else ""
    result = result or {}
    if result.get("Succeeded"):
        return PASSED, f"note: {tried}, and the notebook carried on" if tried else "", None
    name = str(result.get("ErrorName", "UNSPECIFIED"))
    return name, "\n".join(filter(None, [str(result.get("ErrorDetails", "")), tried])), _failure(name)


def _failure(name: str) -> str:
    return f"the submission fails with the gateway's {name}"


def _keep(dest: Path, executed: nbformat.NotebookNode, root: Path, working: Path,
          gw_dir: Path) -> tuple[Path, Path | None]:
    """Copy the executed notebook, the gateway's outputs, the predictor's report and both logs to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, str(dest / "notebook.ipynb"))
    sources = {SUBMISSION: gw_dir, RESULT: gw_dir, LATENCY: gw_dir, REPORT_NAME: working, _SUMMARY_NAME: working}
    for name, folder in sources.items():
        (dest / name).unlink(missing_ok=True)  # never leave a previous run's file behind
        if (folder / name).is_file():
            shutil.copyfile(folder / name, dest / name)
    for log, name in ((root / "worker.log", "simulate.log"), (root / "gateway.log", "gateway.log")):
        if log.is_file():
            shutil.copyfile(log, dest / name)
    return dest / "notebook.ipynb", (dest / SUBMISSION if (dest / SUBMISSION).is_file() else None)


__all__ = ["GATEWAY_VERDICTS", "SERVE_MODULES", "ServeSimulationResult", "simulate_serve"]
