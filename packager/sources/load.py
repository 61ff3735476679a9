"""Reading a tree or scikit-learn source's file into its library's :class:`~packager.sources.native.NativeModel`
(once per file and version of it), refusing a model with categorical features its converter cannot convert."""

from __future__ import annotations

from packager.sources.native import ConversionError, NativeModel
from packager.sources.sklearn import load_sklearn
from packager.sources.trees import load_tree
from packager.spec.types import ModelSpec
from runtime.errors import ModelLoadError

_CACHE: dict[tuple[str, str, float], NativeModel] = {}


def load_native(m: ModelSpec) -> NativeModel:
    """The model of a tree or scikit-learn source (read once per file and version of it)."""
    path = m.path
    if path is None or not path.is_file():
        raise ModelLoadError(f"model {m.name!r}: {m.source} file {path} not found")
    key = (m.source, str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = load_sklearn(m.name, path) if m.source == "sklearn" else load_tree(m.source, m.name, path)
    model = _CACHE[key]
    cats = model.categorical()
    if cats:
        raise ConversionError(
            f"model {m.name!r}: the {model.library} model has categorical feature(s) {', '.join(cats[:10])}, which "
            f"its ONNX converter cannot convert ({_CATEGORICAL[model.library]}). Encode them as numbers before "
            "training (ordinal or target encoding) and retrain, or keep the model out of the bundle")
    return model


#: Why each library's categorical splits do not convert.
_CATEGORICAL = {
    "lightgbm": "onnxmltools writes LightGBM's category-set splits as numeric thresholds",
    "xgboost": "onnxmltools reads XGBoost's numeric splits only",
    "catboost": "CatBoost's ONNX export takes numeric features only",
    "sklearn": "its converter takes numeric features only",
}


__all__ = ["load_native"]
