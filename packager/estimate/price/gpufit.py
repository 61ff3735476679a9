"""The GPU model's efficiencies fitted to the published figures, checked on the ones held out.

Inputs: the table (:mod:`.figures`) and what each row's model does per call
(``packager/data/gpu_figure_costs.json``: every row's model built at random weights, exported to ONNX
and counted by ``benchmarks/gpu_estimate.py --write-costs``; building them needs torch, so the counts
are kept). The fit (:func:`fit`) is a ridge regression in log space (Levenberg-Marquardt over the
parameters of :class:`~packager.estimate.price.gpumodel.Layout`): each published seconds-per-batch is
matched within ``NOISE`` (0.1 in log: a tenth) and each parameter is pulled to its prior, so an
interaction (a GPU's efficiency with one backend, a precision's with one kind of work) moves only as
far as the figures show it. The rows marked ``holdout`` are left out of the fit.

The band (:class:`Bands`) comes from a 10-fold cross-validation over the fitted rows: each row predicted
by a fit without it, the 95th percentile of the misses kept per basis: ``seen`` (the fit keeps figures of
the row's backend at its precision) and ``unseen`` (it keeps none: the widest misses). The held-out rows
then check it, unseen.

The result is written to ``packager/data/gpu_fit.json`` (``python -m packager.estimate.price.gpufit``
regenerates it; a test checks that it reproduces) and read at estimate time (:func:`current_fit`); a
user's own GPU runs (``ninefit estimate --calibrate``) are added to the fit as observations of source
``observed`` and the fit is redone from the stored parameters (a fraction of a second).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from packager.estimate.price.figures import TABLE, Figure, FigureTable, load_figures
from packager.estimate.price.gpumodel import Case, Design, GraphWork, Layout
from packager.estimate.price.gpuspec import DEVICES, device_for_figure
from runtime.errors import DataError
from runtime.fileio import atomic_write

DATA = TABLE.parent
COSTS = DATA / "gpu_figure_costs.json"
FIT = DATA / "gpu_fit.json"
FIT_VERSION = 1
#: How closely a published figure is matched (log space): a tenth.
NOISE = 0.1
#: A user's own run is matched more closely: it is the very environment the estimate is for.
OBSERVED_NOISE = 0.05
OBSERVED = "observed"
FOLDS = 10


def backend_of(figure: Figure) -> str:
    """The backend as the model tells them apart: MLPerf's TensorRT harness is not a demo's TensorRT."""
    return "TensorRT (MLPerf harness)" if figure.backend_detail.startswith("NVIDIA MLPerf") else figure.backend


def unit_of(figure: Figure) -> str:
    """The unit of a row whose published sample is not the rebuilt graph's item ("" when it is)."""
    if figure.rebuild == "approximate" and "MLPerf" in figure.backend_detail:
        return "mlperf-bert-sample" if figure.kind == "transformer_encoder" else "mlperf-3dunet-case"
    return ""


@dataclass(frozen=True)
class Costs:
    """What each row's model does per call (:class:`GraphWork`), its model's key and weight signature."""

    work: dict[str, GraphWork]
    model: dict[str, str]
    signatures: dict[str, dict[str, float]]
    digest: str

    def case(self, figure: Figure) -> Case:
        return Case(self.work[figure.id], device_for_figure(figure.gpu, figure.gpu_variant), figure.precision,
                    backend_of(figure), figure.gpu, figure.source, unit_of(figure))


@lru_cache(maxsize=4)
def load_costs(path: str | Path | None = None) -> Costs:
    """Read ``gpu_figure_costs.json`` (once); :class:`DataError` naming what is wrong if it is not that file."""
    path = Path(path) if path is not None else COSTS
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
        graphs = data["graphs"]
        work = {fid: GraphWork.from_json(graphs[entry["graph"]]["work"]) for fid, entry in data["figures"].items()}
        model = {fid: str(graphs[entry["graph"]]["model"]) for fid, entry in data["figures"].items()}
        signatures = {k: {s: float(b) for s, b in v.items()} for k, v in data["signatures"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not the per-figure graph counts ({exc!r}); expected the JSON "
                        "`benchmarks/gpu_estimate.py --write-costs` writes") from exc
    return Costs(work, model, signatures, hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class Bands:
    """Log half-widths of the band: the 95th percentile of the cross-validated misses, per basis.

    ``seen``: the table has figures of the backend at the compute precision (on some GPU) among the rows the
    fit keeps; ``unseen``: it has none, and the backend's efficiency at that precision is extrapolated from its
    other precisions (the larger miss: a backend's gain from a precision is the least shared thing).
    """

    seen: float
    unseen: float
    seen_rows: int = 0
    unseen_rows: int = 0
    quantile: float = 0.95

    def to_json(self) -> dict[str, float]:
        return {"seen": self.seen, "unseen": self.unseen, "seen_rows": self.seen_rows,
                "unseen_rows": self.unseen_rows, "quantile": self.quantile}


@dataclass(frozen=True)
class Observation:
    """A user's own GPU run of one member: its graph's work per call, where and how it ran, and its seconds."""

    work: GraphWork
    device: str  # gpuspec DEVICES key
    family: str
    precision: str
    backend: str
    seconds: float
    member: str = ""

    def to_json(self) -> dict[str, object]:
        return {"work": self.work.to_json(), "device": self.device, "family": self.family,
                "precision": self.precision, "backend": self.backend, "seconds": self.seconds, "member": self.member}

    @classmethod
    def from_json(cls, data: dict) -> Observation:
        return cls(GraphWork.from_json(data["work"]), str(data["device"]), str(data["family"]),
                   str(data["precision"]), str(data["backend"]), float(data["seconds"]), str(data.get("member", "")))

    def case(self) -> Case:
        return Case(self.work, DEVICES[self.device], self.precision, self.backend, self.family, OBSERVED)


@dataclass
class Fit:
    """Fitted parameters, the rows they were fitted on and how well they match each published figure."""

    layout: Layout
    theta: np.ndarray
    fitted: tuple[str, ...]
    residuals: dict[str, float] = field(default_factory=dict)  # figure id -> log(published / estimated throughput)
    bands: Bands = field(default_factory=lambda: Bands(0.0, 0.0))
    inputs: str = ""
    observations: int = 0

    def seconds(self, cases: list[Case]) -> np.ndarray:
        return Design(self.layout, cases).seconds(self.theta)[0]

    def parameter(self, *name: str) -> float:
        return float(self.theta[self.layout.index[tuple(name)]])


def solve(layout: Layout, cases: list[Case], target_log_s: np.ndarray, noise: np.ndarray,
          theta: np.ndarray | None = None, iterations: int = 200) -> np.ndarray:
    """Ridge fit: minimise ``sum(((log t - y) / noise)^2) + sum(((theta - mean) / sd)^2)``, Levenberg-Marquardt."""
    design = Design(layout, cases)
    th = layout.mean.copy() if theta is None else np.array(theta, dtype=float)
    prior_w = 1.0 / layout.sd

    def cost(t: np.ndarray) -> float:
        r = (np.log(design.seconds(t)[0]) - target_log_s) / noise
        p = (t - layout.mean) * prior_w
        return float(r @ r + p @ p)

    current, damping = cost(th), 1e-2
    for _ in range(iterations):
        seconds, jac = design.seconds(th, jacobian=True)
        r = (np.log(seconds) - target_log_s) / noise
        j = jac / noise[:, None]
        normal = j.T @ j + np.diag(prior_w ** 2)
        grad = j.T @ r + (th - layout.mean) * prior_w ** 2
        while True:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), -grad)
            trial = cost(th + step)
            if trial < current:
                th, improved = th + step, current - trial
                current, damping = trial, max(damping / 3, 1e-9)
                break
            damping *= 4
            if damping > 1e10:
                return th
        if improved < 1e-10 * max(current, 1.0):
            break
    return th


def _inputs_digest(table: FigureTable, costs: Costs) -> str:
    return hashlib.sha256(table.path.read_bytes() + costs.digest.encode()).hexdigest()


def fit(table: FigureTable | None = None, costs: Costs | None = None, observations: tuple[Observation, ...] = (),
        theta: np.ndarray | None = None, exclude: frozenset[str] = frozenset()) -> Fit:
    """Fit the model on the table's non-held-out rows (less ``exclude``), plus ``observations``."""
    table = table or load_figures()
    costs = costs or load_costs()
    layout = Layout(tuple(sorted(table.sources)) + (OBSERVED,))
    rows = [f for f in table.fitted if f.id not in exclude and f.id in costs.work]
    cases = [costs.case(f) for f in rows] + [o.case() for o in observations]
    y = np.log([f.seconds_per_batch for f in rows] + [o.seconds for o in observations])
    noise = np.array([NOISE] * len(rows) + [OBSERVED_NOISE] * len(observations))
    th = solve(layout, cases, y, noise, theta)
    result = Fit(layout, th, tuple(f.id for f in rows), inputs=_inputs_digest(table, costs),
                 observations=len(observations))
    result.residuals = residuals(result, table, costs)
    return result


def residuals(result: Fit, table: FigureTable, costs: Costs) -> dict[str, float]:
    """``log(published / estimated throughput)`` of every row with counts (positive: the estimate is slow)."""
    rows = [f for f in table.figures if f.id in costs.work]
    seconds = result.seconds([costs.case(f) for f in rows])
    return {f.id: math.log(s / f.seconds_per_batch) for f, s in zip(rows, seconds)}


def same_family_rows(costs: Costs, rows: list[Figure], model: str, family: str) -> list[Figure]:
    """The rows of ``rows`` whose model is ``model`` (a costs key) on GPU family ``family``."""
    return [f for f in rows if costs.model.get(f.id) == model and f.gpu == family]


def seen(rows: list[Figure], backend: str, precision: str) -> bool:
    """Whether ``rows`` hold a figure of ``backend`` (as :func:`backend_of` names it) at ``precision``."""
    return any(backend_of(f) == backend and f.precision == precision for f in rows)


def cross_validate(table: FigureTable, costs: Costs, base: Fit, folds: int = FOLDS, quantile: float = 0.95) -> Bands:
    """Each fitted row predicted by a fit without its fold; the ``quantile`` of the misses per basis (:class:`Bands`)."""
    rows = sorted((f for f in table.fitted if f.id in costs.work),
                  key=lambda f: hashlib.sha256(f.id.encode()).hexdigest())
    out: dict[bool, list[float]] = {True: [], False: []}
    for k in range(folds):
        left = [f for i, f in enumerate(rows) if i % folds == k]
        part = fit(table, costs, theta=base.theta, exclude=frozenset(f.id for f in left))
        kept = [f for f in rows if f.id in part.fitted]
        for f in left:
            out[seen(kept, backend_of(f), f.precision)].append(abs(part.residuals[f.id]))

    def q(values: list[float]) -> float:
        return float(np.quantile(values, quantile)) if values else 0.0

    return Bands(q(out[True]), q(out[False]), len(out[True]), len(out[False]), quantile)


def write_fit(path: str | Path | None = None) -> Fit:
    """Fit on the shipped table and counts, cross-validate the bands and write ``gpu_fit.json``."""
    table, costs = load_figures(), load_costs()
    result = fit(table, costs)
    result.bands = cross_validate(table, costs, result)
    data = {
        "version": FIT_VERSION,
        "generated_by": "python -m packager.estimate.price.gpufit",
        "inputs_sha256": result.inputs,
        "noise": NOISE, "source_sd": Layout.SOURCE_SD, "interaction_sd": Layout.INTERACTION_SD,
        "fitted": list(result.fitted),
        "theta": {"|".join(n): round(float(v), 9) for n, v in zip(result.layout.names, result.theta)},
        "bands": result.bands.to_json(),
        "residuals": {k: round(v, 6) for k, v in result.residuals.items()},
    }
    atomic_write(Path(path) if path is not None else FIT, json.dumps(data, indent=1) + "\n")
    return result


@lru_cache(maxsize=1)
def shipped_fit() -> Fit:
    """The fit committed in ``gpu_fit.json``, for the shipped table and counts."""
    table, costs = load_figures(), load_costs()
    try:
        data = json.loads(FIT.read_text(encoding="utf-8"))
        if data.get("version") != FIT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FIT_VERSION}")
        if data.get("inputs_sha256") != _inputs_digest(table, costs):
            raise ValueError("it was fitted on another gpu_figures.toml or gpu_figure_costs.json than these")
        layout = Layout(tuple(sorted(table.sources)) + (OBSERVED,))
        theta = np.array([float(data["theta"]["|".join(n)]) for n in layout.names])
        bands = Bands(**data["bands"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{FIT} is not the GPU model's fit ({exc!r}); regenerate it with "
                        "`python -m packager.estimate.price.gpufit`") from exc
    result = Fit(layout, theta, tuple(data["fitted"]), {k: float(v) for k, v in data["residuals"].items()}, bands,
                 str(data.get("inputs_sha256", "")))
    return result


def current_fit(observations: tuple[Observation, ...] = ()) -> Fit:
    """The shipped fit, refitted with a user's own runs when there are any (bands kept: see :mod:`.gpuprice`)."""
    base = shipped_fit()
    if not observations:
        return base
    return _refit(observations)


@lru_cache(maxsize=8)
def _refit(observations: tuple[Observation, ...]) -> Fit:
    base = shipped_fit()
    result = fit(observations=observations, theta=base.theta)
    result.bands = base.bands
    return result


if __name__ == "__main__":  # pragma: no cover - the generator of gpu_fit.json
    done = write_fit()
    fitted = [abs(done.residuals[f]) for f in done.fitted]
    print(f"wrote {FIT}: {len(done.fitted)} rows fitted, largest miss x{math.exp(max(fitted)):.3f}; bands: "
          f"seen x{math.exp(done.bands.seen):.3f} ({done.bands.seen_rows} rows), unseen "
          f"x{math.exp(done.bands.unseen):.3f} ({done.bands.unseen_rows} rows)")


__all__ = ["COSTS", "FIT", "NOISE", "OBSERVED", "Bands", "Costs", "Fit", "Observation", "backend_of",
           "cross_validate", "current_fit", "fit", "load_costs", "residuals", "same_family_rows", "seen", "shipped_fit",
           "solve", "unit_of", "write_fit"]
