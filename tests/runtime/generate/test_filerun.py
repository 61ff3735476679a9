"""A generative bundle's file run on the tiny adding model (examples/generate): every row answered before a tight
limit, a kill -9 resumed without answering a finished item again, an extractor that finds nothing giving the
fallback, a prompt too long for the context refused or truncated as the spec says, and the evaluation-API shape
answering one item per call within its deadline."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.bundle import open_bundle
from runtime.generate import GenerateOptions, run_generation
from runtime.generate.serve import GenerationPredictor
from tests.fixtures.adder import adder_model, answers, package_project, submission
from tests.fixtures.clock import FakeClock
from tests.fixtures.fake_engine import FakeEngine

pytestmark = pytest.mark.timeout(900)  # the session's first test trains the model (a minute idle, more when loaded)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return adder_model(tmp_path_factory.getbasetemp())


def test_the_bundle_packages_verifies_and_answers_every_row_before_a_tight_limit(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=15)
    opened = open_bundle(bundle)  # every file checksummed, the model's folder included
    assert any(f.startswith("models/adder/") and f.endswith(".safetensors") for f in opened.manifest.files)
    assert "Verification" in (bundle / "report.md").read_text()
    out = tmp_path / "submission.csv"
    limit = 45.0
    report = run_generation(bundle, project / "data", out, GenerateOptions(time_limit_s=limit, progress=False))
    got, truth = submission(out), answers(project)
    assert list(got) == list(truth)  # every test id, in order
    assert report.finished_at_s < limit and report.slack_s is not None and report.slack_s > 0
    assert all(it["stop"] in ("agreed", "samples", "cut") for it in report.items)
    assert sum(got[i] == truth[i] for i in truth) >= 3  # the model adds: right often (not always)
    saved = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert saved["totals"]["items"] == 15 and saved["costs"]["measured"]
    # the totals add what was spent (never the banked column, whose shares already hold earlier items' savings)
    assert saved["totals"]["seconds"] == pytest.approx(sum(it["seconds"] for it in saved["items"]))
    assert saved["totals"]["seconds"] < limit and "banked_s" not in saved["totals"]
    assert {"samples", "new_tokens", "seconds", "banked_s", "vote", "stop", "answer"} <= set(saved["items"][0])


def test_a_tight_limit_on_a_fake_clock_answers_every_item_and_ends_by_it(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=20, extractor=r"\\boxed\{(\d+)\}")
    clock = FakeClock()
    engine = FakeEngine(clock, step_s=0.05, tokens=8, context_length=64)
    limit = 12.0  # 20 items, a round of 3 samples ~0.6 s: about two rounds per item
    report = run_generation(bundle, project / "data", tmp_path / "s.csv",
                            GenerateOptions(time_limit_s=limit, margin_s=0.5, reserve_s=0.2, progress=False),
                            clock=clock, engine=engine)
    assert clock() <= limit - 0.5
    assert len(report.items) == 20 and all(it["samples"] >= 1 for it in report.items)
    assert all(not it["fallback"] for it in report.items)  # the fake answers "\boxed{1}": extractor below
    assert sum(it["seconds"] for it in report.items) <= limit


def test_kill_9_resumes_without_answering_a_finished_item_again(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=40, samples=9, round_samples=1, agree=9)
    out = tmp_path / "submission.csv"
    journal_glob = "submission.ninefit-work/generate/*/answers.jsonl"
    cmd = [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(project / "data"), "--out", str(out),
           "--time-limit", "10m"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            found = list(tmp_path.glob(journal_glob))
            if found and len(found[0].read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    journal = next(tmp_path.glob(journal_glob))
    before = [json.loads(line)["id"] for line in journal.read_text().splitlines() if line.strip().endswith("}")]
    assert 3 <= len(before) < 40
    first = submission(out)  # whole, from the run's last write: every row, answered or fallback
    assert list(first) == list(answers(project))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in journal.read_text().splitlines()]
    assert sorted(ids) == sorted(answers(project)) and len(ids) == len(set(ids))  # each item answered exactly once
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["resumed"] >= len(before)
    assert "item(s) resumed from" in done.stdout


def test_an_extractor_that_finds_nothing_gives_the_fallback(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=4, extractor=r"NEVER(\d+)", fallback_answer="42")
    out = tmp_path / "s.csv"
    report = run_generation(bundle, project / "data", out, GenerateOptions(progress=False))
    assert set(submission(out).values()) == {"42"}
    assert all(it["fallback"] and it["samples"] == 7 and it["vote"] == {} for it in report.items)
    assert report.covered_rows == 0


@pytest.mark.parametrize("too_long", ["refuse", "truncate"])
def test_a_prompt_longer_than_the_context_is_refused_or_truncated(tmp_path, model, too_long):
    long = "1" * 70 + "+" + "2" * 70 + "="  # 142 tokens: the model's context is 64
    bundle, project = package_project(tmp_path, model, items=3, prompts={"q001": long}, too_long=too_long,
                               fallback_answer="-1")
    out = tmp_path / "s.csv"
    report = run_generation(bundle, project / "data", out, GenerateOptions(progress=False))
    item = next(it for it in report.items if it["id"] == "q001")
    if too_long == "refuse":
        assert item["stop"] == "refused" and "over the 56 the context allows" in item["reason"]
        assert submission(out)["q001"] == "-1" and item["samples"] == 0
    else:
        assert item["truncated"] == 142 - 56 and item["prompt_tokens"] == 56 and item["samples"] >= 1
    assert "truncated" in (bundle / "report.md").read_text()


def test_the_evaluation_api_shape_answers_one_item_per_call_within_its_deadline(tmp_path, model):
    import pandas as pd

    bundle, project = package_project(tmp_path, model, items=6)
    predictor = GenerationPredictor(bundle, response_timeout_s=5.0, time_limit_s=300.0, expected_items=6)
    test = pd.read_csv(project / "data" / "test.csv", dtype=str)
    for n in range(len(test)):
        start = time.perf_counter()
        answer = predictor.predict(test.iloc[[n]][["id"]], test.iloc[[n]][["prompt"]])
        took = time.perf_counter() - start
        assert list(answer.columns) == ["id", "answer"] and len(answer) == 1 and answer["id"][0] == test["id"][n]
        if n:  # the first call loads the engine, without a deadline (as Kaggle's first call)
            assert predictor.reports[n]["allowed_s"] <= 5.0 * 0.95 - 0.25
            assert took < 5.0 or predictor.reports[n]["stop"] == "cut"
    assert len(predictor.reports) == 6


def test_runtime_run_the_notebooks_call_runs_a_generative_bundle(tmp_path, model):
    import runtime

    bundle, project = package_project(tmp_path, model, items=4)
    report = runtime.run(bundle, project / "data", tmp_path / "s.csv", runtime.RunOptions(time_limit_s=120.0,
                                                                                          progress=False))
    assert isinstance(report, runtime.RunReport) and report.rows == 4
    assert len(report.generation["items"]) == 4 and "rows answered by adder" in report.table()
    assert list(submission(tmp_path / "s.csv")) == list(answers(project))


def test_transformers_decodes_prompts_of_different_lengths_together_as_one_at_a_time(model):
    from runtime.generate.engines import TransformersEngine

    engine = TransformersEngine(model, threads=1)
    prompts = [engine.encode(p) for p in ("3+4=", "123+456=", "12+7=")]
    assert len({len(p) for p in prompts}) == 3  # the left padding differs per row
    together = engine.generate(prompts, [1, 2, 1], 8, temperature=0.0, top_p=1.0, max_time_s=None, seed=0)
    alone = [engine.generate([p], [1], 8, temperature=0.0, top_p=1.0, max_time_s=None, seed=0).texts[0]
             for p in prompts]
    assert together.texts == [alone[0], alone[1], alone[1], alone[2]]
    assert together.prompt_tokens == max(len(p) for p in prompts)
    assert [texts for texts, _ in together.split([1, 2, 1])] == [[alone[0]], [alone[1]] * 2, [alone[2]]]


def test_items_answered_together_answer_every_row_before_the_limit(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=12, batch_items=4)
    out = tmp_path / "submission.csv"
    report = run_generation(bundle, project / "data", out, GenerateOptions(time_limit_s=40.0, progress=False))
    got, truth = submission(out), answers(project)
    assert list(got) == list(truth) and report.slack_s is not None and report.slack_s > 0
    assert [it["together"] for it in report.items] == [4] * 12
    assert "items answered up to 4 together" in report.table()
    assert sum(got[i] == truth[i] for i in truth) >= 3
    groups = [report.items[k:k + 4] for k in range(0, 12, 4)]
    for g in groups:  # an item's seconds are its part of the group's rounds: no item is charged the whole group
        assert all(it["seconds"] < sum(x["seconds"] for x in g) for it in g)


def test_a_crash_inside_a_group_resumes_from_the_groups_answered_before_it(tmp_path, model):
    bundle, project = package_project(tmp_path, model, items=12, batch_items=4, extractor=r"\\boxed\{(\d+)\}")
    out = tmp_path / "s.csv"
    options = GenerateOptions(time_limit_s=600.0, progress=False, work_dir=tmp_path / "work")

    with open(project / "data" / "test.csv", newline="") as f:
        third = {r["prompt"] for r in list(csv.DictReader(f))[8:]}  # the third group's prompts

    class Crashing(FakeEngine):  # dies on the third group's first round
        def generate(self, prompts, counts, max_new_tokens, **kw):
            if {"".join(chr(i) for i in p) for p in prompts} & third:
                raise RuntimeError("the kernel died")
            return super().generate(prompts, counts, max_new_tokens, **kw)

    clock = FakeClock()
    with pytest.raises(RuntimeError, match="kernel died"):
        run_generation(bundle, project / "data", out, options, clock=clock, engine=Crashing(clock, context_length=64))
    first = submission(out)  # whole: the two groups' answers, the fallback for the rest
    assert list(first) == list(answers(project)) and sum(a == "1" for a in first.values()) == 8
    clock = FakeClock()
    engine = FakeEngine(clock, context_length=64)
    report = run_generation(bundle, project / "data", out, options, clock=clock, engine=engine)
    assert report.resumed == 8 and len(report.items) == 12
    assert {p for r in engine.rounds for p in r} == third  # only the third group was sampled again
    assert set(submission(out).values()) == {"1"}


def test_groups_skip_a_refused_item_and_leave_items_without_time_to_a_rerun(tmp_path, model):
    long = "1" * 70 + "+" + "2" * 70 + "="  # refused: over the context
    bundle, project = package_project(tmp_path, model, items=10, batch_items=3, prompts={"q001": long},
                               extractor=r"\\boxed\{(\d+)\}", fallback_answer="-1")

    class NoHardStop(FakeEngine):  # as vLLM: a round runs to its end, whatever the time left
        def generate(self, prompts, counts, max_new_tokens, **kw):
            return super().generate(prompts, counts, max_new_tokens, **{**kw, "max_time_s": None})

    clock = FakeClock()
    engine = NoHardStop(clock, step_s=0.3, tokens=8, context_length=64)  # the first round alone takes ~3 s
    report = run_generation(bundle, project / "data", tmp_path / "s.csv",
                            GenerateOptions(time_limit_s=4.0, margin_s=0.5, reserve_s=0.2, progress=False,
                                            work_dir=tmp_path / "w"), clock=clock, engine=engine)
    by_id = {it["id"]: it for it in report.items}
    assert by_id["q001"]["stop"] == "refused" and by_id["q001"]["answer"] == "-1"
    assert all(long not in r for r in engine.rounds)  # never sent to the engine
    assert len(engine.rounds[0]) == 3  # q000, q002 and q003: the refused q001 takes no place in the group
    late = [it["id"] for it in report.items if it["stop"] == "no time"]
    assert late == [f"q{i:03d}" for i in range(4, 10)]  # the groups after the overrun: the fallback, not journaled
    journal = next((tmp_path / "w").glob("generate/*/answers.jsonl")).read_text()
    assert all(f'"{i}"' not in journal for i in late) and '"q000"' in journal and '"q001"' in journal
    assert set(submission(tmp_path / "s.csv")[i] for i in late) == {"-1"}
