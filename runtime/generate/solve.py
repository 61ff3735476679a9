"""One item, answered within its allowance: rounds of samples sized to the time left, stopped once the vote is
decided, cut at the item's allowance with the best answer so far (else the declared fallback)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.generate.answers import Extractor, Vote
from runtime.generate.budget import Allowance, GenCosts
from runtime.generate.engines import Engine
from runtime.manifest import GenerateSpec

#: A round is started only when it can make at least this many new tokens before the item's cut.
MIN_ROUND_TOKENS = 2


@dataclass
class ItemReport:
    """What one item got: samples drawn, tokens, time used, banked (> 0) or borrowed (< 0), the vote, why it
    stopped (``stop``: samples, agreed, cut, refused, resumed, no time), and the answer (``fallback``: nothing was
    extracted, the declared fallback answer stands)."""

    id: str
    answer: str
    samples: int = 0
    rounds: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    share_s: float = 0.0
    allowed_s: float = 0.0
    banked_s: float = 0.0
    vote: dict[str, int] = field(default_factory=dict)
    stop: str = ""
    reason: str = ""
    fallback: bool = False
    truncated: int = 0  # prompt tokens dropped (too_long = "truncate")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sampling:
    """How an item is sampled: the spec's settings, with the agreement rule resolved."""

    max_new_tokens: int
    temperature: float
    top_p: float
    samples: int
    round_samples: int
    agree: int
    aggregation: str
    tie: str
    fallback: str
    early: bool = True  # stop once the vote is decided (off: the fixed-share baseline draws every sample it can)
    seed: int = 0

    @classmethod
    def of(cls, spec: GenerateSpec, *, early: bool = True) -> Sampling:
        agree = spec.agree or spec.samples // 2 + 1
        return cls(spec.max_new_tokens, spec.temperature, spec.top_p, spec.samples,
                   spec.round_samples or spec.samples, agree, spec.aggregation, spec.tie, spec.fallback_answer,
                   early=early, seed=spec.seed)


def round_size(costs: GenCosts, want: int, prompt_tokens: int, max_new: int, seconds: float) -> tuple[int, int]:
    """(samples, new tokens) of the next round: the most samples up to ``want`` whose round of ``max_new`` tokens is
    predicted to end in ``seconds``; else one sample of as many tokens as fit (0: none fit)."""
    for batch in range(want, 0, -1):
        if costs.predict(batch, prompt_tokens, max_new) <= seconds:
            return batch, max_new
    return 1, min(max_new, costs.steps_fitting(1, prompt_tokens, seconds))


def solve_item(item_id: str, prompt_ids: list[int], engine: Engine, sampling: Sampling, allowance: Allowance,
               costs: GenCosts, extract: Extractor, clock: Callable[[], float], *, probe: bool = False,
               seed: int = 0) -> ItemReport:
    """Sample ``item_id`` until its vote is decided, its samples are drawn, or its cut (``allowance.cut_s``).

    ``probe``: the first round draws one sample, so the costs are measured before a larger round is sized.
    """
    vote = Vote(sampling.aggregation, sampling.tie)
    report = ItemReport(id=item_id, answer=sampling.fallback, prompt_tokens=len(prompt_ids),
                        share_s=allowance.share_s, allowed_s=allowance.allowed_s)
    start = clock()
    while report.samples < sampling.samples:
        remaining = sampling.samples - report.samples
        why = vote.decided(remaining, sampling.agree) if sampling.early else ""
        if why:
            report.stop, report.reason = "agreed", why
            break
        left = allowance.cut_s - clock()
        want = 1 if probe and report.rounds == 0 else min(sampling.round_samples, remaining, _needed(vote, sampling))
        batch, tokens = round_size(costs, want, len(prompt_ids), sampling.max_new_tokens, left)
        if not costs.measured and left > 0:  # priors only: a short round measures them (the hard stop bounds it)
            batch, tokens = 1, max(tokens, min(MIN_ROUND_TOKENS, sampling.max_new_tokens))
        if tokens < min(MIN_ROUND_TOKENS, sampling.max_new_tokens):
            report.stop = "cut"
            report.reason = f"{max(left, 0.0):.2f}s left of its {allowance.allowed_s:.2f}s: no round fits"
            break
        gen = engine.generate(prompt_ids, batch, tokens, temperature=sampling.temperature, top_p=sampling.top_p,
                              max_time_s=max(left, 0.0), seed=seed * 1009 + report.rounds)
        costs.observe(batch, gen.prompt_tokens, gen.prefill_s, gen.steps, gen.decode_s)
        for text in gen.texts:
            vote.add(extract(text))
        report.rounds += 1
        report.samples += len(gen.texts)
        report.new_tokens += sum(gen.new_tokens)
        if gen.stopped or clock() >= allowance.cut_s:
            report.stop, report.reason = "cut", "the item's time ran out during a round (the hard stop)"
            break
    else:
        report.stop = report.stop or "samples"
        report.reason = report.reason or f"all {sampling.samples} samples drawn"
    report.seconds = clock() - start
    report.vote = vote.summary()
    found = vote.answer()
    report.fallback = found is None
    report.answer = sampling.fallback if found is None else found
    return report


def _needed(vote: Vote, sampling: Sampling) -> int:
    """The fewest samples that could decide the vote (all agreeing with the leader): a round need not draw more."""
    if not sampling.early:
        return sampling.samples
    if sampling.aggregation == "first_valid":
        return 1
    ranked = vote.ranked()
    return max(1, sampling.agree - (ranked[0][1] if ranked else 0))


__all__ = ["MIN_ROUND_TOKENS", "ItemReport", "Sampling", "round_size", "solve_item"]
