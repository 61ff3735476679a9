"""What every generation engine shares: the result of a round (:class:`Generation`), the interface
(:class:`Engine`), and the offline flags and context length every engine reads the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Generation:
    """One round: ``n`` samples of one prompt."""

    texts: list[str]
    new_tokens: list[int]  # tokens each sample generated (its end-of-text token included)
    prompt_tokens: int
    prefill_s: float  # seconds to the first new token (the prompt's forward pass, for every sample)
    decode_s: float  # seconds of the decode steps after it
    steps: int  # decode steps after the first token (the longest sample's new tokens less one)
    stopped: bool = False  # the hard stop (max_time_s) ended the round


class Engine(Protocol):
    """What the budget and the runs need of an engine."""

    name: str
    context_length: int  # tokens the model takes, prompt and new tokens together

    def encode(self, text: str) -> list[int]: ...

    def generate(self, prompt_ids: list[int], n: int, max_new_tokens: int, *, temperature: float, top_p: float,
                 max_time_s: float | None, seed: int) -> Generation: ...

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
