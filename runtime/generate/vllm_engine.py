"""The vLLM engine: ``LLM(...).generate(prompts, SamplingParams(n=..., max_tokens=..., temperature=..., top_p=...))``,
vLLM's documented offline API. UNVERIFIED: no GPU and no vLLM on the machine this was written on; it is registered
(:data:`runtime.generate.engines.ENGINES`) only where vllm imports and a CUDA GPU is visible.

vLLM has no per-call time limit: the budget sizes each round's ``max_tokens`` from the measured decode cost so the
round ends before the item's cut (``max_time_s`` is not enforced inside a round here). The prefill is not timed
apart: the round's time to its first token is read from the requests' metrics where vLLM gives them (the slowest
prompt's), else the whole round counts as decode (a conservative cost per token). The prompts of one call (items
answered together) go to vLLM as one list, each with its own ``SamplingParams`` (its samples, its seed).
"""

from __future__ import annotations

import os
import time
from typing import Any

from runtime.generate.base import Generation, context_of, offline_env


class VllmEngine:
    name = "vllm"

    def __init__(self, folder: str | os.PathLike, *, dtype: str = "auto", gpus: int | None = None):
        offline_env()
        import torch
        from vllm import LLM, SamplingParams

        self._params = SamplingParams
        self.llm: Any = LLM(model=str(folder), tokenizer=str(folder), dtype=dtype,
                            tensor_parallel_size=gpus or max(1, torch.cuda.device_count()))
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length = int(getattr(self.llm.llm_engine.model_config, "max_model_len", 0)) or context_of(
            getattr(self.tokenizer, "config", None))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, prompts: list[list[int]], counts: list[int], max_new_tokens: int, *, temperature: float,
                 top_p: float, max_time_s: float | None, seed: int) -> Generation:
        params = [self._params(n=n, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed + i)
                  for i, n in enumerate(counts)]
        t0 = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        end = time.perf_counter()
        firsts = [getattr(getattr(o, "metrics", None), "first_token_time", None) for o in outputs]
        arrivals = [getattr(getattr(o, "metrics", None), "arrival_time", None) for o in outputs]
        timed = [f - a for f, a in zip(firsts, arrivals) if isinstance(f, float) and isinstance(a, float)]
        prefill = min(max(max(timed, default=0.0), 0.0), end - t0)
        samples = [s for o in outputs for s in o.outputs]
        tokens_made = [len(s.token_ids) for s in samples]
        return Generation(texts=[s.text for s in samples], new_tokens=tokens_made,
                          prompt_tokens=max((len(p) for p in prompts), default=0), prefill_s=prefill,
                          decode_s=end - t0 - prefill, steps=max(0, max(tokens_made, default=0) - 1))

    def close(self) -> None:
        del self.llm


__all__ = ["VllmEngine"]
