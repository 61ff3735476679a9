"""Generation engines behind one interface: ``transformers`` (everywhere, the CPU included) and vLLM (a GPU where
it is installed: :mod:`runtime.generate.vllm_engine`, written to vLLM's documented offline API and not run here).

An engine samples continuations of one or more tokenised prompts in one call
(the samples of an item, and of the items answered together, are decoded as
one batch: :mod:`runtime.generate.base`) and says what the call cost: seconds to the
first token (the prefill) and for the decode steps after it, which
:class:`runtime.generate.budget.GenCosts` learns from. ``max_time_s`` is the
hard stop: the transformers engine ends the round when it is reached, with
the tokens made so far.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.errors import BundleError, UsageError
from runtime.generate.base import Engine, Generation, context_of, offline_env


class TransformersEngine:
    """``AutoModelForCausalLM.generate`` on the GPU when there is one, else the CPU (``threads`` of it)."""

    name = "transformers"

    def __init__(self, folder: str | os.PathLike, *, dtype: str = "auto", device: str = "", threads: int | None = None):
        offline_env()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise BundleError(f"{folder} has no config.json: expected a causal LM's save_pretrained folder")
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        loader: Any = AutoModelForCausalLM.from_pretrained  # its stubs type the first argument as a model, not a path
        self.model: Any = loader(str(folder), local_files_only=True, dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.context_length = context_of(self.model.config)
        eos = self.tokenizer.eos_token_id
        self.eos_id: int | None = eos if isinstance(eos, int) else None
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if isinstance(pad, int) else (self.eos_id if self.eos_id is not None else 0)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[list[int]], counts: list[int], max_new_tokens: int, *, temperature: float,
                 top_p: float, max_time_s: float | None, seed: int) -> Generation:
        torch = self.torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        t0 = time.perf_counter()
        marks: dict[str, float] = {}

        class Timer(StoppingCriteria):  # called after every new token: the first call ends the prefill
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001 - transformers' signature
                now = time.perf_counter()
                marks.setdefault("first", now)
                over = max_time_s is not None and now - t0 >= max_time_s
                if over:
                    marks["stopped"] = now
                return torch.full((input_ids.shape[0],), over, dtype=torch.bool, device=input_ids.device)

        torch.manual_seed(seed)
        ids, mask = self._batch(prompts, counts)
        sampling = temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=mask, do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=self.pad_id,
                eos_token_id=self.eos_id, stopping_criteria=StoppingCriteriaList([Timer()]),
                **({"temperature": temperature, "top_p": top_p, "top_k": 0} if sampling else {}))
        end = time.perf_counter()
        texts: list[str] = []
        tokens_made: list[int] = []
        for row in out[:, ids.shape[1]:].tolist():
            tokens = row[:row.index(self.eos_id) + 1] if self.eos_id is not None and self.eos_id in row else row
            if self.eos_id is not None and self.eos_id == self.pad_id and self.eos_id not in tokens:
                tokens = [t for t in tokens if t != self.pad_id]
            tokens_made.append(len(tokens))
            texts.append(str(self.tokenizer.decode(tokens, skip_special_tokens=True)))
        first = marks.get("first", end)
        return Generation(texts=texts, new_tokens=tokens_made, prompt_tokens=int(ids.shape[1]), prefill_s=first - t0,
                          decode_s=end - first, steps=max(0, max(tokens_made, default=0) - 1),
                          stopped="stopped" in marks)

    def _batch(self, prompts: list[list[int]], counts: list[int]):  # noqa: ANN202 - torch tensors
        """Every prompt repeated for each of its samples, padded on the left to the longest (the new tokens of all
        rows then start at the same column), and the attention mask that hides the padding."""
        torch = self.torch
        if len(prompts) != len(counts) or not prompts or min(counts) < 1:
            raise ValueError(f"{len(prompts)} prompt(s) and samples {counts}: expected one count >= 1 per prompt")
        width = max(len(p) for p in prompts)
        rows = [p for p, n in zip(prompts, counts) for _ in range(n)]
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, p in enumerate(rows):
            if p:
                ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
                mask[r, width - len(p):] = 1
        return ids.to(self.device), mask.to(self.device)

    def close(self) -> None:
        del self.model


def vllm_available() -> bool:
    """vLLM is installed and a CUDA GPU is visible (it runs on nothing else)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _load_vllm(folder: str, dtype: str, threads: int | None) -> Engine:
    from runtime.generate.vllm_engine import VllmEngine

    return VllmEngine(folder, dtype=dtype)


def _load_transformers(folder: str, dtype: str, threads: int | None) -> Engine:
    return TransformersEngine(folder, dtype=dtype, threads=threads)


#: name -> (is it usable here, loader)
ENGINES: dict[str, tuple[Callable[[], bool], Callable[[str, str, int | None], Engine]]] = {
    "vllm": (vllm_available, _load_vllm),
    "transformers": (lambda: importlib.util.find_spec("transformers") is not None, _load_transformers),
}


def available_engines() -> list[str]:
    """The engines usable here, preferred first."""
    return [name for name, (usable, _) in ENGINES.items() if usable()]


def choose_engine(name: str) -> str:
    """The engine a spec's ``engine`` means here: "auto" is the first usable; a named one must be usable.

    Raises:
        UsageError: the engine named is unknown, or not usable here (said what is).
    """
    here = available_engines()
    if name == "auto":
        if not here:
            raise UsageError("no generation engine here: install transformers (and torch), or vllm on a GPU")
        return here[0]
    if name not in ENGINES:
        raise UsageError(f"generation engine {name!r}: expected auto or one of {', '.join(ENGINES)}")
    if name not in here:
        raise UsageError(f"generation engine {name!r} is not usable here (vllm needs the vllm package and a CUDA "
                         f"GPU); usable: {', '.join(here) or 'none'}")
    return name


def load_engine(name: str, folder: str | os.PathLike, *, dtype: str = "auto", threads: int | None = None) -> Engine:
    """Load the model folder with engine ``name`` (auto: the preferred usable one)."""
    chosen = choose_engine(name)
    return ENGINES[chosen][1](str(folder), dtype, threads)


__all__ = ["ENGINES", "Engine", "Generation", "TransformersEngine", "available_engines", "choose_engine", "context_of",
           "load_engine", "offline_env", "vllm_available"]
