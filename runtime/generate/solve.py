"""Items answered within their allowance, alone or several together (``batch_items``: their samples share each
engine call): rounds of samples sized to the time left, each item stopped once its vote is decided, all cut at the
allowance with the best answer so far (else the declared fallback)."""

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
    together: int = 1  # items answered together, in the same engine calls (batch_items)

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
    """(samples, new tokens) of the next round of one item: see :func:`round_sizes`."""
    counts, tokens = round_sizes(costs, [want], prompt_tokens, max_new, seconds)
    return counts[0], tokens


def round_sizes(costs: GenCosts, wants: list[int], prompt_tokens: int, max_new: int,
                seconds: float) -> tuple[list[int], int]:
    """(samples of each item, new tokens) of the next round: up to ``wants`` samples of each item, fewer (the
    largest want first) until the round of ``max_new`` tokens is predicted to end in ``seconds``; else one sample of
    each of as many tokens as fit (0: none fit). ``prompt_tokens``: the longest prompt of the round."""
    counts = [max(1, w) for w in wants]
    while True:
        if costs.predict(sum(counts), prompt_tokens, max_new) <= seconds:
            return counts, max_new
        big = max(range(len(counts)), key=lambda i: (counts[i], -i))
        if counts[big] == 1:
            break
        counts[big] -= 1
    return counts, min(max_new, costs.steps_fitting(len(counts), prompt_tokens, seconds))


@dataclass
class _Task:
    """One item of a group while it is sampled."""

    prompt_ids: list[int]
    vote: Vote
    report: ItemReport

    def want(self, sampling: Sampling, probe: bool) -> int:
        remaining = sampling.samples - self.report.samples
        return 1 if probe and self.report.rounds == 0 else min(sampling.round_samples, remaining,
                                                               _needed(self.vote, sampling))

    def settled(self, sampling: Sampling) -> bool:
        """Whether the item is done before the next round (all its samples drawn, or its vote decided, or cut)."""
        if self.report.stop:
            return True
        remaining = sampling.samples - self.report.samples
        why = "" if remaining <= 0 or not sampling.early else self.vote.decided(remaining, sampling.agree)
        if remaining <= 0:
            self.report.stop, self.report.reason = "samples", f"all {sampling.samples} samples drawn"
        elif why:
            self.report.stop, self.report.reason = "agreed", why
        return bool(self.report.stop)


def solve_item(item_id: str, prompt_ids: list[int], engine: Engine, sampling: Sampling, allowance: Allowance,
               costs: GenCosts, extract: Extractor, clock: Callable[[], float], *, probe: bool = False,
               seed: int = 0) -> ItemReport:
    """One item answered alone: :func:`solve_items` of one."""
    return solve_items([(item_id, prompt_ids)], engine, sampling, allowance, costs, extract, clock, probe=probe,
                       seed=seed)[0]


def solve_items(items: list[tuple[str, list[int]]], engine: Engine, sampling: Sampling, allowance: Allowance,
                costs: GenCosts, extract: Extractor, clock: Callable[[], float], *, probe: bool = False,
                seed: int = 0) -> list[ItemReport]:
    """Sample the ``items`` (id, prompt tokens) together, each until its vote is decided or its samples are drawn,
    all until the group's cut (``allowance.cut_s``): every round is one engine call holding the samples of each item
    still open, sized to end before the cut. An item's seconds are its part of each round it was in (by its samples
    in the round), so the items' seconds add up to the group's.

    ``probe``: the first round draws one sample of each item, so the costs are measured before a larger round is
    sized.
    """
    k = len(items)
    tasks = [_Task(ids, Vote(sampling.aggregation, sampling.tie),
                   ItemReport(id=i, answer=sampling.fallback, prompt_tokens=len(ids), share_s=allowance.share_s / k,
                              allowed_s=allowance.allowed_s / k, together=k)) for i, ids in items]
    last = clock()
    rounds = 0
    while True:
        open_ = [t for t in tasks if not t.settled(sampling)]
        if not open_:
            break
        left = allowance.cut_s - clock()
        width = max(len(t.prompt_ids) for t in open_)
        counts, tokens = round_sizes(costs, [t.want(sampling, probe) for t in open_], width, sampling.max_new_tokens,
                                     left)
        if not costs.measured and left > 0:  # priors only: a short round measures them (the hard stop bounds it)
            counts, tokens = [1] * len(open_), max(tokens, min(MIN_ROUND_TOKENS, sampling.max_new_tokens))
        if tokens < min(MIN_ROUND_TOKENS, sampling.max_new_tokens):
            _cut(open_, f"{max(left, 0.0):.2f}s left of its {allowance.allowed_s:.2f}s: no round fits")
            break
        gen = engine.generate([t.prompt_ids for t in open_], counts, tokens, temperature=sampling.temperature,
                              top_p=sampling.top_p, max_time_s=max(left, 0.0), seed=seed * 1009 + rounds)
        costs.observe(sum(counts), gen.prompt_tokens, gen.prefill_s, gen.steps, gen.decode_s)
        rounds += 1
        now = clock()
        for t, n, (texts, made) in zip(open_, counts, gen.split(counts)):
            for text in texts:
                t.vote.add(extract(text))
            t.report.rounds += 1
            t.report.samples += len(texts)
            t.report.new_tokens += sum(made)
            t.report.seconds += (now - last) * n / sum(counts)
        last = now
        if gen.stopped or now >= allowance.cut_s:
            _cut([t for t in open_ if not t.settled(sampling)],
                 "the item's time ran out during a round (the hard stop)")
            break
    tail = (clock() - last) / k
    reports = []
    for t in tasks:
        r = t.report
        r.seconds += tail
        r.vote = t.vote.summary()
        found = t.vote.answer()
        r.fallback = found is None
        r.answer = sampling.fallback if found is None else found
        reports.append(r)
    return reports


def _cut(tasks: list[_Task], reason: str) -> None:
    for t in tasks:
        t.report.stop, t.report.reason = "cut", reason


def _needed(vote: Vote, sampling: Sampling) -> int:
    """The fewest samples that could decide the vote (all agreeing with the leader): a round need not draw more."""
    if not sampling.early:
        return sampling.samples
    if sampling.aggregation == "first_valid":
        return 1
    ranked = vote.ranked()
    return max(1, sampling.agree - (ranked[0][1] if ranked else 0))


__all__ = ["MIN_ROUND_TOKENS", "ItemReport", "Sampling", "round_size", "round_sizes", "solve_item", "solve_items"]
