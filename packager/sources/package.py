"""A tree or scikit-learn model made a member: converted, checked against its library, its rounds rungs
measured (:func:`package_native`)."""

from __future__ import annotations

import importlib.metadata
import logging
import warnings
from pathlib import Path

import numpy as np

from packager.export import check_onnx
from packager.sources.graph import finish
from packager.sources.load import load_native
from packager.sources.native import ConversionError, NativeModel
from packager.sources.parity import value_factor, verify_native
from packager.spec.types import ModelSpec
from packager.verify import VerifyResult
from runtime.errors import SpecError
from runtime.manifest import Member, Variant

LOG = logging.getLogger("ninefit.package")

#: The converter each library's model goes through, for the report's exporter column.
_CONVERTERS = {"lightgbm": "onnxmltools", "xgboost": "onnxmltools", "catboost": "catboost", "sklearn": "skl2onnx"}


def _converter(model: NativeModel) -> str:
    name = _CONVERTERS[model.library]
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def _member(m: ModelSpec, variants=(), width: int = 1, exporter: str = "", device: str = "") -> Member:
    return Member(name=m.name, weight=m.weight, inputs=m.inputs, output=m.output, variants=tuple(variants),
                  activation=m.activation, score=m.score, batch_size=m.batch_size, exporter=exporter, n_outputs=width,
                  source=m.source, trained=True, missing=m.missing, fill_value=m.fill_value, device=device)


def _rows(test, m: ModelSpec, n: int) -> np.ndarray:
    """The model's input for the first ``n`` public rows, as the runtime feeds it (NaN kept with missing =
    "model")."""
    return np.asarray(test.feed(_member(m), 0, n)["input"], dtype=np.float32)


def _write(proto, dest: Path, name: str) -> str:
    """Save the graph; "cpu" when it holds ai.onnx.ml operators (no GPU kernels in ONNX Runtime), else ""."""
    import onnx

    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(dest), save_as_external_data=False)
    check_onnx(dest, name)
    return "cpu" if any(n.domain == "ai.onnx.ml" for n in proto.graph.node) else ""


def package_native(m: ModelSpec, test, stage: Path, verify_rows: int, test_name: str
                   ) -> tuple[Member, list[VerifyResult]]:
    """Convert ``m`` to ONNX (the full model and each rounds rung), check each against the library's own
    predictions on the first ``verify_rows`` public rows, and measure each rung's value factor over every
    public row (logged; the manifest's rung carries it, and report.md shows it). Returns the member and its
    parity results."""
    if test is None:
        raise SpecError(f"model {m.name!r}: a {m.source} model is checked against {m.source}'s own predictions on "
                        f"the public test rows, and the test table {test_name} is not here")
    model = load_native(m)
    if m.source == "sklearn":
        from packager.sources.sklearn import PICKLE_WARNING

        warnings.warn(PICKLE_WARNING.format(name=m.name, path=model.path.name), UserWarning, stacklevel=2)
    margin = m.prediction == "margin"
    if margin and model.kind == "regression":
        margin = False  # a regressor's value is its margin
    if margin and model.library == "sklearn":
        raise ConversionError(f"model {m.name!r}: prediction = \"margin\" is for boosted trees (their raw scores); "
                              "a scikit-learn model is packaged with its probabilities")
    n = min(test.n_rows, verify_rows)
    x = _rows(test, m, n)
    source = f"first {n} rows of {test_name}"
    folder = stage / "models" / m.name
    LOG.info(f"{m.name}: {model.describe()}, converted with {_converter(model)}")
    full_file = folder / "fp32.onnx"
    device = _write(finish(model.to_onnx(), model, m.output, margin), full_file, m.name)
    results = [verify_native(m, m.variants[0].name, full_file, model.predict(x, margin=margin), x, model.library,
                             model.kind, source)]
    variants = [Variant(name=m.variants[0].name, file=full_file.relative_to(stage).as_posix())]
    everything = _rows(test, m, test.n_rows) if len(m.variants) > 1 else x
    full_all = model.predict(everything, margin=margin) if len(m.variants) > 1 else None
    for v in m.variants[1:]:
        if v.rounds >= model.rounds:
            raise SpecError(f"model {m.name!r} variant {v.name!r}: rounds = {v.rounds}, but the model has "
                            f"{model.rounds} boosting rounds; a cheaper rung keeps fewer (e.g. {max(1, model.rounds // 2)})")
        dest = folder / f"rounds{v.rounds}.onnx"
        _write(finish(model.to_onnx(v.rounds), model, m.output, margin), dest, m.name)
        results.append(verify_native(m, v.name, dest, model.predict(x, rounds=v.rounds, margin=margin), x,
                                     model.library, model.kind, source))
        factor = v.value_factor
        if not v.value_factor_given:
            assert full_all is not None, "predicted above wherever there are cheaper rungs"
            factor = value_factor(full_all, model.predict(everything, rounds=v.rounds, margin=margin))
        LOG.info(f"{m.name}/{v.name}: first {v.rounds} of {model.rounds} rounds, value factor {factor:.4f}"
                 + ("" if v.value_factor_given else f" (measured: R^2 against the full model on the {len(everything)} "
                    "public rows)"))
        variants.append(Variant(name=v.name, file=dest.relative_to(stage).as_posix(), value_factor=factor))
    worst = max(results[0].checks, key=lambda c: c.rows_differing or 0.0)
    LOG.info(f"{m.name}: parity with {model.library} ok on {source} ({worst.rows_differing:.2%} of rows differ at most)")
    return _member(m, variants, model.width, _converter(model), device), results


__all__ = ["package_native"]
