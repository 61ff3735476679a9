"""Members from other libraries than torch: each source read as the user saved it, made a member.

* Tree and scikit-learn models (:mod:`.native`, :mod:`.trees`, :mod:`.sklearn`): a LightGBM, XGBoost or
  CatBoost model file, or a pickled scikit-learn estimator, converted to ONNX by the converter made for it
  (:mod:`.graph` gives the graph ninefit's one float output), checked against the library's own predictions
  on the public rows (:mod:`.parity`), with cheaper rungs of its first boosting rounds; packaged by
  :func:`.package.package_native`.
* A Hugging Face ``save_pretrained`` folder (:mod:`.hf`) and a timm architecture with its checkpoint
  (:mod:`.timm_models`): built as torch modules, offline, then exported and verified like any torch member.

:func:`prepare` resolves, before anything runs, what a source decides about its member's inputs (a tree
model's columns from its own feature names, a timm model's image size, mean and std).
"""

from __future__ import annotations

from dataclasses import replace

from packager.spec.types import BOOSTED_SOURCES, NATIVE_SOURCES, ModelSpec


def prepare(m: ModelSpec) -> ModelSpec:
    """``m`` with the inputs its source decides (unchanged for torch and ONNX sources)."""
    if m.source in NATIVE_SOURCES:
        from packager.sources.load import load_native
        from packager.sources.native import resolve_columns
        from runtime.manifest import InputSpec

        model = load_native(m)
        columns = resolve_columns(m, model)
        inputs = (InputSpec(name="input", dtype="float32", shape=("batch", len(columns)), columns=columns),)
        # Boosted trees route a missing value down the branch they learned for it: give it to them as it is.
        missing = m.missing or ("model" if m.source in BOOSTED_SOURCES else "")
        return replace(m, inputs=inputs, missing=missing)
    if m.source == "transformers":  # before its tokenizer is converted: a missing file named first
        from packager.sources.hf import check_folder, check_tokenizer

        assert m.path is not None, "the spec requires a transformers model's folder (spec.sources.source_path)"
        check_folder(m.name, m.path)
        if m.text is not None:
            check_tokenizer(m.name, m.path, m.text.tokenizer)
        return m
    if m.source == "timm" and not m.inputs:
        from packager.sources.timm_models import default_inputs

        return replace(m, inputs=default_inputs(m))
    return m


__all__ = ["prepare"]
