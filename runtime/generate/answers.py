"""From generated text to an item's answer: the extractor (a regex or a hook), and the vote over samples.

The vote also says when sampling can stop early (:meth:`Vote.decided`): once
``agree`` samples gave the same answer, or once the leader cannot be caught by
the samples still to draw (every one of them could go to the runner-up, or to
an answer not seen yet, and the leader would still lead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.errors import BundleError
from runtime.manifest import GENERATE_AGGREGATIONS, GENERATE_TIES

#: The extractor when a spec gives none: the last ``\\boxed{...}`` integer, as reasoning models write their answer.
DEFAULT_EXTRACTOR = r"\\boxed\{\s*(-?\d+)\s*\}"


class Extractor:
    """The answer in one sample's text: the regex's last match (its first group, else the whole match), or a hook's
    return value (text, or None when it found nothing). A hook that raises finds nothing in that sample."""

    def __init__(self, pattern: str = "", hook: Callable[[str], object] | None = None, hook_name: str = ""):
        self.hook, self.hook_name = hook, hook_name
        self.pattern = pattern or DEFAULT_EXTRACTOR
        try:
            self.regex = re.compile(self.pattern)
        except re.error as exc:
            raise BundleError(f"extractor {self.pattern!r} is not a valid regular expression ({exc})") from exc
        self.errors: list[str] = []  # the hook's failures, the first few, for the report

    def __call__(self, text: str) -> str | None:
        if self.hook is not None:
            try:
                found = self.hook(text)
            except Exception as exc:  # the user's code: costs this sample, never the item
                if len(self.errors) < 5:
                    self.errors.append(f"{self.hook_name}: {type(exc).__name__}: {exc}")
                return None
            return None if found is None or str(found).strip() == "" else str(found).strip()
        matches = list(self.regex.finditer(text))
        if not matches:
            return None
        last = matches[-1]
        return (last.group(1) if self.regex.groups else last.group(0)).strip()


@dataclass
class Vote:
    """The answers of an item's samples so far, in the order they came."""

    aggregation: str = "majority"
    tie: str = "first"
    answers: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.aggregation not in GENERATE_AGGREGATIONS:
            raise BundleError(f"aggregation {self.aggregation!r}: expected one of {', '.join(GENERATE_AGGREGATIONS)}")
        if self.tie not in GENERATE_TIES:
            raise BundleError(f"tie {self.tie!r}: expected one of {', '.join(GENERATE_TIES)}")

    def add(self, answer: str | None) -> None:
        self.answers.append(answer)

    def counts(self) -> dict[str, int]:
        """Each answer found and how many samples gave it, in the order each was first found."""
        out: dict[str, int] = {}
        for a in self.answers:
            if a is not None:
                out[a] = out.get(a, 0) + 1
        return out

    def ranked(self) -> list[tuple[str, int]]:
        """The answers best first: by count, then by the tie rule."""
        counts = self.counts()
        order = {a: i for i, a in enumerate(counts)}
        if self.tie == "first":
            def key(a: str) -> tuple:
                return (-counts[a], order[a])
        else:
            sign = 1 if self.tie == "smallest" else -1

            def key(a: str) -> tuple:
                num = _number(a)
                return (-counts[a], num is None, sign * num if num is not None else 0.0, order[a])
        return [(a, counts[a]) for a in sorted(counts, key=key)]

    def answer(self) -> str | None:
        """The item's answer now: the leader (majority) or the first found (first_valid); None if nothing was found."""
        if self.aggregation == "first_valid":
            return next((a for a in self.answers if a is not None), None)
        ranked = self.ranked()
        return ranked[0][0] if ranked else None

    def decided(self, remaining: int, agree: int) -> str:
        """Why sampling can stop now ("" when it cannot): ``agree`` samples agree, or the leader cannot be caught by
        the ``remaining`` samples; first_valid stops at the first answer found."""
        if self.aggregation == "first_valid":
            return "first valid answer" if self.answer() is not None else ""
        ranked = self.ranked()
        if not ranked:
            return ""
        lead = ranked[0][1]
        second = ranked[1][1] if len(ranked) > 1 else 0
        if agree and lead >= agree:
            return f"{lead} samples agree"
        if remaining > 0 and lead > second + remaining:
            return f"the leader ({lead} vs {second}) cannot be caught by the {remaining} sample(s) left"
        return ""

    def summary(self) -> dict[str, int]:
        return dict(self.ranked())


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


__all__ = ["DEFAULT_EXTRACTOR", "Extractor", "Vote"]
