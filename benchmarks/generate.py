"""Time banking with early agreement against an equal fixed share per item, side by side on the tiny adding model.

One run: the generative example's model (examples/generate/prepare.py; built here if ``--model`` is not given),
items of mixed difficulty (sums of 1 to 4 digits, sampled at temperature 1.5 so one sample is often wrong and a
vote helps, and 4-digit sums mostly beyond the model), packaged as a bundle, then run by ``run_generation`` at the
same total time limits in every mode, the engine loaded once and shared (its load is not in the limits):

- ``bank``: each item's share is the time left over the items left, up to ``cap`` x that share, the items after it
  keeping their floor; an item stops once ``agree`` samples agree or the leader cannot be caught;
- ``fixed``: each item exactly limit / items, no early stop, what it does not use is lost;
- ``together``: ``bank`` with ``--together`` items answered together (``batch_items``: their samples in the same
  engine calls).

Printed: accuracy per limit and mode (mean over ``--repeats`` seeds), wall/limit (the run's last write against the
limit, must be < 1.0), and the measured decode tokens/s against the memory-bandwidth bound of this CPU for this
model (the bandwidth measured here by streaming a 512 MB tensor).

    python benchmarks/generate.py [--model DIR] [--items 480] [--repeats 2] [--factors 0.15,0.3,0.6,1.2] [--together 4]

Exits 1 if the goal is missed: banking's accuracy below the fixed share's at any limit (or not above it at x0.3
and below), or any cell's wall/limit at 1.0 or more.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from packager.estimate.price.generation import ModelShape  # noqa: E402
from packager.generate import package_generative  # noqa: E402
from runtime.generate import GenerateOptions, load_engine, run_generation  # noqa: E402
from tests.fixtures.adder import prepare_module, write_project  # noqa: E402


def memory_bandwidth(gib: float = 0.5, rounds: int = 5) -> float:
    """Bytes/s this CPU streams: the best of ``rounds`` sums over a ``gib`` GiB float32 tensor (torch's threads)."""
    import torch

    x = torch.ones(int(gib * 2**30 / 4))
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        x.sum().item()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best


def decode_rate(engine, prompt: list[int], batch: int, rounds: int = 15) -> tuple[float, float]:
    """(decode tokens/s, mean context tokens) at ``batch`` samples: the median over ``rounds`` rounds of 8 tokens."""
    import statistics

    rates = []
    for r in range(rounds):
        gen = engine.generate([prompt], [batch], 8, temperature=1.5, top_p=1.0, max_time_s=None, seed=100 + r)
        if gen.steps and gen.decode_s > 0:
            rates.append(batch * gen.steps / gen.decode_s)
    return statistics.median(rates), len(prompt) + 4


def accuracy(out: Path, answers: dict[str, str]) -> float:
    with open(out, newline="") as f:
        got = {r["id"]: r["answer"] for r in csv.DictReader(f)}
    return sum(got.get(i) == a for i, a in answers.items()) / len(answers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a built model folder (default: build one, ~1-10 min)")
    ap.add_argument("--items", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--together", type=int, default=4, help="batch_items of the 'together' mode (default 4)")
    ap.add_argument("--factors", default="0.15,0.3,0.6,1.2",
                    help="limits as multiples of 'full': a run's time to draw every item's samples (no limit, no "
                         "early stop)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ninefit-bench-generate-"))
    model = args.model or prepare_module().build_model(work / "model", log=False)
    spec = write_project(work / "p", model, items=args.items, digits=(1, 2, 3, 4), temperature=1.5, samples=9,
                         round_samples=3, agree=3)
    bundle = work / "bundle"
    package_generative(spec, bundle)
    with open(work / "p" / "data" / "answers.csv", newline="") as f:
        answers = {r["id"]: r["answer"] for r in csv.DictReader(f)}
    engine = load_engine("transformers", bundle / "models" / "adder")
    prompt = engine.encode("1234+5678=")
    gen = engine.generate([prompt], [9], 8, temperature=1.5, top_p=1.0, max_time_s=None, seed=0)  # warm-up
    report = run_generation(bundle, work / "p" / "data", work / "full.csv", GenerateOptions(
        early_stop=False, progress=False, fresh=True, work_dir=work / "w-full"), engine=engine)
    full = report.finished_at_s - report.started_at_s  # every item's 9 samples, in the spec's rounds of 3
    print(f"model {model}: {ModelShape.from_folder(model).weights_bytes / 1e6:.2f} MB; a run drawing every item's 9 "
          f"samples (no limit, no early stop): 'full' = {full:.2f}s for {args.items} items (accuracy "
          f"{accuracy(work / 'full.csv', answers):.3f})\n")
    print("| limit (s) | x full | bank accuracy | fixed accuracy | together accuracy | bank wall/limit | "
          "fixed wall/limit | together wall/limit | bank samples | fixed samples | together samples |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    modes = ("bank", "fixed", "together")
    missed = []
    for factor in (float(f) for f in args.factors.split(",")):
        limit = full * factor
        acc = dict.fromkeys(modes, 0.0)
        wall = dict.fromkeys(modes, 0.0)
        samples = dict.fromkeys(modes, 0)
        for r in range(args.repeats):
            for mode in modes:
                out = work / f"{mode}-{factor}-{r}.csv"
                report = run_generation(bundle, work / "p" / "data", out, GenerateOptions(
                    time_limit_s=limit, fixed_share=mode == "fixed", progress=False, fresh=True,
                    batch_items=args.together if mode == "together" else 1,
                    work_dir=work / f"w-{mode}-{factor}-{r}"), engine=_seeded(engine, r))
                acc[mode] += accuracy(out, answers) / args.repeats
                wall[mode] = max(wall[mode], report.finished_at_s / limit)
                samples[mode] += report.totals()["samples"] // args.repeats
        print(f"| {limit:.1f} | {factor:g} | " + " | ".join(f"{acc[m]:.3f}" for m in modes) + " | "
              + " | ".join(f"{wall[m]:.2f}" for m in modes) + " | " + " | ".join(str(samples[m]) for m in modes)
              + " |", flush=True)
        if acc["bank"] < acc["fixed"] or (factor <= 0.3 and acc["bank"] <= acc["fixed"]):
            missed.append(f"x{factor:g}: banking {acc['bank']:.3f} against the fixed share's {acc['fixed']:.3f}")
        missed += [f"x{factor:g}: {m} wall/limit {wall[m]:.2f}" for m in modes if wall[m] >= 1.0]
    bw = memory_bandwidth()
    shape = ModelShape.from_folder(model)
    for batch in (1, 3, 9):
        rate, context = decode_rate(engine, prompt, batch)
        step_bytes = shape.weights_bytes + batch * context * shape.kv_bytes_per_token
        bound = batch * bw / step_bytes
        print(f"\ndecode at batch {batch}: measured {rate:,.0f} tokens/s (median of 15 rounds); memory-bandwidth bound "
              f"{bound:,.0f} tokens/s (this CPU streams {bw / 1e9:.1f} GB/s; {step_bytes / 1e6:.2f} MB read per step) -> "
              f"{rate / bound:.2%} of the bound")
    print(f"\n(sample texts: {gen.texts[:3]})")
    print("\ngoal (banking >= the fixed share at every limit, > at x0.3 and below; wall/limit < 1.0 in every cell): "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))
    sys.exit(1 if missed else 0)


def _seeded(engine, seed: int):
    """The shared engine, its sampling seeds offset per repeat (each repeat draws other samples)."""
    class Seeded:
        name = engine.name
        context_length = engine.context_length

        def encode(self, text):
            return engine.encode(text)

        def generate(self, prompts, counts, max_new_tokens, **kw):
            kw["seed"] = kw["seed"] + 7919 * seed
            return engine.generate(prompts, counts, max_new_tokens, **kw)

        def close(self):
            pass
    return Seeded()


if __name__ == "__main__":
    main()
