"""Time for generation, item by item: the measured costs of prefill and decode, and the time bank.

**Costs** (:class:`GenCosts`) are measured where the run is: prefill seconds per
prompt token, and seconds per decode step for each batch size drawn (a step
makes one token for every sample of the batch). Until measured they are
priors; the first items (``probe_items``) draw a single sample first, so the
costs are measured before a larger round is sized from them.

**The bank** (:class:`TimeBank`): every item's share is the time left over the
items left. An item may use up to ``cap`` times its share (it borrows from the
items after it) while every item after it keeps ``floor`` times the first fair
share; what an item does not use (its vote decided early) stays in the pool,
so the shares of the items after it grow (it banked). Items answered together
(``batch_items``) take their shares together. ``fixed=True`` is the
plain alternative, each item exactly the first fair share and unused time lost,
which ``benchmarks/generate.py`` compares against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

#: Priors until measured: seconds per prompt token (prefill) and per decode step of one sample.
PRIOR_PREFILL_S = 2e-4
PRIOR_STEP_S = 0.02
#: Measurements are averaged with this weight on the newest.
EWMA = 0.5


@dataclass
class GenCosts:
    """Prefill per prompt token and decode per step, by batch size; measured, priors until then."""

    prefill_s_per_token: float = PRIOR_PREFILL_S
    step_s: dict[int, float] = field(default_factory=dict)  # batch size -> seconds per decode step
    measured: bool = False
    rounds: int = 0

    def step(self, batch: int) -> float:
        """Seconds per decode step at ``batch`` samples: measured, else the nearest measured batch size scaled
        (up linearly in the batch, never down: a conservative guess), else the prior."""
        if batch in self.step_s:
            return self.step_s[batch]
        if not self.step_s:
            return PRIOR_STEP_S * batch
        near = min(self.step_s, key=lambda b: (abs(math.log(b / batch)), -b))
        return self.step_s[near] * max(1.0, batch / near)

    def predict(self, batch: int, prompt_tokens: int, new_tokens: int) -> float:
        """Seconds for one round: ``batch`` samples of ``new_tokens`` each after a ``prompt_tokens`` prompt."""
        return self.prefill_s_per_token * prompt_tokens * batch + self.step(batch) * new_tokens

    def steps_fitting(self, batch: int, prompt_tokens: int, seconds: float) -> int:
        """How many decode steps a round of ``batch`` samples can make in ``seconds``."""
        left = seconds - self.prefill_s_per_token * prompt_tokens * batch
        return max(0, int(left / self.step(batch))) if left > 0 else 0

    def observe(self, batch: int, prompt_tokens: int, prefill_s: float, steps: int, decode_s: float) -> None:
        """Fold one round's measurement in (prefill of ``batch`` prompts of ``prompt_tokens``, ``steps`` decode
        steps in ``decode_s``)."""
        self.rounds += 1
        if prompt_tokens > 0 and prefill_s > 0:
            value = prefill_s / (prompt_tokens * batch)
            self.prefill_s_per_token = value if not self.measured else EWMA * value + (1 - EWMA) * self.prefill_s_per_token
        if steps > 0 and decode_s > 0:
            value = decode_s / steps
            old = self.step_s.get(batch)
            self.step_s[batch] = value if old is None else EWMA * value + (1 - EWMA) * old
        self.measured = True

    def to_dict(self) -> dict:
        return {"prefill_s_per_token": self.prefill_s_per_token, "decode_s_per_step": dict(sorted(self.step_s.items())),
                "decode_tokens_per_s": {b: b / s for b, s in sorted(self.step_s.items()) if s > 0},
                "measured": self.measured, "rounds": self.rounds}


@dataclass(frozen=True)
class Allowance:
    """One item's time: its share of the time left, and the most it may use (its cut, on the run's clock)."""

    start_s: float
    share_s: float
    allowed_s: float

    @property
    def cut_s(self) -> float:
        return self.start_s + self.allowed_s


class TimeBank:
    """Shares the time to ``end_s`` over ``items`` items (see the module's docstring)."""

    def __init__(self, clock: Callable[[], float], end_s: float, items: int, *, cap: float = 2.0, floor: float = 0.5,
                 fixed: bool = False):
        if items < 0:
            raise ValueError(f"items {items}: expected a count")
        if not (cap >= 1.0 and 0.0 <= floor <= 1.0):
            raise ValueError(f"cap {cap} and floor {floor}: expected cap >= 1 and 0 <= floor <= 1")
        self.clock, self.end_s, self.cap, self.floor, self.fixed = clock, end_s, cap, floor, fixed
        self.items_left = items
        self.fair_s = max(0.0, end_s - clock()) / items if items else 0.0  # the first fair share
        self.banked_s = 0.0  # unused share of the items answered, summed
        self.borrowed_s = 0.0  # time used over the share, summed

    def left_s(self) -> float:
        return max(0.0, self.end_s - self.clock())

    def allowance(self, items: int = 1) -> Allowance:
        """The time of the next ``items`` items, answered together (call :meth:`settle` once they are): ``items``
        shares of the time left, up to ``cap`` times that while the items after them keep their floor."""
        now, left = self.clock(), self.left_s()
        n = max(1, self.items_left)
        k = max(1, min(items, n))
        if self.fixed:
            share = min(self.fair_s * k, left)
            return Allowance(now, share, share)
        share = left * k / n
        keep = self.floor * self.fair_s * (n - k)  # the items after these keep their floor
        allowed = max(min(self.cap * share, left - keep), min(share, left))
        return Allowance(now, share, allowed)

    def settle(self, allowance: Allowance, used_s: float, items: int = 1) -> float:
        """``items`` items were answered in ``used_s``: returns what they banked (> 0) or borrowed (< 0) against
        their share."""
        self.items_left = max(0, self.items_left - items)
        delta = allowance.share_s - used_s
        if delta >= 0:
            self.banked_s += delta
        else:
            self.borrowed_s -= delta
        return delta

    def skip(self) -> None:
        """An item answered without generating (resumed, or refused): it takes no share."""
        self.items_left = max(0, self.items_left - 1)


__all__ = ["EWMA", "PRIOR_PREFILL_S", "PRIOR_STEP_S", "Allowance", "GenCosts", "TimeBank"]
