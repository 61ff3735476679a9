"""A tree or scikit-learn model as the packager sees it: :class:`NativeModel` (read by
:func:`packager.sources.load.load_native`).

Each library's adapter (:mod:`packager.sources.trees`, :mod:`packager.sources.sklearn`) says what the model
is (its feature names, binary / multiclass / regression, its boosting rounds, its categorical features),
predicts with the library's own code (the reference of the parity check) and converts itself to ONNX with the
converter made for it. :func:`resolve_columns` matches the model's features to the test table's columns by
name.
"""

from __future__ import annotations

import abc
import re
from pathlib import Path

import numpy as np

from packager.spec.types import ModelSpec
from runtime.errors import ModelLoadError, SpecError

#: Names a library gives features it was not told the names of: they name no column.
_DEFAULT_NAMES = re.compile(r"(Column_)?\d+")  # LightGBM's Column_0, CatBoost's "0"
#: ai.onnx.ml opset the converters target (the default domain's is each converter's own).
ML_OPSET = 3
#: The default-domain opset of onnxmltools' and skl2onnx's graphs (onnxmltools supports up to 15).
ONNX_OPSET = 15


class ConversionError(ModelLoadError):
    """A model the converter cannot turn into ONNX, with the reason (a categorical feature, a step with no
    converter...)."""


class NativeModel(abc.ABC):
    """One model of a tree or scikit-learn library, loaded from the user's file.

    Attributes:
        library: The library's name, as the spec names the source.
        name: The member's name (for messages).
        path: The file it was read from.
        feature_names: The model's own feature names (None: it was trained without names).
        n_features: Features per row.
        kind: "binary", "multiclass" or "regression".
        n_classes: Classes of a classifier (1 for a regressor).
        rounds: Boosting rounds (0: not a boosted model).
    """

    library = ""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self.feature_names: list[str] | None = None
        self.n_features = 0
        self.kind = "regression"
        self.n_classes = 1
        self.rounds = 0

    @property
    def width(self) -> int:
        """Values per row of the member's output: P(positive) for a binary classifier, one per class."""
        return self.n_classes if self.kind == "multiclass" else 1

    def categorical(self) -> list[str]:
        """Features the model treats as categorical (none by default)."""
        return []

    @abc.abstractmethod
    def predict(self, x: np.ndarray, rounds: int = 0, margin: bool = False) -> np.ndarray:
        """The library's own prediction for ``x`` (float32 rows, NaN for missing), ``[rows, width]`` float64:
        probabilities (a binary classifier's of the positive class), or raw margins; the first ``rounds`` only."""

    @abc.abstractmethod
    def to_onnx(self, rounds: int = 0):
        """The converter's ONNX model (onnx.ModelProto) of the whole model, or its first ``rounds`` rounds, its
        one input named ``input`` ([batch, n_features] float)."""

    def describe(self) -> str:
        what = {"binary": "binary classifier", "multiclass": f"{self.n_classes}-class classifier",
                "regression": "regressor"}[self.kind]
        rounds = f", {self.rounds} boosting rounds" if self.rounds else ""
        return f"{self.library} {what}, {self.n_features} features{rounds}"


def has_names(names: list[str] | None) -> bool:
    """Whether a model's feature names are real names (not the library's Column_0, 0...)."""
    return names is not None and bool(names) and not all(_DEFAULT_NAMES.fullmatch(n) for n in names)


def resolve_columns(m: ModelSpec, model: NativeModel) -> tuple[str, ...]:
    """The test table's columns feeding ``model``, in the model's feature order.

    The model's own feature names, where it has them; ``columns`` in the spec must then be the same names (a
    missing or extra one is named). A model trained without names needs ``columns``, one per feature.
    """
    names = model.feature_names if has_names(model.feature_names) else None
    where = f"model {m.name!r} ({model.describe()})"
    if m.columns is not None:
        if names is None:
            if len(m.columns) != model.n_features:
                raise SpecError(f"{where}: columns lists {len(m.columns)} column(s), but the model takes "
                                f"{model.n_features} features (it has no feature names: list one column per feature, "
                                "in the order it was trained on)")
            return tuple(m.columns)
        missing = [n for n in names if n not in m.columns]
        extra = [c for c in m.columns if c not in names]
        if missing or extra:
            raise SpecError(f"{where}: columns does not match the model's own feature names: "
                            + "; ".join(x for x in (
                                f"missing {len(missing)}: {', '.join(missing[:10])}" if missing else "",
                                f"extra {len(extra)} (not features of the model): {', '.join(extra[:10])}" if extra
                                else "") if x)
                            + ". Leave columns out to use the model's names as they are")
        return tuple(names)
    if names is None:
        raise SpecError(f"{where}: the model was trained without feature names, so its columns cannot be matched by "
                        f"name; list them in its order with columns = [...] ({model.n_features} names)")
    return tuple(names)


def check_columns(m: ModelSpec, header: list[str] | None) -> None:
    """Every column feeding the model is in the test table; the missing ones named."""
    if header is None or not m.inputs:
        return
    missing = [c for c in m.inputs[0].columns if c not in header]
    if missing:
        raise SpecError(f"model {m.name!r}: the test table lacks {len(missing)} of the model's feature column(s): "
                        f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} (the model's own feature "
                        "names; the test table must have a column of each name)")


__all__ = ["ML_OPSET", "ONNX_OPSET", "ConversionError", "NativeModel", "check_columns", "has_names", "resolve_columns"]
