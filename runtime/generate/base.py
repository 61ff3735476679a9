"""What every generation engine shares: the result of a round (:class:`Generation`), the interface
(:class:`Engine`), and the offline flags and context length every engine reads the same way.

A round is one engine call: ``counts[i]`` samples of ``prompts[i]`` for every
prompt of the call (the samples of one item, or of several items answered
together), all decoded as one batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Generation:
    """One round: the samples of every prompt of the call, in the order asked (prompt by prompt)."""

    texts: list[str]
    new_tokens: list[int]  # tokens each sample generated (its end-of-text token included)
    prompt_tokens: int  # the longest prompt's tokens (the others are padded to it)
    prefill_s: float  # seconds to the first new token (the prompts' forward pass, for every sample)
    decode_s: float  # seconds of the decode steps after it
    steps: int  # decode steps after the first token (the longest sample's new tokens less one)
    stopped: bool = False  # the hard stop (max_time_s) ended the round

    def split(self, counts: list[int]) -> list[tuple[list[str], list[int]]]:
        """(texts, new tokens) of each prompt, ``counts`` being the samples asked of each."""
        if sum(counts) != len(self.texts):
            raise ValueError(f"{len(self.texts)} samples came back for {sum(counts)} asked ({counts})")
        out, at = [], 0
        for n in counts:
            out.append((self.texts[at:at + n], self.new_tokens[at:at + n]))
            at += n
        return out


class Engine(Protocol):
    """What the budget and the runs need of an engine."""

    name: str
    context_length: int  # tokens the model takes, prompt and new tokens together

    def encode(self, text: str) -> list[int]: ...

    def generate(self, prompts: list[list[int]], counts: list[int], max_new_tokens: int, *, temperature: float,
                 top_p: float, max_time_s: float | None, seed: int) -> Generation:
        """``counts[i]`` samples of each tokenised prompt ``prompts[i]``, decoded together, at most ``max_new_tokens``
        each; ``max_time_s``: the hard stop (None: none)."""
        ...

    def close(self) -> None: ...


def offline_env() -> None:
    """Hugging Face libraries never reach the network from a bundle (Kaggle's rerun has none)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "1"


def context_of(config: Any) -> int:
    """Tokens a model's config says it takes (0: it does not say)."""
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


__all__ = ["Engine", "Generation", "context_of", "offline_env"]
