"""onnxruntime backend: CPU, CUDA and TensorRT execution providers.

The provider order is TensorRT > CUDA > CPU, restricted to what the installed
onnxruntime offers (and TensorRT only where its libraries can be found, since
onnxruntime-gpu lists the provider even without them). The providers a session
really got are recorded by :meth:`OnnxRuntimeRunner.describe`.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.errors import BackendError, BackendUnavailableError
from runtime.locks import PY_COMPILE_LOCK

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
_PREFERENCE = (TRT_EP, CUDA_EP, CPU_EP)


def tensorrt_libraries_present() -> bool:
    """Whether TensorRT's libraries are here (its Python package or libnvinfer): its onnxruntime provider needs them."""
    return importlib.util.find_spec("tensorrt") is not None or ctypes.util.find_library("nvinfer") is not None


def select_providers(available: list[str], options: BackendOptions) -> list[tuple[str, dict[str, Any]]]:
    """Pick (provider, provider options) pairs in preference order."""
    if options.providers is not None:
        missing = [p for p in options.providers if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"no execution provider {', '.join(map(repr, missing))}; available: {', '.join(available)}"
            )
        wanted = list(options.providers)
    else:
        wanted = [p for p in _PREFERENCE if p in available and (p != TRT_EP or tensorrt_libraries_present())]
    chosen = []
    for p in wanted:
        if p == TRT_EP:
            opts: dict[str, Any] = {"device_id": options.device_id, "trt_fp16_enable": options.fp16}
            if options.cache_dir is not None:
                cache = str(Path(options.cache_dir) / "trt")
                Path(cache).mkdir(parents=True, exist_ok=True)
                opts.update(
                    trt_engine_cache_enable=True, trt_engine_cache_path=cache,
                    trt_timing_cache_enable=True, trt_timing_cache_path=cache,
                )
            chosen.append((p, opts))
        elif p == CUDA_EP:
            chosen.append((p, {"device_id": options.device_id}))
        else:
            chosen.append((p, {}))
    return chosen


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with onnxruntime."""

    def __init__(self, path: Path, name: str, options: BackendOptions):
        super().__init__(name)
        self.path = Path(path)
        self.options = options
        self.session: Any = None  # an onnxruntime.InferenceSession while active (onnxruntime is untyped)
        self.providers: list[str] = []
        self.available: list[str] = []  # what the installed onnxruntime offers

    def activate_impl(self) -> None:
        try:
            with PY_COMPILE_LOCK:  # a first import compiles modules: not beside another lane doing so (runtime.locks)
                import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)") from exc
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.options.threads:
            so.intra_op_num_threads = self.options.threads
        self.available = list(ort.get_available_providers())
        providers = select_providers(self.available, self.options)
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=so,
                providers=[p for p, _ in providers], provider_options=[o for _, o in providers],
            )
        except Exception as exc:
            raise BackendError(f"{self.name}: onnxruntime could not load {self.path.name}: {str(exc)[:400]}") from exc
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        self.session = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, dict(feed))
        return dict(zip(self.output_names, outputs))

    def device_kind(self) -> str:
        return "gpu" if any(p in (TRT_EP, CUDA_EP) for p in self.providers) else "cpu"

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers) or 'inactive'})"

    def cpu_cause(self) -> str:
        """Why this session runs on the CPU, for the warning of :func:`runtime.gpu.device_mismatch`."""
        return cpu_fallback_cause(self.available, self.providers, self.options)


def cpu_fallback_cause(available: list[str], got: list[str], options: BackendOptions) -> str:
    """Why a session got the CPU provider alone: the CPU build, or a GPU build that could not load CUDA."""
    import importlib.metadata

    gpu = [p for p in available if p in (TRT_EP, CUDA_EP)]
    if options.providers is not None and not any(p in gpu for p in options.providers):
        return f"the providers were set to {', '.join(options.providers)}"
    if not gpu:
        try:
            dist = f"onnxruntime {importlib.metadata.version('onnxruntime')}"
        except importlib.metadata.PackageNotFoundError:
            dist = "an onnxruntime"
        return (f"the installed onnxruntime has no GPU provider (it offers {', '.join(available) or 'none'}): "
                f"{dist} is the CPU build. Install onnxruntime-gpu instead (the bundle's wheels/; remove the CPU "
                "one first, as both are the module onnxruntime)")
    return (f"onnxruntime offers {', '.join(gpu)}, but the session got {', '.join(got) or 'none'}: the GPU provider "
            "failed to load, most often a CUDA or cuDNN version that this onnxruntime-gpu was not built for")


def load(path: Path, name: str, options: BackendOptions) -> OnnxRuntimeRunner:
    """Loader for the registry: deferred, nothing is built until activate()."""
    return OnnxRuntimeRunner(path, name, options)


__all__ = ["OnnxRuntimeRunner", "cpu_fallback_cause", "load", "select_providers", "tensorrt_libraries_present"]
