"""A Hugging Face ``save_pretrained`` folder made a text member, offline.

``transformers = "folder"`` with a ``task``: the model class comes from the folder's ``config.json``
(``AutoModelForSequenceClassification`` for ``sequence-classification``, ``AutoModel`` for
``feature-extraction``, whose output is the mean of the last hidden state over the real tokens), the weights
are the folder's (every key of the class present: a head the folder lacks would be random), and the model is
wrapped so that its forward takes the tokenizer's outputs positionally, in ``[model.text] inputs`` order, and
returns one vector per window. The folder's tokenizer becomes the bundle's ``tokenizer.json``
(:mod:`packager.tokenizer`). Nothing is fetched: ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set, and
every file is looked up in the folder only.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from packager.spec.types import ModelSpec
from runtime.errors import ModelLoadError

#: Weight files save_pretrained writes (one of them, or a sharded index).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@contextlib.contextmanager
def offline():
    """The Hugging Face libraries' offline flags, set while the folder is read (and put back after)."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_folder(name: str, folder: Path) -> dict:
    """The folder's config, after checking it holds a config and weights (each missing file named)."""
    if not folder.is_dir():
        raise ModelLoadError(f"model {name!r}: transformers folder {folder} not found (expected the folder "
                             "save_pretrained wrote)")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"model {name!r}: {folder} has no config.json; expected a folder written by "
                             "model.save_pretrained (it writes config.json beside the weights)")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        have = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise ModelLoadError(f"model {name!r}: {folder} has no weights: expected one of {', '.join(WEIGHT_FILES)} "
                             f"(it holds {have}). Save the model itself with save_pretrained, not only its config "
                             "or tokenizer")
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"model {name!r}: {config} is not valid JSON ({exc})") from exc


#: Files a save_pretrained tokenizer folder holds one of (its fast tokenizer, or the slow one's vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def check_tokenizer(name: str, folder: Path, tokenizer: str) -> None:
    """The folder, as the model's tokenizer, holds one (each expected file named when it holds none)."""
    path = Path(tokenizer)
    if path.resolve() != folder.resolve() or any((path / f).is_file() for f in TOKENIZER_FILES):
        return
    raise ModelLoadError(f"model {name!r}: {folder} has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)} "
                         "(tokenizer.save_pretrained(folder) writes them), or name one with [model.text] tokenizer")


def _wrapper(model, inputs: tuple[str, ...], task: str):
    import torch

    from runtime.manifest import TEXT_FEEDS

    assert all(n in TEXT_FEEDS for n in inputs), inputs  # the spec allows these names only
    from torch import nn

    class Text(nn.Module):
        """The transformers model, called with the tokenizer's outputs by name; one vector per window."""

        def __init__(self):
            super().__init__()
            self.model = model

        def run(self, kwargs: dict[str, torch.Tensor]) -> torch.Tensor:
            out = self.model(**kwargs)
            if task == "sequence-classification":
                return out.logits
            hidden = out.last_hidden_state  # feature-extraction: the mean over the real tokens
            mask = kwargs.get("attention_mask")
            if mask is None:
                return hidden.mean(dim=1)
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    # forward(self, input_ids, attention_mask, ...): the inputs by name, in their order, so that torch.export and
    # the ONNX exporters see one tensor per argument (a *args forward is one argument to them).
    source = (f"def forward(self, {', '.join(inputs)}):\n"
              f"    return self.run({{{', '.join(f'{n!r}: {n}' for n in inputs)}}})\n")
    namespace: dict = {}
    exec(compile(source, "<ninefit transformers wrapper>", "exec"), namespace)  # names checked: TEXT_FEEDS only
    Text.forward = namespace["forward"]
    return Text().eval()


def load_hf(m: ModelSpec):
    """The folder's model for ``m.task``, wrapped for the text path (a torch module in eval mode)."""
    assert m.path is not None, "the spec requires a transformers model's folder (spec.sources.source_path)"
    config = check_folder(m.name, m.path)
    try:
        import transformers
    except ImportError as exc:
        raise ModelLoadError(f"model {m.name!r}: a transformers folder needs transformers (pip install "
                             "transformers)") from exc
    auto = {"sequence-classification": transformers.AutoModelForSequenceClassification,
            "feature-extraction": transformers.AutoModel}[m.task]
    with offline():
        try:
            model, info = auto.from_pretrained(str(m.path), local_files_only=True, output_loading_info=True,
                                               attn_implementation="eager")
        except Exception as exc:
            raise ModelLoadError(f"model {m.name!r}: transformers cannot build a {m.task} model from {m.path} "
                                 f"(model_type {config.get('model_type', '?')!r}: {type(exc).__name__}: "
                                 f"{str(exc)[:300]})") from exc
    missing = list(info.get("missing_keys") or [])
    mismatched = [str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or []]
    if missing or mismatched:
        raise ModelLoadError(
            f"model {m.name!r}: the weights in {m.path} do not cover the {type(model).__name__} that task = "
            f"{m.task!r} builds: " + "; ".join(x for x in (
                f"missing {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}" if missing else "",
                f"of another shape {', '.join(mismatched[:8])}" if mismatched else "") if x)
            + ". Those weights would be random: save the model trained for this task (or pick the task the folder "
              "was trained for)")
    return _wrapper(model.eval(), m.text.inputs if m.text else ("input_ids", "attention_mask"), m.task)


__all__ = ["TOKENIZER_FILES", "WEIGHT_FILES", "check_folder", "check_tokenizer", "load_hf", "offline"]
