"""A fitted scikit-learn estimator or pipeline, from a joblib or pickle file, converted by skl2onnx.

Unpickling runs code the file names: it must be the user's own file (the package warns, every time). A
pickled LightGBM, XGBoost or CatBoost scikit-learn wrapper is packaged as that library's booster.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from packager.sources.native import ONNX_OPSET, ConversionError, NativeModel
from runtime.errors import ModelLoadError

#: Said whenever a pickle is read.
PICKLE_WARNING = ("model {name!r}: {path} is a pickle: loading it runs whatever code it names, with your "
                  "rights. Package only a file you made yourself (never one downloaded from a discussion or a "
                  "dataset you did not build)")


def _read(name: str, path: Path):
    # Said before the file is read (the log), and again in report.md's warnings (packager.sources.package).
    logging.getLogger("ninefit.package").warning(PICKLE_WARNING.format(name=name, path=path.name))
    try:
        import joblib

        return joblib.load(path)
    except ImportError:
        pass
    except Exception as exc:
        raise ModelLoadError(f"model {name!r}: {path} does not load with joblib ({type(exc).__name__}: "
                             f"{str(exc)[:200]}); expected a fitted estimator saved with joblib.dump or pickle") from exc
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as exc:
        raise ModelLoadError(f"model {name!r}: {path} does not unpickle ({type(exc).__name__}: {str(exc)[:200]})") from exc


class SklearnModel(NativeModel):
    library = "sklearn"

    def __init__(self, name: str, path: Path, estimator):
        super().__init__(name, path)
        self.estimator = estimator
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else None
        n = getattr(estimator, "n_features_in_", None)
        if n is None:
            raise ModelLoadError(f"model {name!r}: the {type(estimator).__name__} in {path.name} is not fitted (it has "
                                 "no n_features_in_); save the estimator after fit()")
        self.n_features = int(n)
        classes = getattr(estimator, "classes_", None)
        if classes is not None and hasattr(estimator, "predict_proba"):
            self.n_classes = len(classes)
            self.kind = "binary" if self.n_classes == 2 else "multiclass"
        elif hasattr(estimator, "predict"):
            self.kind, self.n_classes = "regression", 1
        else:
            raise ModelLoadError(f"model {name!r}: {type(estimator).__name__} has neither predict_proba nor predict")

    def _frame(self, x: np.ndarray):
        """Rows as the estimator was fitted on them: a DataFrame with its feature names, where it had them."""
        if self.feature_names is None:
            return x
        import pandas as pd

        return pd.DataFrame(x, columns=self.feature_names)

    def predict(self, x: np.ndarray, rounds: int = 0, margin: bool = False) -> np.ndarray:
        if margin:
            if not hasattr(self.estimator, "decision_function"):
                raise ConversionError(f"model {self.name!r}: prediction = \"margin\", but "
                                      f"{type(self.estimator).__name__} has no decision_function")
            p = np.asarray(self.estimator.decision_function(self._frame(x)), dtype=np.float64)
            return p.reshape(len(x), -1)
        if self.kind == "regression":
            return np.asarray(self.estimator.predict(self._frame(x)), dtype=np.float64).reshape(len(x), -1)
        p = np.asarray(self.estimator.predict_proba(self._frame(x)), dtype=np.float64)
        return p[:, 1:] if self.kind == "binary" else p

    def to_onnx(self, rounds: int = 0):
        try:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError as exc:
            raise ModelLoadError(f"model {self.name!r}: packaging a scikit-learn model needs skl2onnx (pip install "
                                 "\"ninefit[tabular]\")") from exc
        try:
            return convert_sklearn(self.estimator, initial_types=[("input", FloatTensorType([None, self.n_features]))],
                                   options={"zipmap": False} if self.kind != "regression" else None,
                                   target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3})
        except Exception as exc:
            step = _unconverted_step(self.estimator, exc)
            raise ConversionError(
                f"model {self.name!r}: skl2onnx cannot convert {step} ({type(exc).__name__}: {str(exc)[:240]}). "
                "Replace that step by one skl2onnx converts (its list: skl2onnx.supported_converters()), or "
                "register a converter for it (skl2onnx.update_registered_converter)") from exc


def _unconverted_step(estimator, exc: Exception) -> str:
    """The pipeline step (or the estimator) the converter has no converter for, named."""
    text = str(exc)
    steps = getattr(estimator, "steps", None) or [("", estimator)]
    for label, step in steps:
        if type(step).__name__ in text:
            return f"step {label!r} ({type(step).__module__}.{type(step).__name__})" if label \
                else f"{type(step).__module__}.{type(step).__name__}"
    return f"the {type(estimator).__name__}"


def load_sklearn(name: str, path: Path) -> NativeModel:
    """The estimator in ``path``; a pickled LightGBM / XGBoost / CatBoost wrapper as its own library's model."""
    estimator = _read(name, path)
    module = type(estimator).__module__.split(".")[0]
    if module == "lightgbm" and hasattr(estimator, "booster_"):
        from packager.sources.trees import LightGBMModel

        return LightGBMModel(name, path, booster=estimator.booster_)
    if module == "xgboost" and hasattr(estimator, "get_booster"):
        from packager.sources.trees import XGBoostModel

        return XGBoostModel(name, path, booster=estimator.get_booster())
    if module == "catboost":
        from packager.sources.trees import CatBoostModel

        return CatBoostModel(name, path, model=estimator)
    if not hasattr(estimator, "fit"):
        raise ModelLoadError(f"model {name!r}: {path.name} holds a {type(estimator).__name__}, not a scikit-learn "
                             "estimator or pipeline")
    return SklearnModel(name, path, estimator)


__all__ = ["PICKLE_WARNING", "SklearnModel", "load_sklearn"]
