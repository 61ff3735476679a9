"""The torch backend against onnxruntime and plain torch eager, on the same models in one run.

Per model, the same pre-built batches go through, interleaved over several
rounds in one process (medians printed):

* ``onnxruntime``: the runtime's onnxruntime runner on the bundle's ONNX file
  (CPU provider, as the CPU wheel offers);
* ``torch backend``: the runtime's torch runner on the bundle's ``torch.export``
  program (CUDA where there is one, else the CPU), optionally compiled;
* ``torch eager``: the source ``nn.Module`` as the packager loads it, called
  under ``inference_mode`` on the same device.

Ratios are time / onnxruntime time and torch backend / torch eager time
(1.00x = as fast). Both libraries get the same CPU threads (``--threads``,
default 1): with more, onnxruntime's spinning workers and torch's OpenMP pool
fight over the cores of a shared machine and the figures say more about that
fight than about the backends. Models: the digits CNN and MLP, and the ResNet-style
convnet of ``examples/models`` (3x32x32).

    python benchmarks/backends.py [--rounds 5] [--batches 20] [--compile] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _digits import digits_bundle, example_bundle  # noqa: E402


def conv_bundle(work: Path) -> tuple[Path, Path]:
    """Package examples/models/conv.toml under ``work``; return (bundle, spec)."""
    bundle, src = example_bundle(work, "models", "conv.toml", "conv-bundle")
    return bundle, src / "conv.toml"


def _batches(member, n: int, rng) -> list[dict[str, np.ndarray]]:
    """``n`` batches of the member's size, values in a plausible range for each input."""
    out = []
    for _ in range(n):
        feed = {}
        for i in member.inputs:
            dims = (i.image.channels, *i.image.size) if i.image is not None else tuple(int(d) for d in i.shape[1:])
            feed[i.name] = (rng.uniform(0, 16, (member.batch_size, *dims)) if i.dtype.startswith("float")
                            else rng.integers(0, 1000, (member.batch_size, *dims))).astype(i.dtype)
        out.append(feed)
    return out


def _timed(fn, batches, sync=lambda: None) -> float:
    fn(batches[0])  # warm-up: first calls pay lazy initialisation
    sync()
    t = time.perf_counter()
    for b in batches:
        fn(b)
    sync()
    return time.perf_counter() - t


def bench_member(bundle: Path, spec_path: Path, member, batches, rounds: int, compile_: bool,
                 threads: int | None = None) -> dict:
    import torch

    from packager.spec import load_spec
    from packager.torchload import load_torch_model
    from runtime.backends.base import BackendOptions
    from runtime.backends.onnxruntime import OnnxRuntimeRunner
    from runtime.backends.torch import TorchRunner

    spec = next(m for m in load_spec(spec_path).models if m.name == member.name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    v = member.variants[0]
    io = dict(inputs=tuple((i.name, i.dtype) for i in member.inputs), outputs=(member.output,), max_batch=member.batch_size)
    if threads:
        torch.set_num_threads(threads)
    ort = OnnxRuntimeRunner(bundle / v.file, member.name, BackendOptions(providers=("CPUExecutionProvider",), threads=threads))
    tb = TorchRunner(bundle / v.torch_file, member.name, BackendOptions(
        torch_device=device, torch_compile=compile_, cache_dir=bundle.parent / "compile-cache", threads=threads,
        input_shapes=tuple((n, tuple(batches[0][n].shape[1:])) for n, _ in io["inputs"]), **io))
    model = load_torch_model(spec, spec_path.parent).to(device)
    names = [i.name for i in member.inputs]

    def eager(feed):
        with torch.inference_mode():
            out = model(*(torch.from_numpy(feed[n]).to(device, non_blocking=True) for n in names))
            return out.float().cpu().numpy()

    t0 = time.perf_counter()
    ort.activate()
    tb.activate()
    setup = time.perf_counter() - t0
    times: dict[str, list[float]] = {"onnxruntime": [], "torch backend": [], "torch eager": []}
    try:
        for _ in range(rounds):  # interleaved: a burst of load from other processes hits all three alike
            times["onnxruntime"].append(_timed(ort.infer, batches))
            times["torch backend"].append(_timed(tb.infer, batches, sync))
            times["torch eager"].append(_timed(eager, batches, sync))
        a, b = ort.infer(batches[0])[member.output], tb.infer(batches[0])[member.output]
        max_diff = float(np.abs(a - b).max())
    finally:
        ort.deactivate()
        tb.deactivate()
    rows = sum(len(next(iter(b.values()))) for b in batches)
    med = {k: statistics.median(t) for k, t in times.items()}
    return {"rows": rows, "device": device, "rows_per_s": {k: rows / s for k, s in med.items()},
            "seconds": med, "setup_s": setup, "compile_s": tb.compile_seconds, "backend": tb.describe(),
            "max_abs_diff_torch_vs_onnxruntime": max_diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=20, help="batches of each member's size per round")
    ap.add_argument("--compile", action="store_true", help="torch.compile the torch backend's programs (slow to start)")
    ap.add_argument("--work", type=Path, default=None, help="keep bundles here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for onnxruntime and torch alike (default 1; 0: each library's own)")
    args = ap.parse_args()
    import torch

    from runtime.manifest import Manifest

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        digits, _ = digits_bundle(work)
        conv, conv_spec = conv_bundle(work)
        jobs = [(digits, work / "digits" / "ninefit.toml"), (conv, conv_spec)]
        rng = np.random.default_rng(0)
        results = {}
        for bundle, spec in jobs:
            for member in Manifest.load(bundle).members:
                results[member.name] = bench_member(bundle, spec, member, _batches(member, args.batches, rng),
                                                    args.rounds, args.compile, args.threads or None)
    print(f"torch {torch.__version__}; median of {args.rounds} interleaved rounds of {args.batches} batches each; "
          f"onnxruntime on the CPU, torch on {next(iter(results.values()))['device']}; "
          f"CPU threads: {args.threads or 'library default'}")
    print(f"{'model':<9} {'batch':>5} {'ort rows/s':>11} {'torch-backend':>14} {'torch eager':>12} "
          f"{'backend/ort time':>17} {'eager/ort time':>15} {'backend/eager time':>19} {'max|diff|':>10}")
    for name, r in results.items():
        s = r["seconds"]
        print(f"{name:<9} {r['rows'] // args.batches:>5} {r['rows_per_s']['onnxruntime']:>11,.0f} "
              f"{r['rows_per_s']['torch backend']:>14,.0f} {r['rows_per_s']['torch eager']:>12,.0f} "
              f"{s['torch backend'] / s['onnxruntime']:>16.2f}x {s['torch eager'] / s['onnxruntime']:>14.2f}x "
              f"{s['torch backend'] / s['torch eager']:>18.2f}x {r['max_abs_diff_torch_vs_onnxruntime']:>10.2g}")
        if args.compile:
            print(f"  {name}: compile {r['compile_s']:.1f}s ({r['backend']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
