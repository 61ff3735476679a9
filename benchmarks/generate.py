"""Time banking with early agreement against an equal fixed share per item, side by side on the tiny adding model.

One run: the generative example's model (examples/generate/prepare.py; built here if ``--model`` is not given),
items of mixed difficulty (sums of 1 to 4 digits, sampled at temperature 1.5 so one sample is often wrong and a
vote helps, and 4-digit sums mostly beyond the model), packaged as a bundle, then run by ``run_generation`` at the
same total time limits in both modes, the engine loaded once and shared (its load is not in the limits):

- ``bank``: each item's share is the time left over the items left, up to ``cap`` x that share, the items after it
  keeping their floor; an item stops once ``agree`` samples agree or the leader cannot be caught;
- ``fixed``: each item exactly limit / items, no early stop, what it does not use is lost.

Printed: accuracy per limit and mode (mean over ``--repeats`` seeds), wall/limit (the run's last write against the
limit, must be < 1.0), and the measured decode tokens/s against the memory-bandwidth bound of this CPU for this
model (the bandwidth measured here by streaming a 512 MB tensor).

    python benchmarks/generate.py [--model DIR] [--items 24] [--repeats 2] [--factors 0.15,0.3,0.6,1.2]
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
        gen = engine.generate(prompt, batch, 8, temperature=1.5, top_p=1.0, max_time_s=None, seed=100 + r)
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
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--factors", default="0.15,0.3,0.6,1.2",
                    help="limits as multiples of the time to draw every item's samples in one round each")
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
    engine.generate(prompt, 9, 8, temperature=1.5, top_p=1.0, max_time_s=None, seed=0)  # warm-up
    t = time.perf_counter()
    gen = engine.generate(prompt, 9, 8, temperature=1.5, top_p=1.0, max_time_s=None, seed=1)
    full = (time.perf_counter() - t) * args.items  # every item's 9 samples in one round
    print(f"model {model}: {ModelShape.from_folder(model).weights_bytes / 1e6:.2f} MB; one round of 9 samples "
          f"{full / args.items:.3f}s -> 'full' = {full:.1f}s for {args.items} items\n")
    print("| limit (s) | x full | bank accuracy | fixed accuracy | bank wall/limit | fixed wall/limit | bank samples | "
          "fixed samples |")
    print("|---|---|---|---|---|---|---|---|")
    for factor in (float(f) for f in args.factors.split(",")):
        limit = full * factor
        acc = {"bank": 0.0, "fixed": 0.0}
        wall = {"bank": 0.0, "fixed": 0.0}
        samples = {"bank": 0, "fixed": 0}
        for r in range(args.repeats):
            for mode in ("bank", "fixed"):
                out = work / f"{mode}-{factor}-{r}.csv"
                report = run_generation(bundle, work / "p" / "data", out, GenerateOptions(
                    time_limit_s=limit, fixed_share=mode == "fixed", progress=False, fresh=True,
                    work_dir=work / f"w-{mode}-{factor}-{r}"), engine=_seeded(engine, r))
                acc[mode] += accuracy(out, answers) / args.repeats
                wall[mode] = max(wall[mode], report.finished_at_s / limit)
                samples[mode] += report.totals()["samples"] // args.repeats
        print(f"| {limit:.1f} | {factor:g} | {acc['bank']:.3f} | {acc['fixed']:.3f} | {wall['bank']:.2f} | "
              f"{wall['fixed']:.2f} | {samples['bank']} | {samples['fixed']} |", flush=True)
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


def _seeded(engine, seed: int):
    """The shared engine, its sampling seeds offset per repeat (each repeat draws other samples)."""
    class Seeded:
        name = engine.name
        context_length = engine.context_length

        def encode(self, text):
            return engine.encode(text)

        def generate(self, prompt_ids, n, max_new_tokens, **kw):
            kw["seed"] = kw["seed"] + 7919 * seed
            return engine.generate(prompt_ids, n, max_new_tokens, **kw)

        def close(self):
            pass
    return Seeded()


if __name__ == "__main__":
    main()
