"""The GPU checks of the torch backend, as one run that writes one JSON of results.

Run by ``scripts/gpu-check.sh`` on a machine with a CUDA GPU (made for the
lent H200: Python 3.12, torch with CUDA, onnxruntime for the CPU, nvidia-ml-py,
no network). Everything is built here from the repo: the digits example is
prepared (scikit-learn's bundled data, offline) and packaged, and a larger CNN
(torchvision's ResNet-50 with random weights where torchvision exists, else
the ResNet-style convnet of ``examples/models`` made wider) is packaged over
``examples/models``' synthetic images. Sections, each timed, each either a
result, ``{"skipped": reason}`` or ``{"error": ...}``:

* ``environment``: versions, GPU, onnxruntime providers, NVML presence;
* ``digits_run``: ``ninefit run`` on the torch backend (CUDA) and on
  onnxruntime (CPU), accuracy of each, the backend each member used, GPU peaks;
* ``auto_chain``: the default backend: which step each member ended on, and why
  the steps before it were passed over;
* ``parity``: per model, the torch program on CUDA (fp32, and fp16 autocast)
  against the same program on the CPU (max abs diff, top-1 agreement);
* ``throughput``: torch backend (CUDA, fp32 and fp16) vs onnxruntime CPU vs
  torch eager CUDA, same batches, interleaved (benchmarks/backends.py);
* ``compile``: torch.compile in two fresh processes sharing a cache folder:
  compile seconds of each, and the second's cache hit;
* ``oom``: the larger CNN run with a batch far too large under
  ``torch.cuda.set_per_process_memory_fraction``: the executor halves the
  batch and finishes (in a child process, as the cap is process-wide);
* ``nvml``: the GPU's name, memory, utilisation, temperature and power;
* ``lanes``: two runs sharing one device, where the runtime has lanes;
* ``pytest_gpu``: the tests marked ``gpu``.

    python scripts/gpu_check.py OUT.json [--quick] [--budget-s 420]

``--quick`` (a CPU dry run) uses small sizes. Sections stop being started once
the budget is spent (each then says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import numpy as np  # noqa: E402

RESNET_MODULE = '''
import torch
from torch import nn


def make_resnet50() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None, num_classes=10).eval()
'''


# The packager's package imports its notebook generator, which needs nbformat; the lent GPU machine has
# no nbformat (and nothing can be installed there). These checks never build a notebook, so where
# nbformat is absent a stub stands in, and says so if anything calls it.
_NBFORMAT_STUB = {
    "__init__.py": (
        "def _absent(*a, **k):\n"
        "    raise ImportError('nbformat is not installed here (gpu-check stub): notebooks cannot be built')\n"
        "NotebookNode = dict\nvalidate = writes = reads = read = write = _absent\n"),
    "v4.py": "from nbformat import _absent as new_code_cell, _absent as new_markdown_cell, _absent as new_notebook\n",
}


def _shim_missing(work: Path) -> list[str]:
    """Stand-ins for modules the packager imports but these checks never use; what was stubbed."""
    import importlib.util

    if importlib.util.find_spec("nbformat") is not None:
        return []
    folder = work / "shims" / "nbformat"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in _NBFORMAT_STUB.items():
        (folder / name).write_text(text)
    sys.path.insert(0, str(folder.parent))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder.parent), os.environ.get("PYTHONPATH")]))
    return ["nbformat is absent: a stub stands in (the packager imports the notebook generator; no notebook is built here)"]


class Checks:
    def __init__(self, out: Path, budget_s: float, quick: bool):
        self.out, self.budget_s, self.quick = out, budget_s, quick
        self.t0 = time.perf_counter()
        self.results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": quick}

    def section(self, name: str, fn, *args, need_s: float = 0.0):
        left = self.budget_s - (time.perf_counter() - self.t0)
        if left < need_s:
            self.results[name] = {"skipped": f"time budget: {left:.0f}s left of {self.budget_s:.0f}s, this needs ~{need_s:.0f}s"}
        else:
            t = time.perf_counter()
            try:
                value = fn(*args)
            except Skip as exc:
                value = {"skipped": str(exc)}
            except Exception as exc:  # one broken section must not lose the others' results
                value = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=-6)}
            value = value if isinstance(value, dict) else {"value": value}
            value["seconds"] = round(time.perf_counter() - t, 2)
            self.results[name] = value
        print(f"[gpu-check] {name}: {json.dumps(self.results[name])[:400]}", flush=True)
        self.write()
        return self.results[name]

    def write(self) -> None:
        self.results["total_seconds"] = round(time.perf_counter() - self.t0, 2)
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        os.replace(tmp, self.out)


class Skip(Exception):
    """A section that does not apply here; the message is the reason."""


def _cuda():
    import torch

    if not torch.cuda.is_available():
        raise Skip(f"no CUDA GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
    return torch


def _device(quick: bool) -> str:
    """"cuda"; on a machine without one, "cpu" for a --quick dry run of the same code, else the section is skipped."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if quick:
        return "cpu"
    _cuda()
    return ""


# -- sections ------------------------------------------------------------------------------
def environment() -> dict:
    import importlib.util

    env = {"python": platform.python_version(), "machine": platform.machine()}
    for mod in ("torch", "onnxruntime", "onnx", "onnxscript", "sklearn", "torchvision", "pynvml", "cupy", "tensorrt"):
        env[mod] = "present" if importlib.util.find_spec(mod) else "absent"
    import torch

    env.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                   gpu_memory_bytes=torch.cuda.get_device_properties(0).total_memory, gpu_count=torch.cuda.device_count())
    try:
        import onnxruntime as ort

        env.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError:
        pass
    from runtime.backends import available, unavailable

    env.update(backends=available(), backends_unavailable=unavailable())
    return env


def build_bundles(work: Path, quick: bool) -> dict:
    """The digits bundle and the larger CNN's bundle, packaged here."""
    import importlib.util

    from packager.build import package

    out = {}
    digits = work / "digits"
    shutil.copytree(REPO / "examples" / "digits", digits, ignore=shutil.ignore_patterns("data", "checkpoints", "work", "__pycache__"))
    t = time.perf_counter()
    subprocess.run([sys.executable, "prepare.py", "--epochs", "5" if quick else "15"], cwd=digits, check=True,
                   capture_output=True, text=True)
    out["digits_prepare_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    package(digits / "ninefit.toml", work / "digits-bundle")
    out["digits_package_s"] = round(time.perf_counter() - t, 2)

    models = work / "models"
    shutil.copytree(REPO / "examples" / "models", models, ignore=shutil.ignore_patterns("data", "checkpoints", "__pycache__"))
    rows = 64 if quick else 1024
    subprocess.run([sys.executable, "prepare.py"], cwd=models, check=True, capture_output=True, text=True)
    subprocess.run([sys.executable, "prepare.py", "--rows", str(rows), "--out", str(work / "big-data")], cwd=models,
                   check=True, capture_output=True, text=True)
    t = time.perf_counter()
    try:
        out["big_model"] = _package_big(models, work, quick, resnet=bool(importlib.util.find_spec("torchvision")) and not quick)
    except Exception as exc:  # ResNet-50 would not package: the wider convnet still shows the GPU path
        out["big_model_error"] = f"{type(exc).__name__}: {str(exc)[:600]}"
        shutil.rmtree(work / "big-bundle", ignore_errors=True)
        out["big_model"] = _package_big(models, work, quick, resnet=False)
    out["big_package_s"] = round(time.perf_counter() - t, 2)
    out["big_rows"] = rows
    return out


def _package_big(models: Path, work: Path, quick: bool, resnet: bool) -> str:
    from packager.build import package

    spec = (models / "conv.toml").read_text()
    if resnet:
        (models / "gpu_models.py").write_text(RESNET_MODULE)
        spec = spec.replace('factory = "models:make_convnet"\ncheckpoint = "checkpoints/convnet.pt"',
                            'factory = "gpu_models:make_resnet50"')
        size, what = 224, "torchvision resnet50 (random weights), 3x224x224"
    else:
        spec = spec.replace('checkpoint = "checkpoints/convnet.pt"', "factory_kwargs = { width = 64 }")
        size = 64 if quick else 128
        what = f"examples/models ConvNet width 64 (random weights), 3x{size}x{size}"
    spec = spec.replace('shape = ["batch", 3, 32, 32]', f'shape = ["batch", 3, {size}, {size}]')
    spec = spec.replace("size = [32, 32]", f"size = [{size}, {size}]")
    spec = spec.replace('name = "convnet"\n', 'name = "convnet"\nverify_rows = 16\n', 1)
    spec += '\n  [[model.variant]]\n  name = "fp16"\n  precision = "fp16"\n'
    (models / "big.toml").write_text(spec)
    package(models / "big.toml", work / "big-bundle")
    return what


def _run(bundle: Path, data: Path, work: Path, **kw):
    from runtime.run import RunOptions, run

    out = work / "submission.csv"
    report = run(bundle, data, out, RunOptions(progress=False, work_dir=work / "w", **kw))
    members = {m.name: {"backend_used": m.backend_used, "device": m.device, "backend": m.backend, "status": m.status,
                        "rows_per_s": round(m.rows_per_s, 1), "load_s": round(m.load_seconds, 3),
                        "gpu_peak_bytes": m.gpu_peak_bytes, "gpu_memory_source": m.gpu_memory_source,
                        "oom_retries": m.oom_retries, "batch_size": m.batch_size, "fallbacks": m.fallbacks}
               for m in report.members}
    return out, {"members": members, "seconds": round(report.seconds, 2), "warnings": report.device_warnings,
                 "peak_gpu_bytes": report.peak_gpu_bytes, "failure": report.failure}


def digits_run(work: Path) -> dict:
    sys.path.insert(0, str(work / "digits"))
    from score import accuracy

    res = {}
    for backend in ("torch", "onnxruntime"):
        sub, res[backend] = _run(work / "digits-bundle", work / "digits" / "data", work / f"digits-{backend}", backend=backend)
        res[backend]["accuracy"] = accuracy(sub, work / "digits" / "data" / "test_labels.csv")
    res["same_accuracy"] = res["torch"]["accuracy"] == res["onnxruntime"]["accuracy"]
    return res


def auto_chain(work: Path) -> dict:
    _, res = _run(work / "digits-bundle", work / "digits" / "data", work / "digits-auto")
    return res


def parity(work: Path, quick: bool) -> dict:
    device = _device(quick)
    from runtime.backends.base import BackendOptions
    from runtime.backends.torch import TorchRunner
    from runtime.data.testdata import open_test_data
    from runtime.manifest import Manifest

    res = {}
    for bundle, data in ((work / "digits-bundle", work / "digits" / "data" / "test.csv"),
                         (work / "big-bundle", work / "big-data" / "conv" / "test.csv")):
        m = Manifest.load(bundle)
        test = open_test_data(data, m.data)
        for member in m.members:
            feed = test.feed(member, 0, min(test.n_rows, 64 if quick else 256))
            io = dict(inputs=tuple((i.name, i.dtype) for i in member.inputs), outputs=(member.output,))
            program = bundle / member.variants[0].torch_file
            with TorchRunner(program, member.name, BackendOptions(torch_device="cpu", **io)) as r:
                ref = r.infer(feed)[member.output]
            entry = {}
            for precision in ("fp32", "fp16"):
                with TorchRunner(program, member.name, BackendOptions(torch_device=device, fp16=precision == "fp16", **io)) as r:
                    got = r.infer(feed)[member.output]
                    entry[precision] = {"max_abs_diff": float(np.abs(got - ref).max()),
                                        "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
                                        "rows": int(len(ref)), "describe": r.describe()}
                entry[precision]["peak_gpu_bytes"] = r.peak_gpu_bytes
            res[member.name] = entry
    return res


def throughput(work: Path, quick: bool) -> dict:
    import torch

    device = _device(quick)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    from backends import _batches, bench_member

    from runtime.backends.base import BackendOptions
    from runtime.backends.torch import TorchRunner
    from runtime.manifest import Manifest

    res = {}
    rng = np.random.default_rng(0)
    for bundle, spec, rounds, nb in ((work / "digits-bundle", work / "digits" / "ninefit.toml", 5, 20),
                                     (work / "big-bundle", work / "models" / "big.toml", 2 if not quick else 1, 4)):
        for member in Manifest.load(bundle).members:
            batches = _batches(member, nb, rng)
            r = bench_member(bundle, spec, member, batches, rounds, False)
            # The fp16 rung of the torch backend on the same batches.
            io = dict(inputs=tuple((i.name, i.dtype) for i in member.inputs), outputs=(member.output,), max_batch=member.batch_size)
            with TorchRunner(bundle / member.variants[0].torch_file, member.name,
                             BackendOptions(torch_device=device, fp16=True, **io)) as half:
                half.infer(batches[0])
                sync()
                t = time.perf_counter()
                for b in batches:
                    half.infer(b)
                sync()
                r["rows_per_s"]["torch backend fp16"] = r["rows"] / (time.perf_counter() - t)
            s = r["seconds"]
            r["ratios"] = {"torch_backend_time / onnxruntime_cpu_time": s["torch backend"] / s["onnxruntime"],
                           "torch_eager_time / onnxruntime_cpu_time": s["torch eager"] / s["onnxruntime"],
                           "torch_backend_time / torch_eager_time": s["torch backend"] / s["torch eager"]}
            res[member.name] = r
    return res


_COMPILE_CHILD = r'''
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from runtime.backends.base import BackendOptions
from runtime.backends.torch import TorchRunner
program, cache, device = sys.argv[2], sys.argv[3], sys.argv[4]
opts = BackendOptions(torch_device=device, torch_compile=True, cache_dir=__import__("pathlib").Path(cache), max_batch=256,
                      inputs=(("pixels", "float32"),), outputs=("logits",), input_shapes=(("pixels", (1, 8, 8)),))
t = time.perf_counter()
with TorchRunner(__import__("pathlib").Path(program), "cnn/fp32", opts) as r:
    out = r.infer({"pixels": np.ones((7, 1, 8, 8), np.float32)})["logits"]
    print(json.dumps({"compile_s": r.compile_seconds, "cache_hit": r.compile_cache_hit, "error": r.compile_error,
                      "activate_and_first_batch_s": time.perf_counter() - t, "describe": r.describe(),
                      "out_sum": float(out.sum())}))
'''


def compile_cache(work: Path, quick: bool) -> dict:
    device = _device(quick)
    program = work / "digits-bundle" / "models" / "cnn" / "program.pt2"
    cache = work / "compile-cache"
    runs = []
    for _ in range(2):  # two processes: the second can only be fast through the on-disk cache
        p = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(REPO), str(program), str(cache), device],
                           capture_output=True, text=True, timeout=240)
        if p.returncode:
            return {"error": p.stderr[-1500:], "runs": runs}
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return {"device": device, "runs": runs, "second_is_cache_hit": runs[1]["cache_hit"],
            "speedup": runs[0]["compile_s"] / max(runs[1]["compile_s"], 1e-9),
            "cache_dirs": sorted(p.name for p in (cache / "torch").iterdir())}


_OOM_CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
cap_bytes = float(sys.argv[5])
fraction = cap_bytes / torch.cuda.get_device_properties(0).total_memory
torch.cuda.set_per_process_memory_fraction(fraction, 0)
from runtime.run import RunOptions, run
from pathlib import Path
report = run(sys.argv[2], sys.argv[3], Path(sys.argv[4]) / "submission.csv",
             RunOptions(backend="torch", batch_size=int(sys.argv[6]), progress=False, work_dir=Path(sys.argv[4]) / "w"))
m = report.members[0]
print(json.dumps({"fraction": fraction, "cap_bytes": cap_bytes, "status": m.status, "oom_retries": m.oom_retries,
                  "final_batch": m.batch_size, "rows": m.rows, "backend_used": m.backend_used,
                  "gpu_peak_bytes": m.gpu_peak_bytes, "events": [e for e in report.events if "memory" in e]}))
'''


def oom(work: Path, quick: bool) -> dict:
    _cuda()
    data = work / "big-data" / "conv"
    # The packaged batch fixes the chunk size (the executor never runs a batch larger than a chunk), so a
    # copy of the bundle says batch_size = 1024 (the manifest is not checksummed): one chunk of 1024 rows.
    bundle = work / "big-bundle-1024"
    shutil.copytree(work / "big-bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["members"][0]["batch_size"] = batch = 1024
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    cap = 2 * 2**30  # 2 GiB: far below what 1024 images need, above what a few dozen do
    p = subprocess.run([sys.executable, "-c", _OOM_CHILD, str(REPO), str(bundle), str(data), str(work / "oom"), str(cap),
                        str(batch)], capture_output=True, text=True, timeout=300)
    if p.returncode:
        return {"error": p.stderr[-2000:]}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    _, free = _run(bundle, data, work / "oom-free", backend="torch")
    a = (work / "oom" / "submission.csv").read_text().splitlines()
    b = (work / "oom-free" / "submission.csv").read_text().splitlines()
    res["same_rows_as_uncapped_run"] = sum(x == y for x, y in zip(a, b)) / max(len(a), 1)
    res["survived"] = res["status"] == "done" and res["oom_retries"] > 0
    res["uncapped"] = free["members"]
    return res


def nvml() -> dict:
    try:
        import pynvml
    except ImportError:
        raise Skip("nvidia-ml-py (pynvml) is not installed") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        raise Skip(f"NVML did not initialise: {exc}") from None
    out = {"driver": pynvml.nvmlSystemGetDriverVersion(), "devices": []}
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        d = {"name": pynvml.nvmlDeviceGetName(h), "memory_total": mem.total, "memory_used": mem.used}
        for key, fn in (("utilization_gpu_pct", lambda: pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                        ("temperature_c", lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                        ("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000)):
            try:
                d[key] = fn()
            except Exception as exc:  # some readings are not supported in containers
                d[key] = f"unavailable: {exc}"
        out["devices"].append(d)
    from runtime.gpu import gpu_info, gpu_present

    info = gpu_info(0)
    out["runtime_gpu_info"] = info.__dict__ if info else None
    out["runtime_gpu_present"] = list(gpu_present())
    return out


def lanes(work: Path, quick: bool) -> dict:
    """Two lanes on one GPU (two sessions on device 0, as two processes sharing it) against one lane:
    the larger CNN's bundle, whole run() calls, best of two each; the same submission bytes."""
    device = _device(quick)
    from runtime.run import RunOptions, run

    data = work / "big-data" / "conv"
    res: dict = {"device": device}
    best: dict[int, float] = {}
    outs = {}
    for _ in range(2):
        for n in (1, 2):
            out = work / f"lanes-{n}" / "submission.csv"
            opts = RunOptions(progress=False, work_dir=work / f"lanes-{n}" / "w", fresh=True, lanes=n,
                              devices=(0,) if device == "cuda" else None)
            t = time.perf_counter()
            report = run(work / "big-bundle", data, out, opts)
            wall = time.perf_counter() - t
            if wall < best.get(n, float("inf")):
                best[n] = wall
                res[f"{n}_lane"] = {"wall_s": round(wall, 3), "rows": report.rows,
                                    "rows_per_s": round(report.rows * len(report.members) / wall, 1),
                                    "lanes": [{k: lane[k] for k in ("name", "device_id", "busy_share", "rows")}
                                              for lane in report.lanes],
                                    "peak_gpu_by_device": report.peak_gpu_by_device,
                                    "backends": {m.name: m.backend_used for m in report.members},
                                    "statuses": {m.name: m.status for m in report.members}}
            outs[n] = out.read_bytes()
    res["ratio_2_lanes_over_1"] = round(best[1] / best[2], 3)
    res["same_bytes"] = outs[1] == outs[2]
    return res


def pytest_gpu(budget_left: float) -> dict:
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/runtime/backends/test_torch.py", "tests/runtime/backends/test_backends.py"],
                       cwd=REPO, capture_output=True, text=True, timeout=max(60, budget_left))
    return {"returncode": p.returncode, "tail": p.stdout[-1500:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="JSON file to write (rewritten after every section)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a CPU dry run)")
    ap.add_argument("--budget-s", type=float, default=420, help="start no section past this many seconds (default 420)")
    ap.add_argument("--work", type=Path, default=None,
                    help="work folder to keep (default: a temporary one); bundles already built there are reused")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checks = Checks(args.out, args.budget_s, args.quick)
    with tempfile.TemporaryDirectory(prefix="ninefit-gpu-check-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        checks.results["shims"] = _shim_missing(work)
        checks.section("environment", environment)
        if (work / "digits-bundle").is_dir() and (work / "big-bundle").is_dir():
            built = checks.results["bundles"] = {"reused": str(work)}
            for old in ("digits-torch", "digits-onnxruntime", "digits-auto", "oom", "oom-free", "big-bundle-1024",
                        "compile-cache"):  # what the runs wrote last time: checkpoints there would be resumed
                shutil.rmtree(work / old, ignore_errors=True)
        else:
            built = checks.section("bundles", build_bundles, work, args.quick)
        if "error" in built or "skipped" in built:
            for name in ("digits_run", "auto_chain", "parity", "throughput", "compile", "oom"):
                checks.results[name] = {"skipped": "the bundles could not be built (see 'bundles')"}
        else:
            checks.section("digits_run", digits_run, work, need_s=20)
            checks.section("auto_chain", auto_chain, work, need_s=10)
            checks.section("parity", parity, work, args.quick, need_s=20)
            checks.section("throughput", throughput, work, args.quick, need_s=60)
            checks.section("compile", compile_cache, work, args.quick, need_s=90)
            checks.section("oom", oom, work, args.quick, need_s=60)
        checks.section("nvml", nvml)
        if "bundles" in checks.results and "error" not in checks.results.get("bundles", {}):
            checks.section("lanes", lanes, work, args.quick, need_s=40)
        left = args.budget_s - (time.perf_counter() - checks.t0)
        checks.section("pytest_gpu", pytest_gpu, left + 30, need_s=45)
    checks.write()
    print(f"[gpu-check] wrote {args.out} in {checks.results['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
