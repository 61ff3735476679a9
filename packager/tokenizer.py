"""A text model's tokenizer, into the bundle: the file the runtime tokenises with.

The user's tokenizer is a Hugging Face ``tokenizers`` file (``tokenizer.json``)
or a transformers tokenizer folder; a folder without a ``tokenizer.json`` is
converted here, once, with transformers (``AutoTokenizer`` to its fast
tokenizer), so the bundle always carries a ``tokenizer.json`` that the runtime
loads with ``tokenizers`` alone. The model's parity on real windows is checked
by :func:`packager.verify.verify_text`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from packager.spec import ModelSpec
from runtime.errors import SpecError
from runtime.manifest import TextSpec

_PAD_TOKENS = ("[PAD]", "<pad>", "<PAD>", "[pad]")


def _load(path: Path, name: str):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json, or converted from a transformers folder."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise SpecError(f"model {name!r}: packaging a text model needs the `tokenizers` package "
                        "(pip install tokenizers)") from exc
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
            raise SpecError(f"model {name!r}: tokenizer {path} does not load: {str(exc)[:300]} (expected a Hugging "
                            "Face tokenizers tokenizer.json, or a transformers tokenizer folder)") from exc
    if not path.is_dir():
        raise SpecError(f"model {name!r}: tokenizer {path} not found (expected a tokenizer.json file, or a "
                        "transformers tokenizer folder)")
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise SpecError(f"model {name!r}: tokenizer folder {path} has no tokenizer.json; converting it needs "
                        "transformers (pip install transformers)") from exc
    try:
        fast = AutoTokenizer.from_pretrained(str(path), use_fast=True, local_files_only=True)
        return fast.backend_tokenizer
    except Exception as exc:
        raise SpecError(f"model {name!r}: tokenizer folder {path} does not load with transformers "
                        f"({type(exc).__name__}: {str(exc)[:300]}); expected a tokenizer saved with "
                        "save_pretrained, or a tokenizer.json") from exc


def _pad_id(tok, spec: TextSpec) -> int:
    if spec.pad_id >= 0:
        return spec.pad_id
    if tok.padding and tok.padding.get("pad_id") is not None:
        return int(tok.padding["pad_id"])
    for token in _PAD_TOKENS:
        found = tok.token_to_id(token)
        if found is not None:
            return int(found)
    return 0


def package_tokenizer(m: ModelSpec, folder: Path) -> TextSpec:
    """Write ``m``'s tokenizer as ``folder/tokenizer.json``; the text spec pointing at it (absolute path).

    Raises:
        SpecError: The tokenizer does not load, or cannot take the spec's settings.
    """
    spec = m.text
    if spec is None:
        raise SpecError(f"model {m.name!r} is not a text model: it has no tokenizer to package")
    tok = _load(Path(spec.tokenizer), m.name)
    pad_id = _pad_id(tok, spec)
    tok.no_padding()
    tok.no_truncation()  # the runtime sets truncation from the spec
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / "tokenizer.json"
    tok.save(str(dest))
    return replace(spec, tokenizer=str(dest.resolve()), pad_id=pad_id)


__all__ = ["package_tokenizer"]
