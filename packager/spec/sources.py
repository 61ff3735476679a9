"""``[[model]]`` keys of the converted sources (packager.sources): a boosted-tree or scikit-learn model file,
a Hugging Face ``save_pretrained`` folder, a timm architecture. Each key is refused where it means nothing
(``task`` without ``transformers``, ``rounds`` on a network...), with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packager.spec.tables import _err, _get, _path, _show, _strings
from packager.spec.types import BOOSTED_SOURCES, NATIVE_SOURCES, PREDICTIONS, TASKS, VariantSpec
from runtime.manifest import DataSpec

#: Keys only some sources take, and which.
_ONLY = {
    "columns": NATIVE_SOURCES, "prediction": NATIVE_SOURCES, "rows_tolerance": NATIVE_SOURCES,
    "task": ("transformers",), "timm_kwargs": ("timm",),
}
#: The data format each converted source reads.
_FORMATS = {**{s: "table" for s in NATIVE_SOURCES}, "transformers": "text", "timm": "images"}
#: Tasks whose outputs are not one vector per text row: the text path cannot carry them (said why).
_UNSUPPORTED_TASKS = {
    "token-classification": "its outputs are one vector per token, and ninefit's text path gives one vector per "
                            "row (a submission row): export the folder with a head that pools the tokens "
                            "(a factory), or write the per-token format in a postprocess hook from such a model",
    "multiple-choice": "its input is [batch, choices, sequence], and ninefit's text path feeds [batch, sequence] "
                       "windows of one text (or a pair): give each (question, choice) pair as a row with "
                       "task = \"sequence-classification\" on the same weights",
}


def source_path(t: dict, where: str, source: str, root: Path) -> Path | None:
    """The file or folder a converted source reads (a timm model's is its checkpoint, given apart)."""
    if source == "timm":
        return None
    what = {"lightgbm": "a LightGBM model file (booster.save_model: text, or the binary model)",
            "xgboost": "an XGBoost model file (.json or .ubj, Booster.save_model)",
            "catboost": "a CatBoost model file (.cbm, save_model)",
            "sklearn": "a fitted scikit-learn estimator or pipeline (joblib.dump or pickle)",
            "transformers": "a folder written by save_pretrained (config.json, the weights, the tokenizer)"}[source]
    return _path(root, _get(t, source, where, str, valid=bool, expected=f"the path of {what}"))


def hf_text_table(table: dict, folder: Path | None) -> dict:
    """``[model.text]`` of a transformers folder, its defaults the folder's own: the folder as the tokenizer, and
    the inputs its tokenizer gives (``model_input_names`` of tokenizer_config.json) that the text path feeds."""
    import json

    from runtime.manifest import TEXT_FEEDS

    table = dict(table)
    table.setdefault("tokenizer", str(folder))
    config = Path(table["tokenizer"]) / "tokenizer_config.json" if folder is not None else None
    if "inputs" not in table and config is not None and config.is_file():
        try:
            saved = json.loads(config.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        names = saved.get("model_input_names") or _class_inputs(str(saved.get("tokenizer_class") or ""))
        fed = [n for n in names if n in TEXT_FEEDS]
        if "input_ids" in fed:
            table["inputs"] = fed
    return table


def _class_inputs(name: str) -> list[str]:
    """``model_input_names`` of the transformers tokenizer class a folder names (none where it is unknown)."""
    if not name.isidentifier():
        return []
    try:
        import transformers

        return list(getattr(getattr(transformers, name, None), "model_input_names", None) or [])
    except Exception:  # transformers absent or broken: the default inputs stand
        return []


def parse_converted(t: dict, where: str, source: str, data: DataSpec) -> dict[str, Any]:
    """The converted source's own keys, as :class:`~packager.spec.types.ModelSpec` keyword arguments."""
    for key, sources in _ONLY.items():
        if key in t and source not in sources:
            raise _err(where, f"{key} applies only to a {' or '.join(sources)} model (this model's source is {source})")
    need = _FORMATS.get(source)
    if need and data.format != need:
        raise _err(where, f"a {source} model reads {need} data ([data] format = \"{need}\"); this spec reads "
                          f"{data.format}")
    out: dict[str, Any] = {}
    if source in NATIVE_SOURCES:
        for key in ("input", "precision", "tta", "artifacts"):
            if key in t:
                why = {"input": "its input is the table's columns named by the model's own feature names (list them "
                                "with columns = [...] where the model has none)",
                       "precision": "it runs in the converter's own precision (fp32 inputs, tree thresholds as "
                                    "the library stored them)",
                       "tta": "it reads table rows", "artifacts": "it is carried as ONNX only"}[key]
                raise _err(where, f"{key} does not apply to a {source} model: {why}")
        if "columns" in t:
            out["columns"] = _strings(t, "columns", where, ..., "a non-empty array of the test table's column names, "
                                                               "one per feature of the model, in its order")
        out["prediction"] = _get(t, "prediction", where, str, "probability", PREDICTIONS)
        out["rows_tolerance"] = _get(t, "rows_tolerance", where, float, 0.001, valid=lambda x: 0 <= x < 1,
                                     expected="a share of rows in [0, 1), e.g. 0.001 (0.1 %)")
    if source == "transformers":
        task = _get(t, "task", where, str, ..., TASKS)
        if task in _UNSUPPORTED_TASKS:
            raise _err(where, f"task = {_show(task)} cannot be packaged: {_UNSUPPORTED_TASKS[task]}")
        out["task"] = task
    if source == "timm":
        out["timm_kwargs"] = _get(t, "timm_kwargs", where, dict, {})
    return out


def check_variants(variants: tuple[VariantSpec, ...], where: str, source: str) -> None:
    """``rounds`` is a boosted-tree rung; a converted model has no fp16 file."""
    for v in variants[1:]:
        if source == "sklearn":
            raise _err(where, f"variant {v.name!r}: a sklearn model has no cheaper rung (rounds is for boosted trees: "
                              "give a LightGBM, XGBoost or CatBoost model file for one)")
        if v.rounds and source not in BOOSTED_SOURCES:
            raise _err(where, f"variant {v.name!r}: rounds applies to a boosted-tree model ({', '.join(BOOSTED_SOURCES)}); "
                              f"this model's source is {source}")
        if source in NATIVE_SOURCES and (v.precision != "fp32" or v.tta != ("none",) or v.image_size):
            raise _err(where, f"variant {v.name!r}: a {source} model's rungs are its first boosting rounds "
                              "(rounds = N); precision, tta and image_size do not apply")
        if source in NATIVE_SOURCES and not v.rounds:
            raise _err(where, f"variant {v.name!r} of a {source} model: give rounds = N (its first N boosting "
                              "rounds), the only cheaper rung a tree model has")


__all__ = ["check_variants", "hf_text_table", "parse_converted", "source_path"]
