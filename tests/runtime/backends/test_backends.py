"""Backends: registry rules, provider selection, error translation, and every registered backend run for real."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from runtime import backends
from runtime.backends import onnxruntime as ort_backend, tensorrt as trt_backend
from runtime.backends.base import BackendOptions, translate_error
from runtime.backends.registry import register
from runtime.backends.tensorrt import engine_cache_key
from runtime.errors import BackendError, BackendUnavailableError, OutOfMemoryError
from tests.fixtures.models import MODELS, check_model

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
    monkeypatch.setattr(ort_backend, "tensorrt_libraries_present", lambda: False)
    chosen = ort_backend.select_providers(avail, BackendOptions(device_id=1))
    assert [p for p, _ in chosen] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chosen[0][1] == {"device_id": 1}
    monkeypatch.setattr(ort_backend, "tensorrt_libraries_present", lambda: True)
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


class FakeTensorRT:
    """Stand-ins for ``tensorrt`` and the Polygraphy loaders the TensorRT backend uses, counting builds."""

    def __init__(self, monkeypatch):
        self.builds = 0
        self.fail_build = False
        self.profiles: list[dict] = []
        self.writes: list[Path] = []
        fake = self

        class Profile(dict):
            def add(self, name, min, opt, max):  # noqa: A002 - Polygraphy's keyword names
                self[name] = (min, opt, max)
                fake.profiles.append(self)

        def engine_bytes_from_network(network, config=None, save_timing_cache=None):
            def build():
                fake.builds += 1
                if fake.fail_build:
                    raise RuntimeError("killed mid-build")
                return b"ENGINE:" + network().encode()
            return build

        def engine_from_bytes(serialized):
            def load():
                data = serialized() if callable(serialized) else serialized
                if not data.startswith(b"ENGINE:"):
                    raise RuntimeError("Could not deserialize engine")
                return types.SimpleNamespace(data=data)
            return load

        class TrtRunner:
            def __init__(self, engine, name=None):
                self.engine = engine

            def activate(self):
                pass

            def deactivate(self):
                pass

            def infer(self, feed):
                return {"y": np.asarray(feed["x"]) * 2}

        modules = {
            "tensorrt": types.SimpleNamespace(__version__="10.0.1"),
            "polygraphy": types.ModuleType("polygraphy"),
            "polygraphy.backend": types.ModuleType("polygraphy.backend"),
            "polygraphy.backend.common": types.SimpleNamespace(BytesFromPath=lambda path: lambda: Path(path).read_bytes()),
            "polygraphy.backend.trt": types.SimpleNamespace(
                CreateConfig=lambda **kw: kw, EngineBytesFromNetwork=engine_bytes_from_network,
                EngineFromBytes=engine_from_bytes, NetworkFromOnnxPath=lambda path: lambda: Path(path).name,
                Profile=Profile, TrtRunner=TrtRunner,
            ),
        }
        for name, module in modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(trt_backend, "gpu_info", lambda device_id: None)
        real_write = trt_backend.atomic_write

        def atomic_write(path, data, **kw):
            self.writes.append(Path(path))
            return real_write(path, data, **kw)

        monkeypatch.setattr(trt_backend, "atomic_write", atomic_write)

    def run(self, onnx: Path, cache: Path) -> trt_backend.TensorRTRunner:
        runner = trt_backend.load(onnx, "m/fp32", BackendOptions(cache_dir=cache, max_batch=8, input_shapes=(("x", (3, 4)),)))
        with runner:
            np.testing.assert_array_equal(runner.infer({"x": np.ones((2, 3, 4))})["y"], np.full((2, 3, 4), 2.0))
        return runner


def test_tensorrt_engine_cache_is_written_atomically_and_a_corrupt_one_is_rebuilt(monkeypatch, tmp_path, capsys):
    """Without TensorRT: Polygraphy and tensorrt faked, to check the caching logic alone."""
    fake = FakeTensorRT(monkeypatch)
    onnx, cache = tmp_path / "m.onnx", tmp_path / "engines"
    onnx.write_bytes(b"onnx")
    first = fake.run(onnx, cache)
    assert first.built and fake.builds == 1 and fake.writes == [first.engine_path]
    assert first.engine_path.read_bytes() == b"ENGINE:m.onnx" and fake.profiles[0]["x"] == ((1, 3, 4), (8, 3, 4), (8, 3, 4))
    second = fake.run(onnx, cache)
    assert not second.built and fake.builds == 1  # loaded from the cache

    first.engine_path.write_bytes(b"ENGI")  # truncated, as by a kill before the atomic write existed
    third = fake.run(onnx, cache)
    assert third.built and fake.builds == 2 and third.engine_path.read_bytes() == b"ENGINE:m.onnx"
    assert f"cached engine {third.engine_path.name} is unreadable" in capsys.readouterr().err

    # A build killed before its bytes were written leaves nothing under the engine's name.
    third.engine_path.unlink()
    leftover = cache / f".{third.engine_path.name}.x1y2.tmp"
    leftover.write_bytes(b"half an engine")
    fake.fail_build = True
    with pytest.raises(BackendError, match="TensorRT could not build or load an engine for m.onnx: killed mid-build"):
        fake.run(onnx, cache)
    assert sorted(p.name for p in cache.iterdir()) == []


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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_test_model_runs_on_onnxruntime_as_in_torch(name, tmp_path):
    """The tests' torch models (tests/fixtures/models.py), exported to ONNX, answer on the onnxruntime
    backend as in torch: each model's own check."""
    import warnings

    import torch

    entry = MODELS[name]
    model = entry.make().eval()
    example = tuple(torch.zeros([2 if d == "batch" else d for d in shape]) for shape in entry.inputs.values())
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracer notes
        torch.onnx.export(model, example, str(path), dynamo=False, input_names=list(entry.inputs), output_names=["y"],
                          dynamic_axes={n: {0: "batch"} for n in [*entry.inputs, "y"]})
    with ort_backend.load(path, name, BackendOptions(providers=("CPUExecutionProvider",))) as runner:
        check_model(name, runner.infer, model)
