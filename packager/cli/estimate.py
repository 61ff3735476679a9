"""``ninefit estimate BUNDLE --target t4x2 --rows 25000 --time-limit 9h`` (a bundle that serves: its evaluation-API
shape, :mod:`packager.estimate.serve`)."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from runtime.cli import duration_arg

#: Exit status per verdict (2 is a usage or input error, as for every command).
EXIT_CODES = {"fits": 0, "tight": 3, "does not fit": 4}


def _margin(text: str) -> tuple[str, float]:
    if text.strip().endswith("%"):
        try:
            share = float(text.strip()[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 <= share < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a share of the limit between 0% and 99%")
        return "share", share
    try:
        return "seconds", duration_arg(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or a share of the limit, e.g. 10%") from None


def _rows(text: str) -> int:
    try:
        rows = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        rows = 0
    if rows < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected the hidden test set's number of rows, e.g. 25000")
    return rows


def register(sub) -> None:
    from packager.estimate.price.hardware import TARGETS

    p = sub.add_parser("estimate", help="estimate a bundle's run time on a Kaggle target, with a verdict",
                       description="Translate the bundle's measured profile to a Kaggle target and print per stage "
                       "and member the expected time with its band, the total against the limit, a verdict (fits: "
                       "the band's high edge fits limit - margin; tight: only the expected time does; does not fit), "
                       "pre-flight checks and, when it does not fit, the best plan that does. A blocking pre-flight "
                       "check (the run needs more RAM than the notebook has; a member fits no GPU memory even at "
                       "batch 1) makes the verdict 'does not fit' whatever the times. The plan may change "
                       "batch sizes per member; `ninefit run` has one --batch-size for all members, so set it with "
                       "--batch-size only if all members agree. A bundle whose spec has a [serve] table is priced as "
                       "it serves Kaggle's evaluation API (--file-run for its file run): the startup (install, "
                       "imports, the server) against [serve] startup_limit_s, the first call (every member loaded, no "
                       "deadline), each declared batch size against the response deadline less the runtime's margin "
                       "(the members each call runs, the ones it leaves out, the largest batch each rung fits), and "
                       "the whole against the limit; when it does not fit, the rung and share of every batch's rows "
                       "each member gets as the run paces its time.",
                       epilog="Exit status: 0 fits; 3 tight; 4 does not fit (by time, or by a blocking check: "
                       "pre-flight, or for a bundle that serves a startup over its limit or a call that cannot be "
                       "answered in time); 2 usage or input error (bad flag, not a bundle, unreadable run report). "
                       "With --json the verdict is also in the output (\"shape\": \"file\" or \"serve\"; a "
                       "serving estimate adds \"serve\"). Durations take a unit: 9h, 540m, 32400s, 1h30m "
                       f"(a bare number such as 9 is refused).{_margin_rule()}")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--target", default="t4x2", help=f"hardware: {', '.join(TARGETS)} (default: %(default)s)")
    p.add_argument("--rows", type=_rows, default=None, help="rows of the hidden test set (from the data page); "
                   "required for a file run; for a bundle that serves, default: [serve] expected_rows (or "
                   "expected_batches x the rows per batch)")
    p.add_argument("--time-limit", type=duration_arg, default=9 * 3600.0,
                   help="run-time limit, e.g. 9h, 540m (default: 9h)")
    p.add_argument("--margin", type=_margin, default=None, help="safety margin: a duration (30m) or a share of the "
                   "limit (10%%); default: the margin `ninefit run` keeps by default (see below)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="override every member's batch size (as `ninefit run --batch-size`)")
    p.add_argument("--lanes", type=int, default=None, metavar="N",
                   help="lanes the run uses at once, as `ninefit run --lanes` (default: what the run does: one per "
                   "GPU of the target, 2 on t4x2; on --target local, the CPU lanes the run's rule gives this machine, "
                   "priced from the lane speedup measured when packaging; 1 on another CPU target). Members are "
                   "laid out over the lanes by the run's own planner (side by side, or one member's rows split); "
                   "the plan names each step's lane")
    p.add_argument("--tensorrt", action="store_true", help="engines are built by TensorRT on the target (adds build time)")
    p.add_argument("--plan", action="store_true",
                   help="show the best plan that fits even when everything fits (a bundle that serves: the paced plan)")
    p.add_argument("--calibrate", type=Path, action="append", default=[], metavar="RUN_REPORT.json",
                   help="fold a run report from the target (ninefit run's run_report.json) into its calibration first; "
                   "may be repeated")
    p.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                   help="calibration file (default: ~/.cache/ninefit/calibration.json, or under $XDG_CACHE_HOME)")
    p.add_argument("--no-calibration", action="store_true", help="ignore stored calibrations")
    p.add_argument("--data", type=Path, default=None, metavar="DATA",
                   help="a bundle that serves with [serve] batch_by: the public test (the data folder, or the test "
                   "table) whose groups give the batches' sizes, scaled to expected_rows / expected_batches")
    p.add_argument("--file-run", action="store_true",
                   help="for a bundle that serves: estimate its file run (submission.csv) instead")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--chart", type=Path, default=None, metavar="PNG", help="write a chart of the stages against the limit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.manifest import Manifest

    if Manifest.load(args.bundle).generate is not None:  # a causal LM's bundle: the generation bounds
        return _generative(args)
    return _run_ensemble(args)


def _run_ensemble(args: argparse.Namespace) -> int:
    from packager.estimate.calibrate import CalibrationStore, calibrate
    from packager.estimate.estimator import BudgetEstimate, EstimateOptions, estimate_bundle
    from packager.estimate.price.hardware import get_target
    from packager.estimate.render import format_table
    from packager.offline.image import image_facts
    from runtime.bundle import open_bundle
    from runtime.errors import SpecError, UsageError

    get_target(args.target)  # an unknown target fails before anything else
    if args.batch_size is not None and args.batch_size < 1:
        raise SpecError(f"--batch-size {args.batch_size}: expected a positive number of rows")
    margin = None
    if args.margin is not None:
        kind, value = args.margin
        margin = value * args.time_limit if kind == "share" else value
    bundle = open_bundle(args.bundle, verify=False)
    serve = bundle.manifest.serve if not args.file_run else None
    if serve is None:
        if args.rows is None:
            raise UsageError("--rows: the hidden test set's number of rows is needed (from the competition's data "
                             "page), e.g. --rows 25000")
        if args.data is not None:
            raise UsageError("--data gives the public test's batch_by groups to a bundle that serves; a file run "
                             "takes its rows from --rows")
        rows = args.rows
    else:
        from packager.estimate.serve import declared_batches

        if args.chart is not None:
            raise UsageError("--chart draws a file run's stages; for a bundle that serves add --file-run")
        if args.lanes not in (None, 1):
            raise UsageError(f"--lanes {args.lanes}: a serving run has one lane (each call runs its members one "
                             "after another)")
        batches = declared_batches(serve, bundle.manifest, args.rows, args.data)
        rows = batches.rows
    options = EstimateOptions(target=args.target.strip().lower(), rows=rows, time_limit_s=args.time_limit,
                              margin_s=margin, batch_size=args.batch_size, lanes=args.lanes,
                              tensorrt=args.tensorrt)
    store = None if args.no_calibration and not args.calibrate else CalibrationStore.load(args.calibration)
    lines = []
    if args.calibrate:
        assert store is not None, "--calibrate loads the store, --no-calibration or not"
        for report in args.calibrate:
            notes: list[str] = []
            observations = calibrate(store, args.bundle, bundle.manifest, report, options, notes)
            lines.extend(notes)
            if not observations:
                lines.append(f"{report}: already folded into {store.path}; not counted twice")
            lines.extend(f"calibrated on {report}: {o.line()}" for o in observations)
        store.save()
        lines.append(f"calibration for {options.target} saved to {store.path}")
    calibration = None if args.no_calibration else store
    if serve is not None:
        from packager.estimate.serve import ServeEstimate, estimate_serve, format_serve

        served = estimate_serve(args.bundle, options, manifest=bundle.manifest, calibration=calibration,
                                batches=batches, plan=True if args.plan else None)
        est: ServeEstimate | BudgetEstimate = served
        text = partial(format_serve, served)
    else:
        est = budget = estimate_bundle(args.bundle, options, manifest=bundle.manifest, calibration=calibration,
                                       plan=True if args.plan else None)
        text = partial(format_table, budget)
        if args.chart is not None:  # (a serving bundle's --chart was refused above)
            from packager.estimate.chart import write_chart

            write_chart(budget, args.chart)
            lines.append(f"chart written to {args.chart}")
    if args.json:
        data = est.to_dict()
        data["machine_shape"] = image_facts().shapes.get(est.target)  # what Kaggle calls the priced machine
        data["messages"] = lines
        print(json.dumps(data, indent=2))
    else:
        print(text())
        if lines:
            print()
            print("\n".join(lines))
    return EXIT_CODES[est.verdict]


def _margin_rule() -> str:
    """The default margin, worked out by the function the run uses, so help and run cannot disagree."""
    from runtime.progress import format_seconds
    from runtime.schedule.budget import MARGIN_FLOOR_S, MARGIN_FLOOR_SHARE, default_margin

    examples = ", ".join(f"{format_seconds(default_margin(limit))} of {format_seconds(limit)}"
                         for limit in (10.0, 60.0, 1800.0, 9 * 3600.0))
    return (" Default margin: the one `ninefit run` starts from (runtime.schedule.budget.default_margin): "
            f"{MARGIN_FLOOR_S:g}s + {MARGIN_FLOOR_SHARE * 100:g}% of the limit, never more than 25% of it "
            f"(e.g. {examples}); the run raises it to twice the worst chunk overrun it measures.")


def _generative(args: argparse.Namespace) -> int:
    import json

    from packager.generate.estimate import estimate_generation
    from runtime.errors import UsageError

    if args.rows is None:
        raise UsageError("--rows: the number of items (prompts) the hidden test has is needed, e.g. --rows 50")
    result = estimate_generation(args.bundle, target=args.target, items=args.rows, limit_s=args.time_limit)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "lines"}, indent=2))
    else:
        print("\n".join(result["lines"]))
    fits = any(result["samples_fit"].values()) and any(result["fits_memory"].values())
    return 0 if fits else 4
