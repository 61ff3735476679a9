"""``python -m runtime run`` (and ``ninefit run``): run a bundle to a submission.

Defined in the runtime so the notebook can use it without the packager.
A user-facing problem is one paragraph on stderr and exit status 2; so is an
``OSError`` (an unwritable ``--out`` or ``--work-dir``: the user's
environment, not a ninefit bug).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

from runtime.errors import NinefitError
from runtime.schedule.budget import MARGIN_FLOOR_S, MARGIN_FLOOR_SHARE, RESERVE_FLOOR_S


def add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="run a bundle on test data and write submission.csv",
        description="Verify a bundle, run its models over the test data and write submission.csv atomically. "
        "With --time-limit, the run plans to finish before the limit: it first probes each member on this "
        "machine (load, warm-up, a short timed stretch whose rows are kept; at most 10%% of the time left, "
        "predicted), scales the bundle's profile by the measured machine factor for what is not measured yet, "
        "then orders members by value per second, takes cheaper variants (only those measured cheaper here) "
        "or drops members when the projection passes the limit, re-plans on drift and whenever a member "
        "finishes or stops (dropped members come back when time allows), fills the time left with a partial "
        "run, and keeps a valid submission on disk from the start. It runs on every lane at once (--lanes): "
        "different members side by side, or one member's rows split across lanes; a fault on one lane "
        "(a crash, out of memory at one row) retires that member there only. Each decision is in the run report. Finished chunks "
        "are checkpointed in --work-dir: rerunning the same command after a crash resumes (and says from where); "
        "--fresh starts over. A damaged bundle file costs only what it belongs to: a member's model removes that "
        "member, a cheaper rung's model that rung; the run goes on and names the damage on stderr and in the report. "
        "A damaged manifest or runtime/ stops the run.",
        epilog="Outputs: with --out DIR/NAME.csv the run report is DIR/NAME.run_report.json and the work folder "
        "DIR/NAME.ninefit-work/ unless --report / --work-dir say otherwise; both paths are printed at the end. "
        "Durations take a unit: 9h, 540m, 32400s, 1h30m, 250ms (a bare number such as 9 is refused). "
        "Exit status: 0 when the run succeeded; 1 when "
        "a submission was written but the bundle was damaged, or no model covered any row, or the run would have "
        "failed on Kaggle (see the report); 2 for a usage or input error (a damaged manifest or runtime "
        "included). Custom backends: NINEFIT_PLUGINS=module[,module] names "
        "modules imported first, which call runtime.backends.register(). Data path: NINEFIT_PREFETCH=N chunks "
        "prepared ahead of inference (default 2, 0 in line), NINEFIT_DATA_WORKERS=N decode threads, "
        "NINEFIT_LOADER=pil|dali (default: DALI for a GPU target with a GPU and DALI, else PIL), NINEFIT_CUDF=1 "
        "(cudf.pandas; default on for a GPU target where cuDF is installed).",
    )
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--data", type=Path, required=True, help="competition data folder (holding the test table and sample submission), or the test table itself")
    p.add_argument("-o", "--out", type=Path, default=Path("submission.csv"),
                   help="submission to write (default: %(default)s)")
    p.add_argument("--backend", default=None,
                   help="inference backend: auto (default: per model the first of TensorRT, onnxruntime CUDA, torch CUDA, "
                   "onnxruntime CPU, OpenVINO CPU (fp32; where openvino is installed), torch CPU that runs here, each "
                   "step passed over logged with its reason), onnxruntime, torch (the bundle's torch.export program, "
                   "ONNX if it does not load), openvino, or tensorrt. A rung packaged with backend = \"openvino\" "
                   "runs on OpenVINO whatever this says")
    p.add_argument("--torch-compile", action="store_true",
                   help="torch backend: torch.compile each program when it loads (counted as load time; inductor's "
                   "cache is kept in --work-dir keyed by GPU, compute capability, torch and CUDA versions)")
    p.add_argument("--batch-size", type=int, default=None, help="override every member's batch size")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of each model session (onnxruntime and OpenVINO), so of each lane (default: "
                   "the cores shared out among the CPU lanes; with one lane, onnxruntime's choice, except for a "
                   "bundle packaged for --target cpu, whose lane gets every core; said in the run report)")
    p.add_argument("--lanes", type=int, default=None, metavar="N",
                   help="run on N lanes at once (default: one per visible GPU; on a CPU, one per core, at most "
                   "8, fewer when RAM holds fewer copies of the largest model). A lane runs one member at a time "
                   "with its own sessions; the planner runs different members on different lanes, or splits one "
                   "member's rows across lanes. On a GPU machine N lanes take the GPUs in turn (2 lanes on 1 GPU: "
                   "two sessions on it)")
    p.add_argument("--devices", type=_devices, default=None, metavar="IDS",
                   help="GPUs to run lanes on, e.g. 0,1 (default: every visible GPU)")
    p.add_argument("--report", type=Path, default=None, metavar="PATH",
                   help="run report to write, JSON (default: NAME.run_report.json next to --out NAME.csv)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="folder for engine caches and checkpoints (default: NAME.ninefit-work/ next to --out NAME.csv)")
    p.add_argument("--fresh", action="store_true",
                   help="discard the checkpoints in the work folder first, instead of resuming from them")
    p.add_argument("--time-limit", type=duration_arg, default=None, metavar="DURATION",
                   help="the notebook's run-time limit, counted from --start-time (default: no limit)")
    p.add_argument("--margin", type=duration_arg, default=None, metavar="DURATION",
                   help="safety margin before the limit (default: measured: twice the largest overrun of a chunk "
                   f"over its predicted time, at least {MARGIN_FLOOR_S:g}s + {MARGIN_FLOOR_SHARE * 100:g}%% of the limit "
                   "(the report and the process's exit, which no chunk measures), at most a quarter of the limit)")
    p.add_argument("--reserve", type=duration_arg, default=None, metavar="DURATION",
                   help="time kept for the final submission write (default: measured: twice the slowest "
                   f"submission write, the first timed before any model runs; at least {RESERVE_FLOOR_S:g}s)")
    p.add_argument("--start-time", type=_epoch, default=None, metavar="EPOCH",
                   help="when the clock started, in epoch seconds (time.time() in the notebook's first cell); "
                   "default: now")
    p.add_argument("--quiet", action="store_true",
                   help="print only what went wrong and the result: on stderr the log's warnings and errors (damaged "
                   "files, a member failed, dropped, stopped, degraded or out of memory, non-finite values, a "
                   "failing hook, models on the CPU) and a resume from checkpoints, no progress; on stdout each "
                   "member not done with its reason, the rows covered and the submission's path, the limit and "
                   "slack, any trouble line of the report table, and the paths of the run report and work folder")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from runtime.generate import is_generative
    from runtime.progress import quiet_log
    from runtime.run import RunOptions, default_work_dir, run

    if is_generative(args.bundle):  # a causal LM's bundle: runtime.generate's file run
        return _cmd_generate(args)

    with quiet_log(args.quiet):  # --quiet: the log's warnings and errors only
        report = run(args.bundle, args.data, args.out, RunOptions(
            backend=args.backend, batch_size=args.batch_size, threads=args.threads,
            work_dir=args.work_dir, report_path=args.report, fresh=args.fresh, progress=not args.quiet,
            time_limit_s=args.time_limit, torch_compile=args.torch_compile, lanes=args.lanes, devices=args.devices,
            start_time=args.start_time, margin_s=args.margin, reserve_s=args.reserve,
        ))
    print(report.brief() if args.quiet else report.table())
    print(f"run report: {report.report_path}\nwork folder: {args.work_dir or default_work_dir(args.out)} "
          "(checkpoints: a rerun resumes from them; --fresh discards them)")
    return 1 if report.failure or report.damage or (report.members and not report.covered_rows) else 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from runtime.generate import GenerateOptions, run_generation
    from runtime.progress import quiet_log

    with quiet_log(args.quiet):
        report = run_generation(args.bundle, args.data, args.out, GenerateOptions(
            time_limit_s=args.time_limit, start_time=args.start_time, margin_s=args.margin, reserve_s=args.reserve,
            work_dir=args.work_dir, report_path=args.report, fresh=args.fresh, threads=args.threads,
            engine=None if args.backend in (None, "auto") else args.backend, progress=not args.quiet))
    print(report.brief() if args.quiet else report.table())
    print(f"run report: {report.report_path}\njournal: {report.work_dir} (a rerun resumes from the items answered; "
          "--fresh discards them)")
    return 1 if report.failure or report.damage else 0


def duration_arg(text: str) -> float:
    """argparse type for a duration with its unit (``9h``, ``540m``, ``1h30m``; a bare number is refused); see
    ``settings.parse_duration``."""
    from runtime.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _devices(text: str) -> tuple[int, ...]:
    from runtime.execute.lanes import parse_devices

    try:
        return parse_devices(text)
    except NinefitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _epoch(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read start time {text!r}; expected epoch seconds, e.g. 1718000000.5") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"start time {text!r}: expected epoch seconds (time.time())")
    return value


def _os_error_message(exc: OSError) -> str:
    """One paragraph naming the path and the operating system's reason."""
    # os.replace(tmp, dest) names both; the destination is the path the user gave.
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    return (f"{where}{exc.strerror or exc}. Check the paths given on the command line (e.g. --out must name a "
            "file in a writable folder, --work-dir a writable folder).")


#: Exit status when the reader of stdout went away (``ninefit estimate --json | head``): a shell's
#: 128 + SIGPIPE, what a command killed by the closed pipe reports.
CLOSED_PIPE_EXIT = 141


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout is not a file (captured): not a pipe
        return False
    if not hasattr(select, "poll"):  # Windows: a broken pipe on a write is most likely stdout's
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _quiet_on_closed_stdout() -> int:
    """End quietly after the reader of stdout closed it: later writes and the flush at exit go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_PIPE_EXIT


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, prog: str = "ninefit") -> int:
    """Parse, dispatch, and turn a NinefitError or OSError into a message and an exit status.

    Output piped into a reader that stops early (``| head``) ends the command
    quietly with :data:`CLOSED_PIPE_EXIT`, help and version text included.
    """
    try:
        try:
            code = _dispatch(parser, argv, prog)
        finally:  # on SystemExit too (--help, --version): a closed pipe shows here, not in the flush at exit
            sys.stdout.flush()
        return code
    except BrokenPipeError:
        if _stdout_closed():
            return _quiet_on_closed_stdout()
        raise


def _dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str) -> int:
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        with _terminate_as_interrupt():
            return func(args)
    except NinefitError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            raise  # run_cli ends quietly
        print(f"{prog}: error: {_os_error_message(exc)}", file=sys.stderr)
        return NinefitError.exit_code
    except Terminated:
        print(f"{prog}: terminated (SIGTERM); the submission and the report on disk are the final ones",
              file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


#: Exit status after SIGTERM: a shell's 128 + SIGTERM, what a command killed by it reports.
TERMINATED_EXIT = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: ends the command the way Ctrl-C does (a run writes its final submission and report)."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` in the main thread instead of killing the process."""
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a library caller's worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="ninefit runtime (offline, numpy + onnxruntime)")
    add_run_parser(parser.add_subparsers(title="commands"))
    return run_cli(parser, argv, prog="ninefit-runtime")


__all__ = ["CLOSED_PIPE_EXIT", "TERMINATED_EXIT", "Terminated", "add_run_parser", "duration_arg", "main", "run_cli"]
