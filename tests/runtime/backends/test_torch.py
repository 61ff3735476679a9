"""The torch backend on the CPU: same accuracy as onnxruntime, ONNX fallback, OOM translation, compile cache."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.backends import get
from runtime.backends.base import BackendOptions
from runtime.backends.torch import INDUCTOR_CACHE_ENV, TorchRunner, compile_cache_key
from runtime.bundle import sha256_file
from runtime.cli import main
from runtime.errors import BackendError, OutOfMemoryError
from runtime.manifest import Manifest
from runtime.run import RunOptions, run

pytestmark = pytest.mark.timeout(240)

torch = pytest.importorskip("torch")


def accuracy(digits_dir: Path, submission: Path) -> float:
    from tests.fixtures.modules import load_module

    return load_module(digits_dir, "score").accuracy(submission, digits_dir / "data" / "test_labels.csv")


def options(**kw) -> BackendOptions:
    return BackendOptions(torch_device="cpu", inputs=(("pixels", "float32"),), outputs=("logits",), **kw)


def test_bundle_carries_a_torch_program_per_member(digits_bundle):
    m = Manifest.load(digits_bundle)
    for member in m.members:
        assert member.torch_version == torch.__version__ and not member.torch_skipped
        assert {v.torch_file for v in member.variants} == {f"models/{member.name}/program.pt2"}
        assert f"models/{member.name}/program.pt2" in m.files  # checksummed like every bundle file
    report = (digits_bundle / "report.md").read_text()
    assert "| cnn | fp16 | program.pt2 | logits | 256 |" in report  # the fp16 rung's parity, under autocast


def test_torch_backend_gives_the_accuracy_of_onnxruntime_through_the_cli(digits_bundle, digits_dir, tmp_path, capsys):
    outs = {}
    for backend in ("onnxruntime", "torch"):
        out = outs[backend] = tmp_path / f"{backend}.csv"
        argv = ["run", str(digits_bundle), "--data", str(digits_dir / "data"), "--out", str(out),  # the table: backends
                "--backend", backend, "--work-dir", str(tmp_path / backend), "--time-limit", "10m"]
        assert main(argv) == 0
        report = json.loads(out.with_suffix(".run_report.json").read_text())
        assert [m["backend_used"] for m in report["members"]] == [backend, backend]
        assert all(m["device"] == "cpu" and m["status"] == "done" for m in report["members"])
    printed = capsys.readouterr().out
    assert "backends: cnn on torch, mlp on torch" in printed
    acc = {b: accuracy(digits_dir, p) for b, p in outs.items()}
    assert acc["torch"] == acc["onnxruntime"] > 0.9, acc
    # Not just the same score: the same label for (almost) every row.
    a, b = (p.read_text().splitlines() for p in outs.values())
    assert sum(x != y for x, y in zip(a, b)) <= 2


def test_fp16_rung_runs_under_autocast_close_to_fp32(digits_bundle):
    program = digits_bundle / "models" / "cnn" / "program.pt2"
    x = np.random.default_rng(0).uniform(0, 16, (32, 1, 8, 8)).astype(np.float32)
    with TorchRunner(program, "cnn/fp32", options()) as r32:
        full = r32.infer({"pixels": x})["logits"]
    with TorchRunner(program, "cnn/fp16", options(fp16=True)) as r16:
        half = r16.infer({"pixels": x})["logits"]
        assert "autocast fp16" in r16.describe()
    assert half.dtype == np.float32 and not np.array_equal(half, full)  # computed in fp16, returned as fp32
    np.testing.assert_allclose(half, full, atol=5e-2, rtol=5e-2)
    assert (half.argmax(1) == full.argmax(1)).mean() >= 0.95


def test_program_that_fails_to_load_falls_back_to_onnx_with_the_reason(digits_bundle, digits_dir, tmp_path, monkeypatch,
                                                                       capsys):
    """The version-skew case: a program this torch cannot load runs as ONNX, and the log and report say why."""
    def newer_torch(path, *a, **kw):
        raise RuntimeError("Serialized version 9 is newer than the supported version 8")

    monkeypatch.setattr(torch.export, "load", newer_torch)
    out = tmp_path / "submission.csv"
    report = run(digits_bundle, digits_dir / "data", out, RunOptions(backend="torch", progress=False, work_dir=tmp_path / "w"))
    err = capsys.readouterr().err
    assert "cnn/fp32: torch failed: cnn/fp32: torch " in err and "could not load program.pt2" in err
    assert "Serialized version 9 is newer" in err and "trying the next backend" in err
    for m in report.members:
        assert m.status == "done" and m.backend_used == "onnxruntime" and m.backend.startswith("onnxruntime (")
        assert len(m.fallbacks) == 1 and m.fallbacks[0].startswith("torch: failed:") and "program.pt2" in m.fallbacks[0]
    assert accuracy(digits_dir, out) > 0.9
    saved = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert "Serialized version 9" in saved["members"][0]["fallbacks"][0]


def test_a_variant_without_a_program_runs_its_onnx_file(digits_bundle):
    onnx = digits_bundle / "models" / "mlp" / "fp32.onnx"
    runner = get("torch").load(onnx, "mlp/fp32", options(torch_file=None))
    with runner:
        out = runner.infer({"pixels": np.ones((3, 64), np.float32)})
    assert out["logits"].shape == (3, 10) and runner.used == "onnxruntime"
    assert runner.attempts == [("torch", "failed: mlp/fp32: the bundle carries no torch program for this variant (ONNX only)")]


class _OomAbove:
    """Stands in for a program's module: CUDA's out-of-memory error for batches above ``limit`` rows."""

    def __init__(self, module, limit: int):
        self.module, self.limit, self.calls = module, limit, []

    def __call__(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB (batch {x.shape[0]})")
        return self.module(x)


def test_cuda_out_of_memory_is_translated_at_the_boundary(digits_bundle):
    with TorchRunner(digits_bundle / "models" / "mlp" / "program.pt2", "mlp/fp32", options()) as r:
        r.module = _OomAbove(r.module, 8)  # the program's module, as loaded
        assert r.infer({"pixels": np.ones((8, 64), np.float32)})["logits"].shape == (8, 10)
        with pytest.raises(OutOfMemoryError, match="mlp/fp32: CUDA out of memory at batch 9") as info:
            r.infer({"pixels": np.ones((9, 64), np.float32)})
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)


def test_executor_halves_the_batch_on_torch_out_of_memory(digits_bundle, digits_dir, tmp_path, monkeypatch):
    modules = []
    real = TorchRunner.activate_impl

    def activate(self):  # each runner the run loads: its program's module, out of memory above 64 rows
        real(self)
        self.module = _OomAbove(self.module, 64)
        modules.append(self.module)

    monkeypatch.setattr(TorchRunner, "activate_impl", activate)
    out = tmp_path / "submission.csv"
    report = run(digits_bundle, digits_dir / "data", out, RunOptions(backend="torch", progress=False, work_dir=tmp_path / "w",
                                                                     lanes=1))  # one lane: one batch to halve
    for m in report.members:
        assert m.status == "done" and m.backend_used == "torch" and m.oom_retries == 2 and m.batch_size == 64
    assert max(max(mod.calls) for mod in modules) == 256 and all(c <= 64 for mod in modules for c in mod.calls[2:])
    assert accuracy(digits_dir, out) > 0.9
    assert any("out of memory, batch size halved to 64" in e for e in report.events)


def test_a_broken_program_is_a_backend_error_naming_both_versions(tmp_path):
    bad = tmp_path / "program.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BackendError, match=re.escape(f"m/fp32: torch {torch.__version__} could not load program.pt2 (")):
        TorchRunner(bad, "m/fp32", options()).activate()


def test_compile_cache_key_covers_gpu_capability_and_versions():
    a = compile_cache_key("Tesla T4", (7, 5), "2.10.0+cu126", "12.6")
    assert a == "tesla-t4-sm75-torch2.10.0-cu126-cuda12.6"
    assert len({a, compile_cache_key("NVIDIA L4", (8, 9), "2.10.0+cu126", "12.6"),
                compile_cache_key("Tesla T4", (7, 5), "2.11.0+cu126", "12.6"),
                compile_cache_key("Tesla T4", (7, 5), "2.10.0+cu126", "12.8")}) == 4


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compile_is_setup_time_and_its_cache_is_reused(digits_bundle, tmp_path, monkeypatch):
    """torch.compile on the CPU (needs a C compiler): compiled in activate(), outputs as eager, marker written."""
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)  # restored afterwards: the runner sets it for the process
    program = digits_bundle / "models" / "mlp" / "program.pt2"
    opts = options(torch_compile=True, cache_dir=tmp_path, max_batch=16, input_shapes=(("pixels", (64,)),))
    x = np.random.default_rng(1).uniform(0, 16, (5, 64)).astype(np.float32)
    with TorchRunner(program, "mlp/fp32", options()) as eager:
        ref = eager.infer({"pixels": x})["logits"]
    runs = []
    for _ in range(2):
        with TorchRunner(program, "mlp/fp32", opts) as r:
            assert not r.compile_error, r.compile_error
            np.testing.assert_allclose(r.infer({"pixels": x})["logits"], ref, rtol=1e-4, atol=1e-4)  # padded to 16
            runs.append((r.compile_seconds, r.compile_cache_hit, r.describe()))
    assert runs[0][0] > 0 and runs[0][1] is False and runs[1][1] is True
    assert "cache hit" in runs[1][2] and "cold cache" in runs[0][2]
    caches = list((tmp_path / "torch").iterdir())
    assert len(caches) == 1 and caches[0].name.endswith(f"-torch{torch.__version__.replace('+', '-')}-cudanone")
    markers = [p.name for p in caches[0].glob("ninefit-compiled-*.json")]
    assert markers == [f"ninefit-compiled-{sha256_file(program)[:16]}-fp32-b16.json"]


@pytest.mark.gpu
def test_torch_backend_on_cuda_matches_the_cpu(digits_bundle):
    """Runs where a CUDA GPU is present (scripts/gpu-check.sh); skipped with the reason elsewhere."""
    program = digits_bundle / "models" / "cnn" / "program.pt2"
    x = np.random.default_rng(0).uniform(0, 16, (64, 1, 8, 8)).astype(np.float32)
    with TorchRunner(program, "cnn", options()) as cpu:
        ref = cpu.infer({"pixels": x})["logits"]
    gpu_opts = BackendOptions(torch_device="cuda", inputs=(("pixels", "float32"),), outputs=("logits",))
    with TorchRunner(program, "cnn", gpu_opts) as gpu:
        got = gpu.infer({"pixels": x})["logits"]
        assert gpu.device_kind() == "gpu"
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)
    assert gpu.peak_gpu_bytes and gpu.peak_gpu_bytes > 0


def test_old_bundle_copy_without_programs_still_runs_on_torch_backend(digits_bundle, digits_dir, tmp_path):
    """A bundle packaged before torch programs existed (schema 1): the torch backend runs its ONNX files."""
    old = tmp_path / "old"
    shutil.copytree(digits_bundle, old)
    path = old / "manifest.json"
    d = json.loads(path.read_text())
    d["schema_version"] = 1
    d.pop("target")
    for m in d["members"]:
        m.pop("torch_version"), m.pop("torch_skipped")
        for v in m["variants"]:
            v.pop("torch_file")
    path.write_text(json.dumps(d))
    report = run(old, digits_dir / "data", tmp_path / "s.csv", RunOptions(backend="torch", progress=False, work_dir=tmp_path / "w"))
    assert [m.backend_used for m in report.members] == ["onnxruntime", "onnxruntime"]
    assert all(m.status == "done" for m in report.members)


def test_load_runner_hands_the_program_compile_flag_and_shapes_to_the_torch_runner(digits_bundle, tmp_path):
    from runtime.bundle import open_bundle
    from runtime.run import load_runner

    bundle = open_bundle(digits_bundle)
    member = bundle.manifest.member("cnn")
    opts = RunOptions(backend="torch", torch_compile=True, work_dir=tmp_path, batch_size=32)
    runner = load_runner(bundle, member, member.variant("fp16"), opts)
    torch_runner = runner.candidates[0].make()
    o = torch_runner.options
    assert torch_runner.program == digits_bundle / "models" / "cnn" / "program.pt2"
    assert o.torch_compile and o.fp16 and o.max_batch == 32 and o.cache_dir == tmp_path / "engines"
    assert o.input_shapes == (("pixels", (1, 8, 8)),) and o.inputs == (("pixels", "float32"),) and o.outputs == ("logits",)
    plain = load_runner(bundle, member, member.variant("fp32"), RunOptions(backend="torch")).candidates[0].make().options
    assert not plain.torch_compile and plain.input_shapes == () and not plain.fp16
