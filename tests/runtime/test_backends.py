"""Backends: registry rules, provider selection, error translation, and every registered backend run for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime import backends
from runtime.backends import onnxruntime as ort_backend
from runtime.backends.base import BackendOptions, translate_error
from runtime.backends.registry import register
from runtime.backends.tensorrt import engine_cache_key
from runtime.errors import BackendError, BackendUnavailableError, OutOfMemoryError

pytestmark = pytest.mark.timeout(60)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register("onnxruntime", ort_backend.load, requires=("onnxruntime",), description="again")


def test_backend_with_missing_dependency_is_listed_with_reason():
    assert register("needs-nothing-real", ort_backend.load, requires=("no_such_module_xyz",), description="x") is False
    assert "no_such_module_xyz" in backends.unavailable()["needs-nothing-real"]
    with pytest.raises(BackendUnavailableError, match="not available here: needs no_such_module_xyz"):
        backends.get("needs-nothing-real")
    with pytest.raises(BackendUnavailableError, match="no backend 'tpu'; known backends: onnxruntime"):
        backends.get("tpu")


def test_provider_selection_prefers_gpu_and_skips_tensorrt_without_its_libraries(monkeypatch, tmp_path):
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_backend, "_tensorrt_libraries_present", lambda: False)
    chosen = ort_backend.select_providers(avail, BackendOptions(device_id=1))
    assert [p for p, _ in chosen] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chosen[0][1] == {"device_id": 1}
    monkeypatch.setattr(ort_backend, "_tensorrt_libraries_present", lambda: True)
    chosen = ort_backend.select_providers(avail, BackendOptions(fp16=True, cache_dir=tmp_path))
    name, opts = chosen[0]
    assert name == "TensorrtExecutionProvider"
    assert opts["trt_fp16_enable"] is True and opts["trt_engine_cache_enable"] is True
    assert Path(opts["trt_engine_cache_path"]).is_dir() and opts["trt_timing_cache_enable"] is True


def test_explicit_missing_provider_names_what_exists():
    with pytest.raises(BackendUnavailableError, match="no execution provider 'CUDAExecutionProvider'; available: CPUExecutionProvider"):
        ort_backend.select_providers(["CPUExecutionProvider"], BackendOptions(providers=("CUDAExecutionProvider",)))


@pytest.mark.parametrize("text, kind", [
    ("CUDA out of memory. Tried to allocate 2.00 GiB", OutOfMemoryError),
    ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of size 123", OutOfMemoryError),
    ("std::bad_alloc", OutOfMemoryError),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input", BackendError),
])
def test_error_translation(text, kind):
    err = translate_error("m/fp32", RuntimeError(text))
    assert type(err) is kind and "m/fp32" in str(err)


def test_engine_cache_key_covers_gpu_capability_version_precision():
    a = engine_cache_key("f" * 64, "Tesla T4", (7, 5), "10.3.0", True)
    assert a == "ffffffffffffffff-tesla-t4-sm75-trt10.3.0-fp16"
    assert a != engine_cache_key("f" * 64, "NVIDIA L4", (8, 9), "10.3.0", True)
    assert a != engine_cache_key("f" * 64, "Tesla T4", (7, 5), "10.4.0", True)
    assert a != engine_cache_key("f" * 64, "Tesla T4", (7, 5), "10.3.0", False)


@pytest.mark.parametrize("name", backends.available())
def test_every_registered_backend_runs_the_bundle_model(name, digits_bundle):
    """Each backend usable here reproduces onnxruntime-CPU on the digits MLP."""
    import onnxruntime as ort

    path = digits_bundle / "models" / "mlp" / "fp32.onnx"
    x = np.random.default_rng(0).uniform(0, 16, (5, 64)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], {"pixels": x})[0]
    runner = backends.get(name).load(path, "mlp/fp32", BackendOptions(max_batch=8, input_shapes=(("pixels", (64,)),)))
    with runner:
        assert runner.describe()
        out = runner.infer({"pixels": x})
    np.testing.assert_allclose(out["logits"], ref, rtol=1e-3, atol=1e-3)
    with pytest.raises(BackendError, match="used before activate"):
        runner.infer({"pixels": x})


@pytest.mark.trt
def test_tensorrt_engine_is_built_then_cached(digits_bundle, tmp_path):
    """Runs where TensorRT is installed (a GPU machine); skipped with the reason elsewhere."""
    path = digits_bundle / "models" / "mlp" / "fp32.onnx"
    opts = BackendOptions(cache_dir=tmp_path, max_batch=16, input_shapes=(("pixels", (64,)),))
    first = backends.get("tensorrt").load(path, "mlp", opts)
    with first:
        first.infer({"pixels": np.zeros((4, 64), np.float32)})
    assert first.built and list(tmp_path.glob("*.engine"))
    second = backends.get("tensorrt").load(path, "mlp", opts)
    with second:
        second.infer({"pixels": np.zeros((4, 64), np.float32)})
    assert not second.built


@pytest.mark.gpu
def test_onnxruntime_uses_the_gpu_when_present(digits_bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime here has no CUDA provider ({', '.join(ort.get_available_providers())}): install onnxruntime-gpu")
    runner = backends.get("onnxruntime").load(digits_bundle / "models" / "mlp" / "fp32.onnx", "mlp", BackendOptions())
    with runner:
        assert runner.device_kind() == "gpu", runner.describe()
