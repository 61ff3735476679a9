"""The generation budget on a fake clock and a fake engine: the vote and its early stop, the extractor, the time
bank (shares, banking, borrowing within the cap, the floor kept for the items after), the measured costs, and one
item's sampling cut at its allowance with the best answer it has, else the fallback."""

from __future__ import annotations

import pytest

from runtime.errors import BundleError
from runtime.generate import Extractor, GenCosts, Sampling, TimeBank, Vote, solve_item
from runtime.generate.budget import Allowance
from runtime.generate.solve import round_size, round_sizes, solve_items
from runtime.manifest import GenerateSpec
from tests.fixtures.clock import FakeClock
from tests.fixtures.fake_engine import FakeEngine


def test_vote_majority_and_tie_rules():
    v = Vote()
    for a in ["7", None, "5", "5", "7"]:
        v.add(a)
    assert v.counts() == {"7": 2, "5": 2}
    assert v.answer() == "7"  # tie: the answer reached first
    assert Vote("majority", "smallest", list(v.answers)).answer() == "5"
    assert Vote("majority", "largest", list(v.answers)).answer() == "7"
    assert Vote("first_valid", "first", [None, "5", "7"]).answer() == "5"
    assert Vote().answer() is None
    with pytest.raises(BundleError, match="aggregation 'mode'"):
        Vote("mode")


def test_vote_decided_when_k_agree_or_the_leader_cannot_be_caught():
    v = Vote(answers=["3", "3", "4"])
    assert v.decided(remaining=5, agree=3) == ""  # 2 vs 1 with 5 left: undecided
    v.add("3")
    assert "3 samples agree" in v.decided(remaining=4, agree=3)
    assert "cannot be caught" in Vote(answers=["3", "3", "3", "4"]).decided(remaining=1, agree=0)
    assert Vote(answers=["3", "3", "3", "4"]).decided(remaining=2, agree=0) == ""
    assert Vote(answers=[None, None]).decided(remaining=1, agree=2) == ""
    assert Vote("first_valid", answers=[None, "2"]).decided(remaining=6, agree=4) == "first valid answer"


def test_extractor_last_boxed_integer_regex_and_hook():
    ex = Extractor()
    assert ex("so \\boxed{12} or rather \\boxed{ 13 }.") == "13"
    assert ex("no answer here") is None
    assert Extractor(r"\[(\d+)\]")("=[4321]") == "4321"
    assert Extractor(r"\d+")("a 1 b 22") == "22"  # no group: the whole last match
    hook = Extractor(hook=lambda text: text.split()[-1] if text else None, hook_name="h:f")
    assert hook("x y 9") == "9" and hook("") is None
    failing = Extractor(hook=lambda text: 1 / 0, hook_name="h:f")
    assert failing("x") is None and "ZeroDivisionError" in failing.errors[0]
    with pytest.raises(BundleError, match="not a valid regular expression"):
        Extractor("(")


def test_time_bank_shares_bank_and_borrow_within_the_cap():
    clock = FakeClock()
    bank = TimeBank(clock, end_s=100.0, items=10, cap=3.0, floor=0.25)
    a = bank.allowance()
    assert a.share_s == pytest.approx(10.0) and a.allowed_s == pytest.approx(30.0)  # cap x share
    clock.advance(2.0)  # an easy item: decided in 2 s
    assert bank.settle(a, 2.0) == pytest.approx(8.0)  # banked
    b = bank.allowance()
    assert b.share_s == pytest.approx(98.0 / 9) and b.share_s > a.share_s  # the bank raised every later share
    clock.advance(25.0)  # a hard item borrows
    assert bank.settle(b, 25.0) == pytest.approx(98.0 / 9 - 25.0)
    assert bank.banked_s == pytest.approx(8.0) and bank.borrowed_s == pytest.approx(25.0 - 98.0 / 9)
    # Near the end, the floor of the items after an item bounds its borrowing.
    late = TimeBank(FakeClock(), end_s=10.0, items=5, cap=3.0, floor=0.5)
    first = late.allowance()
    assert first.allowed_s == pytest.approx(min(3 * 2.0, 10.0 - 0.5 * 2.0 * 4))


def test_fixed_share_loses_what_an_item_does_not_use():
    clock = FakeClock()
    bank = TimeBank(clock, end_s=100.0, items=10, fixed=True)
    a = bank.allowance()
    clock.advance(1.0)
    bank.settle(a, 1.0)
    b = bank.allowance()
    assert a.allowed_s == b.allowed_s == pytest.approx(10.0)


def test_costs_measured_then_predicted_per_batch_size():
    costs = GenCosts()
    assert not costs.measured
    costs.observe(1, prompt_tokens=10, prefill_s=0.01, steps=20, decode_s=0.2)
    assert costs.prefill_s_per_token == pytest.approx(0.001) and costs.step(1) == pytest.approx(0.01)
    assert costs.step(4) == pytest.approx(0.04)  # unmeasured: scaled up from the nearest
    costs.observe(4, prompt_tokens=10, prefill_s=0.04, steps=10, decode_s=0.15)
    assert costs.step(4) == pytest.approx(0.015)
    assert costs.predict(4, 10, 20) == pytest.approx(0.04 + 0.3)
    assert costs.steps_fitting(1, 10, 0.11) == 10
    assert round_size(costs, 8, 10, 20, 0.35) == (4, 20)  # the most samples whose round fits
    assert round_size(costs, 8, 10, 20, 0.05) == (1, 4)  # one sample of as many tokens as fit


def _spec(**kw) -> GenerateSpec:
    base = {"name": "lm", "folder": "model", "samples": 8, "round_samples": 2, "agree": 3, "max_new_tokens": 20,
            "fallback_answer": "-1"}
    return GenerateSpec(**{**base, **kw})


def test_an_easy_item_stops_early_and_banks():
    clock = FakeClock()
    engine = FakeEngine(clock, odds={"easy": [("4", 1.0)]})
    costs = GenCosts()
    a = Allowance(0.0, 10.0, 30.0)
    r = solve_item("e", engine.encode("easy"), engine, Sampling.of(_spec()), a, costs, Extractor(), clock)
    assert r.answer == "4" and not r.fallback and r.stop == "agreed" and r.samples < 8
    assert r.seconds < a.share_s


def test_a_hard_item_draws_every_sample_when_time_allows():
    clock = FakeClock()
    engine = FakeEngine(clock, odds={"hard": [("7", 0.4), ("1", 0.3), ("2", 0.3)]})
    r = solve_item("h", engine.encode("hard"), engine, Sampling.of(_spec()), Allowance(0.0, 10.0, 30.0), GenCosts(),
                   Extractor(), clock, probe=True)
    assert r.samples == 8 or r.stop == "agreed"
    assert engine.calls[0][1] == 1  # the probe round: one sample, to measure the costs
    assert sum(r.vote.values()) <= r.samples


def test_the_cut_answers_with_the_best_so_far_and_never_passes_it():
    clock = FakeClock()
    engine = FakeEngine(clock, odds={"hard": [("7", 0.5), ("1", 0.5)]}, step_s=0.05)
    a = Allowance(0.0, 1.0, 1.5)  # a round of one sample costs ~1 s: one or two rounds fit
    r = solve_item("h", engine.encode("hard"), engine, Sampling.of(_spec(agree=8)), a, GenCosts(), Extractor(), clock)
    assert r.stop == "cut" and 1 <= r.samples < 8
    assert clock() <= a.cut_s + 1e-9
    assert r.answer in ("7", "1") and not r.fallback


def test_nothing_extracted_gives_the_declared_fallback():
    clock = FakeClock()
    engine = FakeEngine(clock, odds={"q": [(None, 1.0)]})
    r = solve_item("q", engine.encode("q"), engine, Sampling.of(_spec(samples=3)), Allowance(0.0, 10.0, 10.0),
                   GenCosts(), Extractor(), clock)
    assert r.fallback and r.answer == "-1" and r.samples == 3 and r.vote == {}


def test_no_time_at_all_is_a_cut_without_a_round():
    clock = FakeClock()
    engine = FakeEngine(clock)
    r = solve_item("q", engine.encode("q"), engine, Sampling.of(_spec()), Allowance(0.0, 0.0, 0.0), GenCosts(),
                   Extractor(), clock)
    assert r.stop == "cut" and r.samples == 0 and r.fallback and engine.calls == []


def _run_items(fixed: bool, limit: float, prompts: list[str], odds: dict, seed: int,
               together: int = 1) -> tuple[int, float]:
    clock = FakeClock()
    engine = FakeEngine(clock, odds=odds, seed=seed)
    bank = TimeBank(clock, end_s=limit, items=len(prompts), fixed=fixed)
    costs = GenCosts()
    sampling = Sampling.of(_spec(samples=9, round_samples=3, agree=4), early=not fixed)
    right = 0
    for n in range(0, len(prompts), together):
        group = prompts[n:n + together]
        a = bank.allowance(len(group))
        results = solve_items([(p, engine.encode(p)) for p in group], engine, sampling, a, costs, Extractor(), clock,
                              probe=n < 2, seed=n)
        bank.settle(a, sum(r.seconds for r in results), len(group))
        right += sum(r.answer == odds[p][0][0] for p, r in zip(group, results))
    return right, clock()


def test_banking_with_early_agreement_against_a_fixed_share_on_mixed_items():
    """Half the items easy (always right), half hard (the right answer 45 %): over 10 seeded runs, banking the easy
    items' time for the hard ones is right as often or more at each limit, and every run ends by its limit."""
    prompts, odds = [], {}
    for i in range(12):
        p = f"p{i}"
        prompts.append(p)
        odds[p] = [("1", 1.0)] if i % 2 == 0 else [("1", 0.45), ("2", 0.3), ("3", 0.25)]
    for limit in (4.0, 8.0):
        bank = fixed = 0
        for seed in range(10):
            b, b_end = _run_items(False, limit, prompts, odds, seed)
            f, f_end = _run_items(True, limit, prompts, odds, seed)
            assert b_end <= limit and f_end <= limit
            bank, fixed = bank + b, fixed + f
        assert bank >= fixed, (limit, bank, fixed)


def test_items_together_share_each_engine_call_and_their_time():
    clock = FakeClock()
    odds = {"easy": [("4", 1.0)], "hard": [("7", 0.4), ("1", 0.3), ("2", 0.3)], "hard2": [("5", 0.4), ("6", 0.6)]}
    engine = FakeEngine(clock, odds=odds)
    a = Allowance(0.0, 30.0, 60.0)
    prompts = list(odds)
    reports = solve_items([(p, engine.encode(p)) for p in prompts], engine, Sampling.of(_spec()), a, GenCosts(),
                          Extractor(), clock, probe=True)
    assert engine.rounds[0] == prompts and [n for _, n, _ in engine.calls[:3]] == [1, 1, 1]  # the probe: one each
    easy = reports[0]
    assert easy.stop == "agreed" and easy.answer == "4" and easy.rounds == 2  # 1 + 2 samples agree: it leaves
    assert all("easy" not in r for r in engine.rounds[2:]) and len(engine.rounds) > 2
    assert sum(r.seconds for r in reports) == pytest.approx(clock())  # the items' seconds add up to the group's
    assert easy.seconds < reports[1].seconds
    assert all(r.together == 3 and r.share_s == pytest.approx(10.0) and r.allowed_s == pytest.approx(20.0)
               for r in reports)
    assert clock() <= a.cut_s


def test_a_round_of_several_items_shrinks_the_largest_wants_first_to_fit():
    costs = GenCosts()
    costs.observe(1, prompt_tokens=10, prefill_s=0.01, steps=10, decode_s=0.1)  # 1 ms/token prefill, 10 ms/step
    for b in (2, 3, 4, 5, 6):
        costs.observe(b, prompt_tokens=10, prefill_s=0.01 * b, steps=10, decode_s=0.1 * b)
    assert round_sizes(costs, [3, 3], 10, 10, 10.0) == ([3, 3], 10)
    assert round_sizes(costs, [3, 1, 2], 10, 10, 0.40) == ([1, 1, 1], 10)  # 0.11 s per sample: 3 fit, 4 do not
    assert round_sizes(costs, [3, 3], 10, 10, 0.5) == ([2, 2], 10)
    assert round_sizes(costs, [2, 2], 10, 10, 0.1) == ([1, 1], 4)  # one sample each, as many tokens as fit


def test_the_bank_gives_items_together_their_shares_together():
    clock = FakeClock()
    bank = TimeBank(clock, end_s=100.0, items=10, cap=2.0, floor=0.5)
    a = bank.allowance(4)
    assert a.share_s == pytest.approx(40.0) and a.allowed_s == pytest.approx(min(80.0, 100.0 - 0.5 * 10.0 * 6))
    clock.advance(30.0)
    assert bank.settle(a, 30.0, 4) == pytest.approx(10.0) and bank.items_left == 6
    assert bank.allowance().share_s == pytest.approx(70.0 / 6)  # the banked time went to the items after


def test_items_together_draw_more_samples_in_the_same_time():
    """On an engine whose batch of b costs 1 + 0.25 (b - 1) steps of one sample, 4 items together are right as often
    or more than one at a time at a tight limit, and every run ends by it."""
    prompts, odds = [], {}
    for i in range(12):
        prompts.append(f"p{i}")
        odds[f"p{i}"] = [("1", 0.45), ("2", 0.3), ("3", 0.25)]
    alone = together = 0
    for seed in range(10):
        a, a_end = _run_items(False, 4.0, prompts, odds, seed)
        t, t_end = _run_items(False, 4.0, prompts, odds, seed, together=4)
        assert a_end <= 4.0 and t_end <= 4.0
        alone, together = alone + a, together + t
    assert together > alone, (together, alone)
