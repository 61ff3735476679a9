"""Boosted trees: LightGBM (a model file: text or binary booster), XGBoost (JSON or UBJ) and CatBoost (.cbm).

LightGBM and XGBoost are converted by onnxmltools, CatBoost by its own ONNX export. Each predicts with its own
library (probabilities, or raw margins; the first ``rounds`` rounds) for the parity check and the value factor
of the rounds rung.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from packager.sources.native import ONNX_OPSET, ConversionError, NativeModel
from runtime.errors import ModelLoadError


def _need(module: str, source: str, name: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(f"model {name!r}: packaging a {source} model needs {module} (pip install "
                             f"\"ninefit[tabular]\", which pins the versions ninefit is tested with)") from exc


def _float_input(n: int):
    from onnxmltools.convert.common.data_types import FloatTensorType

    return [("input", FloatTensorType([None, n]))]


def _as_rows(p: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p.reshape(n, -1)


class LightGBMModel(NativeModel):
    library = "lightgbm"

    def __init__(self, name: str, path: Path, booster=None):
        super().__init__(name, path)
        lgb = _need("lightgbm", "lightgbm", name)
        try:
            self.booster = booster if booster is not None else lgb.Booster(model_file=str(path))
        except Exception as exc:  # LightGBMError: not a model file
            raise ModelLoadError(f"model {name!r}: {path} is not a LightGBM model file ({str(exc)[:200]}); expected "
                                 "what booster.save_model wrote") from exc
        self.dump = self.booster.dump_model(num_iteration=-1)
        objective = str(self.dump.get("objective", "")).split()[0] if self.dump.get("objective") else "regression"
        self.objective = objective
        self.n_classes = int(self.dump.get("num_class", 1))
        self.kind = ("multiclass" if objective in ("multiclass", "softmax", "multiclassova", "ova") else
                     "binary" if objective in ("binary", "cross_entropy", "xentropy") else "regression")
        self.n_classes = self.n_classes if self.kind == "multiclass" else (2 if self.kind == "binary" else 1)
        self.feature_names = list(self.booster.feature_name())
        self.n_features = self.booster.num_feature()
        self.rounds = int(self.booster.current_iteration())

    def categorical(self) -> list[str]:
        found: dict[int, None] = {}

        def walk(node: dict) -> None:
            if "split_feature" in node:
                if node.get("decision_type") == "==":
                    found[int(node["split_feature"])] = None
                walk(node["left_child"])
                walk(node["right_child"])

        for tree in self.dump.get("tree_info", []):
            walk(tree.get("tree_structure", {}))
        names = self.feature_names
        assert names is not None, "a LightGBM booster always names its features"
        return [names[i] for i in sorted(found)]

    def predict(self, x: np.ndarray, rounds: int = 0, margin: bool = False) -> np.ndarray:
        p = self.booster.predict(x, num_iteration=rounds or None, raw_score=margin)
        return _as_rows(p, len(x))

    def to_onnx(self, rounds: int = 0):
        lgb = _need("lightgbm", "lightgbm", self.name)
        onnxmltools = _need("onnxmltools", "lightgbm", self.name)
        booster = lgb.Booster(model_str=self.booster.model_to_string(num_iteration=rounds or None)) \
            if rounds else self.booster
        try:
            return onnxmltools.convert_lightgbm(booster, initial_types=_float_input(self.n_features), zipmap=False,
                                                target_opset=ONNX_OPSET)
        except Exception as exc:
            raise ConversionError(f"model {self.name!r}: onnxmltools cannot convert the LightGBM model "
                                  f"({type(exc).__name__}: {str(exc)[:300]})") from exc


class XGBoostModel(NativeModel):
    library = "xgboost"

    def __init__(self, name: str, path: Path, booster=None):
        super().__init__(name, path)
        xgb = _need("xgboost", "xgboost", name)
        try:
            if booster is None:
                booster = xgb.Booster()
                booster.load_model(str(path))
        except Exception as exc:  # XGBoostError
            raise ModelLoadError(f"model {name!r}: {path} is not an XGBoost model file ({str(exc)[:200]}); expected "
                                 "what Booster.save_model wrote (.json or .ubj)") from exc
        self.booster = booster
        learner = json.loads(booster.save_config())["learner"]
        self.objective = learner["objective"]["name"]
        n_class = int(float(learner["learner_model_param"].get("num_class", "0") or 0))
        self.kind = ("multiclass" if self.objective.startswith("multi:") else
                     "binary" if self.objective.startswith("binary:") else "regression")
        self.n_classes = n_class if self.kind == "multiclass" else (2 if self.kind == "binary" else 1)
        self.feature_names = list(booster.feature_names) if booster.feature_names else None
        self.n_features = booster.num_features()
        self.rounds = booster.num_boosted_rounds()

    def categorical(self) -> list[str]:
        types = self.booster.feature_types or []
        names = self.feature_names or [f"f{i}" for i in range(self.n_features)]
        return [n for n, t in zip(names, types) if t == "c"]

    def predict(self, x: np.ndarray, rounds: int = 0, margin: bool = False) -> np.ndarray:
        xgb = _need("xgboost", "xgboost", self.name)
        d = xgb.DMatrix(x, missing=np.nan, feature_names=self.booster.feature_names)
        logistic = self.objective == "binary:logitraw" and not margin  # raw scores: the probability is theirs
        softmax = self.objective == "multi:softmax" and not margin  # class labels: the probabilities are theirs
        p = self.booster.predict(d, iteration_range=(0, rounds or 0), output_margin=margin or logistic or softmax)
        p = _as_rows(p, len(x))
        if logistic:
            p = 1.0 / (1.0 + np.exp(-p))
        if softmax:
            e = np.exp(p - p.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
        return p

    def to_onnx(self, rounds: int = 0):
        onnxmltools = _need("onnxmltools", "xgboost", self.name)
        booster = self.booster[:rounds] if rounds else self.booster.copy()
        booster.feature_names = None  # onnxmltools reads features named f0, f1... in the model's dump
        booster.feature_types = None
        try:
            return onnxmltools.convert_xgboost(booster, initial_types=_float_input(self.n_features),
                                               target_opset=ONNX_OPSET)
        except Exception as exc:
            raise ConversionError(f"model {self.name!r}: onnxmltools cannot convert the XGBoost model "
                                  f"({type(exc).__name__}: {str(exc)[:300]})") from exc


class CatBoostModel(NativeModel):
    library = "catboost"

    def __init__(self, name: str, path: Path, model=None):
        super().__init__(name, path)
        cb = _need("catboost", "catboost", name)
        try:
            if model is None:
                model = cb.CatBoost()
                model.load_model(str(path))
        except Exception as exc:  # CatBoostError
            raise ModelLoadError(f"model {name!r}: {path} is not a CatBoost model file ({str(exc)[:200]}); expected "
                                 "what save_model wrote (.cbm)") from exc
        self.model = model
        params = model.get_all_params()
        loss = str(params.get("loss_function", "RMSE")).split(":")[0]
        self.loss = loss
        classes = model.classes_ if hasattr(model, "classes_") and model.classes_ is not None else []
        self.kind = ("multiclass" if loss in ("MultiClass", "MultiClassOneVsAll") else
                     "binary" if loss in ("Logloss", "CrossEntropy") else "regression")
        self.n_classes = (len(classes) or int(params.get("classes_count") or 0)) if self.kind == "multiclass" \
            else (2 if self.kind == "binary" else 1)
        self.feature_names = list(model.feature_names_) if model.feature_names_ else None
        self.n_features = len(model.feature_names_ or [])
        self.rounds = int(model.tree_count_)

    def categorical(self) -> list[str]:
        names = self.feature_names or []
        return [names[i] if i < len(names) else str(i) for i in self.model.get_cat_feature_indices()]

    def predict(self, x: np.ndarray, rounds: int = 0, margin: bool = False) -> np.ndarray:
        kind = "RawFormulaVal" if margin or self.kind == "regression" else "Probability"
        p = _as_rows(self.model.predict(x, prediction_type=kind, ntree_end=rounds or 0), len(x))
        return p[:, 1:] if self.kind == "binary" and p.shape[1] == 2 else p

    def to_onnx(self, rounds: int = 0):
        import onnx

        model = self.model
        if rounds:
            model = model.copy()
            model.shrink(ntree_end=rounds)
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "model.onnx"
            try:
                model.save_model(str(dest), format="onnx")
            except Exception as exc:
                raise ConversionError(f"model {self.name!r}: CatBoost's ONNX export refused the model "
                                      f"({str(exc)[:300]})") from exc
            return onnx.load(str(dest))


def load_tree(source: str, name: str, path: Path) -> NativeModel:
    """The boosted-tree model of ``source`` in ``path``."""
    loaders: dict[str, Callable[[str, Path], NativeModel]] = {
        "lightgbm": LightGBMModel, "xgboost": XGBoostModel, "catboost": CatBoostModel}
    return loaders[source](name, path)


__all__ = ["CatBoostModel", "LightGBMModel", "XGBoostModel", "load_tree"]
