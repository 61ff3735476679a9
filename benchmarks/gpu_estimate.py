"""How close is the GPU estimate to the figures NVIDIA and MLCommons publish? (issue 27)

For every row of ``packager/data/gpu_figures.toml`` this script builds the row's model at its size with
random weights (``benchmarks/_gpu_models.py``: transformers configs and plain torch, nothing downloaded),
exports it to ONNX (cached under ``--cache``, by default a folder in the system's temp dir), counts its
FLOPs and bytes at the row's batch and sequence length (``count_graph``, as ``ninefit estimate`` counts a
member), prices one batch with the fitted GPU model (``packager/data/gpu_fit.json``) on the row's GPU,
precision and backend, and prints estimate / published throughput. Fitted and held-out rows are reported
apart; held-out rows are also checked against the band the estimate would carry.

It also checks that the counts it just made are the ones the fit was made from
(``packager/data/gpu_figure_costs.json``): ``--write-costs`` rewrites that file from them and refits
(``packager/data/gpu_fit.json``, as ``python -m packager.estimate.price.gpufit`` does).

Goal: every held-out row within [0.67, 1.5], every fitted row within [0.8, 1.25], every held-out row
inside its band. Prints PASS or FAIL and exits 0 / 1.

    .venv/bin/python benchmarks/gpu_estimate.py [--cache DIR] [--write-costs] [--json FILE]

About 5 minutes on a 2-core CPU, most of it the 14 exports (the first run; later runs reuse the cache).
No row is skipped: the largest export (BERT-large, 1.3 GB of weights) takes under a minute here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _gpu_models as models  # noqa: E402

from packager.estimate.price.figures import load_figures  # noqa: E402
from packager.estimate.price.flops import count_graph  # noqa: E402
from packager.estimate.price.gpufit import COSTS, backend_of, load_costs, seen, shipped_fit, write_fit  # noqa: E402
from packager.estimate.price.gpumodel import GraphWork  # noqa: E402
from packager.estimate.price.gpuprice import graph_signature, power_share, price_call, sustained_clock  # noqa: E402,E501
from packager.estimate.price.hardware import get_target  # noqa: E402

FITTED_GOAL = (0.8, 1.25)
HELD_OUT_GOAL = (0.67, 1.5)
#: What is known about the rows the model misses (printed with them; see the README's GPU estimate section).
MISSED = {
    "mlperf30-retinanet-offline-int8-l4": (
        "the same GPU, model, precision and harness in MLPerf v4.1 (mlperf41-retinanet-offline-int8-2xl4, fitted) "
        "is 26% faster per GPU, as are v3.1 on NVIDIA's own L4x1 system (225.9/s, TensorRT 9.0) and v4.0 on Dell's "
        "(220.5/s; both read, not in the table: GPU_FIGURES.md), while v3.0's ResNet-50 and BERT on L4 match the fit "
        "and the later rounds: v3.0's RetinaNet (TensorRT 8.6) is the outlier, and nothing in the model (GPU, "
        "precision, backend, kind of work, source) tells this row apart from the v4.1 one; a software-round term per source and kind of model, tried, made the 10-fold cross-validation on the "
        "fitted rows worse (95th percentile x1.69 -> x1.92) and was kept out"),
    "mlperf30-bert999-offline-fp16-l4": (
        "no fitted row has the MLPerf harness at fp16 (its efficiency there is extrapolated: the 'unseen' band); tying the harness's precision interaction to its other "
        "precisions left the cross-validation unchanged and was kept out"),
    "deberta-s512-b1-pt-fp32-t4": (
        "a batch-1 PyTorch eager DeBERTa: half its estimated time is per-kernel dispatch, which the model prices "
        "per backend and GPU, not per host CPU; a host-dispatch cost overlapping the GPU's work, tried, moved "
        "this row only to 0.79-0.82 and made the cross-validation worse (x1.69 -> x1.73), so it was kept out"),
}


def count(figure, cache: Path) -> tuple[str, dict, GraphWork, object]:
    """(the model's key, the dims counted at, the row's work per batch, the graph's cost) of one row."""
    path = models.export(figure, cache)
    dims = {"sequence": figure.input_shape[0]} if models.symbolic_sequence(figure) else {}
    cost = count_graph(path, figure.batch, dims)
    return models.model_key(figure), dims, GraphWork.from_cost(cost), cost


def write_costs(rows: list, works: dict, signatures: dict) -> None:
    graphs: dict[str, dict] = {}
    figures = {}
    for f, key, dims in rows:
        gkey = f"{key}@b{f.batch}" + "".join(f"-{k}{v}" for k, v in sorted(dims.items()))
        graphs[gkey] = {"model": key, "batch": f.batch, "dims": dims, "work": works[f.id].to_json()}
        figures[f.id] = {"graph": gkey}
    data = {"version": 1, "generated_by": "benchmarks/gpu_estimate.py --write-costs",
            "note": "per published figure: its model built at random weights (benchmarks/_gpu_models.py), exported "
                    "to ONNX and counted by packager.estimate.price.flops.count_graph at the row's batch and sequence",
            "figures": figures, "graphs": graphs, "signatures": signatures}
    COSTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    load_costs.cache_clear()
    shipped_fit.cache_clear()
    done = write_fit()
    print(f"wrote {COSTS} ({len(figures)} rows, {len(graphs)} graphs) and refitted: gpu_fit.json "
          f"({len(done.fitted)} rows fitted)")


def same_counts(a: GraphWork, b: GraphWork) -> bool:
    """Two counts of one graph agree (FLOPs, bytes, kernels) within a part in a million."""
    def totals(w: GraphWork) -> tuple[float, float]:
        return (sum(f * n for _, f, _, n in w.compute),
                sum(b * n for _, _, b, n in w.compute) + sum(b * n for _, b, n in w.memory))
    fa, ba = totals(a)
    fb, bb = totals(b)
    return a.kernels == b.kernels and abs(fa - fb) <= 1e-6 * max(fa, 1) and abs(ba - bb) <= 1e-6 * max(ba, 1)


def report(table, fit, costs, fresh: dict) -> tuple[list[dict], bool]:
    """One line per row: estimate / published throughput, its goal, and for a held-out row whether its band covers it."""
    out, ok = [], True
    fitted_rows = [f for f in table.figures if f.id in fit.fitted]
    for held in (False, True):
        goal = HELD_OUT_GOAL if held else FITTED_GOAL
        print(f"\n{'held-out' if held else 'fitted'} rows (goal: estimate / published within [{goal[0]}, {goal[1]}]"
              f"{'; inside the band' if held else ''}):")
        rows = [f for f in table.figures if f.holdout == held]
        seconds = fit.seconds([replace(costs.case(f), work=fresh[f.id]) for f in rows])
        for f, s in zip(rows, (float(x) for x in seconds)):  # numpy scalars do not go into JSON
            ratio = f.batch / s / f.throughput
            basis = "seen" if seen(fitted_rows, backend_of(f), f.precision) else "unseen"
            band = math.exp(getattr(fit.bands, basis))
            inside = bool(1 / band <= ratio <= band)
            good = bool(goal[0] <= ratio <= goal[1] and (inside or not held))
            ok &= good
            print(f"  {'  ' if good else '!!'} {ratio:6.3f}  {f.id:<50} {f.throughput:>10.4g}/s  "
                  + (f"band x{band:.2f} ({basis}){'' if inside else ' MISSED'}" if held else ""))
            out.append({"id": f.id, "held_out": held, "estimate_per_s": f.batch / s, "published_per_s": f.throughput,
                        "ratio": ratio, "basis": basis, "band": band, "inside_band": inside, "within_goal": good})
    return out, ok


def issue_example(costs, cache: Path, table) -> None:
    """The issue's user: BERT-base, sequence 128, batch 128 on t4x2, priced as `ninefit estimate` prices it."""
    figure = table.figure("trt-bert-base-s128-b128-fp16-t4")
    path = models.export(figure, cache)
    cost = count_graph(path, 128, {"sequence": 128})
    sig = graph_signature(path)
    t4 = get_target("t4x2")
    print("\nthe issue's example, as `ninefit estimate --target t4x2` prices one T4 (BERT-base, seq 128, batch 128):")
    for precision, trt, published in (("fp16", True, "trt-bert-base-s128-b128-fp16-t4"), ("fp16", False, None),
                                      ("fp32", False, "ft-bert-base-s128-b32-ts-fp32-t4")):
        call = price_call(cost, sig, t4, precision, tensorrt=trt)
        e = call.estimate
        line = (f"  {precision} {'TensorRT EP' if trt else 'CUDA EP    '}: {128 / e.seconds:7.0f} seq/s (band "
                f"{128 / e.high:.0f}-{128 / e.low:.0f}), {e.confidence}, basis: {call.basis}")
        if published:
            pub = table.figure(published)
            line += f"; published {pub.throughput:.0f}/s ({pub.backend}, batch {pub.batch})"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ninefit-gpu-figures",
                        help="where the exported ONNX graphs are kept between runs (default: %(default)s)")
    parser.add_argument("--write-costs", action="store_true", help="rewrite packager/data/gpu_figure_costs.json")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows' results as JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = load_figures()
    rows, fresh, signatures = [], {}, {}
    for f in table.figures:
        key, dims, work, _ = count(f, args.cache)
        rows.append((f, key, dims))
        fresh[f.id] = work
        if key not in signatures:
            signatures[key] = graph_signature(models.export(f, args.cache))
    print(f"{len(table.figures)} rows, {len(signatures)} models built, exported and counted in "
          f"{time.perf_counter() - start:.0f} s (none skipped)")
    if args.write_costs:
        write_costs(rows, fresh, signatures)
    costs, fit = load_costs(), shipped_fit()
    stale = [f.id for f in table.figures if f.id not in costs.work or not same_counts(costs.work[f.id], fresh[f.id])]
    print(f"counts reproduce the stored ones (gpu_figure_costs.json): {'yes' if not stale else 'NO: ' + ', '.join(stale)}")
    results, ok = report(table, fit, costs, fresh)
    mhz, ratio = sustained_clock(fit)
    print(f"\nT4's fitted compute factor: x{ratio:.2f} an A100's on the same work, about {mhz:.0f} of its 1590 MHz "
          "if Turing matched Ampere per clock; its fitted power bound (70 W): back-to-back compute holds "
          + ", ".join(f"{p} {power_share(fit, 'T4', p):.0%}" for p in ("fp32", "fp16", "int8"))
          + " of its peak (" + ", ".join(f"{fam} fp16 {power_share(fit, fam, 'fp16'):.0%}" for fam in ("L4", "A100", "H100"))
          + ": above 100% is a bound that never binds)")
    print(f"bands (95th percentile of a 10-fold cross-validation of the fitted rows): backend seen at the precision "
          f"x{math.exp(fit.bands.seen):.2f} ({fit.bands.seen_rows} rows), unseen x{math.exp(fit.bands.unseen):.2f} "
          f"({fit.bands.unseen_rows} rows)")
    issue_example(costs, args.cache, table)
    fitted = [r for r in results if not r["held_out"]]
    held = [r for r in results if r["held_out"]]
    worst = lambda rs: max(rs, key=lambda r: abs(math.log(r["ratio"])))  # noqa: E731
    print(f"\nfitted: {sum(r['within_goal'] for r in fitted)}/{len(fitted)} within {list(FITTED_GOAL)} "
          f"(worst {worst(fitted)['ratio']:.3f}); held-out: {sum(r['within_goal'] for r in held)}/{len(held)} within "
          f"{list(HELD_OUT_GOAL)} and their band (worst {worst(held)['ratio']:.3f}); "
          f"{time.perf_counter() - start:.0f} s in all")
    ok &= not stale
    if args.json:
        args.json.write_text(json.dumps({"rows": results, "pass": ok}, indent=1))
    missed = [r for r in results if not r["within_goal"]]
    if missed:
        print("\nmissed (the goal is not met for these rows; the table and its held-out marks are as published and "
              "chosen before the fit, and are not changed to pass):")
        for r in missed:
            print(f"  {r['id']}: {r['ratio']:.3f} ({'held out' if r['held_out'] else 'fitted'}); {MISSED.get(r['id'], '')}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
