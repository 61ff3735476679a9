"""Packaging a text model: its tokenizer into the bundle, and parity on real windows.

The user's tokenizer is a Hugging Face ``tokenizers`` file (``tokenizer.json``)
or a transformers tokenizer folder; a folder without a ``tokenizer.json`` is
converted here, once, with transformers (``AutoTokenizer`` to its fast
tokenizer), so the bundle always carries a ``tokenizer.json`` that the runtime
loads with ``tokenizers`` alone.

Parity is checked on windows of real test rows at their real lengths: each of
the first windows alone (batch 1, no padding), then all of them in
length-sorted batches padded to each batch's longest, exactly as the runtime
will feed them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from packager.spec import ModelSpec
from packager.verify import VerifyResult, compare, tolerances
from runtime.errors import SpecError, ToleranceError
from runtime.manifest import TextSpec
from runtime.data.text import Chunk, TextRows

#: Windows checked one by one at their own length (each is one session call).
SINGLE_WINDOWS = 32
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
    tok = _load(Path(spec.tokenizer), m.name)
    pad_id = _pad_id(tok, spec)
    tok.no_padding()
    tok.no_truncation()  # the runtime sets truncation from the spec
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / "tokenizer.json"
    tok.save(str(dest))
    return replace(spec, tokenizer=str(dest.resolve()), pad_id=pad_id)


def verify_text(model, m: ModelSpec, text: TextSpec, variant: str, precision: str, path: Path, rows: TextRows,
                n_rows: int, source: str) -> VerifyResult:
    """Parity of ``path`` with ``model`` on real windows at their real lengths, then in padded sorted batches."""
    import torch

    from runtime.backends import get as get_backend
    from runtime.backends.base import BackendOptions

    atol, rtol = tolerances(m, precision)
    chunk = Chunk.of(rows, 0, n_rows)
    runner = get_backend("onnxruntime").load(path, f"{m.name}/{variant}", BackendOptions(providers=("CPUExecutionProvider",)))
    checks = []
    with runner, torch.no_grad():
        for label, batches in (("real length", [chunk.order[i:i + 1] for i in range(min(SINGLE_WINDOWS, len(chunk.order)))]),
                               ("sorted, padded", _batches(chunk, m.batch_size, text.max_tokens))):
            expected, got = [], []
            for idx in batches:
                feed = rows.feed(text, chunk.windows[idx])
                out = model(*(torch.from_numpy(feed[i.name]) for i in m.inputs))
                out = out[0] if isinstance(out, (tuple, list)) else out
                expected.append(out.detach().cpu().numpy().reshape(len(idx), -1))
                got.append(np.asarray(runner.infer(feed)[m.output]).reshape(len(idx), -1))
            batch = 1 if label == "real length" else m.batch_size
            checks.append(compare(m.output, batch, np.concatenate(expected), np.concatenate(got), atol, rtol))
            c = checks[-1]
            if not c.ok:
                raise ToleranceError(
                    f"model {m.name!r} variant {variant!r} ({precision}) does not match the torch model on "
                    f"{label} windows: output {m.output!r} element {list(c.worst_index)}: ONNX {c.got:.6g} vs torch "
                    f"{c.expected:.6g}; tolerance |diff| <= {c.atol:g} + {c.rtol:g}*|torch| (samples: {source}). "
                    "Set atol/rtol in the spec only if this difference is acceptable.")
    return VerifyResult(m.name, variant, precision, path.name, source, tuple(checks))


def _batches(chunk: Chunk, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    return [chunk.order[pos:end] for pos, end in chunk.batches(batch_size, max_tokens)]


__all__ = ["SINGLE_WINDOWS", "package_tokenizer", "verify_text"]
