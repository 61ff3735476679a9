"""TensorRT backend through NVIDIA Polygraphy (needs `tensorrt` and `polygraphy`).

An engine is tied to the GPU architecture and the TensorRT version that built
it, so the bundle carries ONNX and the engine is built on the Kaggle GPU at
notebook start. Built engines are cached under ``cache_dir`` keyed by the ONNX
file's sha256, GPU name, compute capability, TensorRT version and precision;
a timing cache (valid only within one TensorRT version) cuts rebuild time.
The engine is written atomically (a kill mid-build leaves no truncated file),
and a cached engine that cannot be deserialized is deleted and rebuilt once.

Not exercised on the development machines: TensorRT is not installable there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.bundle import sha256_file
from runtime.errors import BackendError, BackendUnavailableError
from runtime.fileio import atomic_write
from runtime.gpu import gpu_info
from runtime.locks import PY_COMPILE_LOCK
from runtime.progress import log


def engine_cache_key(onnx_sha256: str, gpu_name: str, capability: tuple[int, int], trt_version: str, fp16: bool) -> str:
    """File-name-safe key: an engine is only reusable when all of these match."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    return f"{onnx_sha256[:16]}-{gpu}-sm{capability[0]}{capability[1]}-trt{trt_version}-{'fp16' if fp16 else 'fp32'}"


class TensorRTRunner(Runner):
    """Builds (or loads a cached) TensorRT engine and runs it with Polygraphy's TrtRunner."""

    def __init__(self, path: Path, name: str, options: BackendOptions):
        super().__init__(name)
        self.path = Path(path)
        self.options = options
        self._runner: Any = None  # Polygraphy's TrtRunner while active (Polygraphy is untyped)
        self._engine = None  # owned here: TrtRunner does not free an engine it was given
        self.engine_path: Path | None = None
        self.built = False

    def activate_impl(self) -> None:
        try:
            with PY_COMPILE_LOCK:  # a first import compiles modules: not beside another lane doing so (runtime.locks)
                import polygraphy.backend.common  # noqa: F401  (used below: imported here, under the lock)
                import tensorrt as trt
                from polygraphy.backend.trt import TrtRunner
        except ImportError as exc:
            raise BackendUnavailableError(f"TensorRT backend needs tensorrt and polygraphy: {exc}") from exc
        info = gpu_info(self.options.device_id)
        gpu_name, cap = (info.name, info.compute_capability) if info else ("gpu", (0, 0))
        cache_dir = Path(self.options.cache_dir or self.path.parent)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = engine_cache_key(sha256_file(self.path), gpu_name, cap, trt.__version__, self.options.fp16)
        self.engine_path = cache_dir / f"{key}.engine"
        timing_cache = cache_dir / f"timing-trt{trt.__version__}.cache"
        try:
            engine = self._cached_engine()
            self._engine = engine if engine is not None else self._build_engine(timing_cache)
            self._runner = TrtRunner(self._engine, name=self.name)
            self._runner.activate()
        except Exception as exc:
            self._engine = None
            raise BackendError(f"{self.name}: TensorRT could not build or load an engine for {self.path.name}: {str(exc)[:400]}") from exc

    def _cached_engine(self):
        """The cached engine, or None when there is none or it cannot be deserialized (then it is deleted)."""
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes

        if not self.engine_path.is_file():
            return None
        try:
            return EngineFromBytes(BytesFromPath(str(self.engine_path)))()
        except Exception as exc:  # truncated or foreign file: rebuilding is the only way forward
            log(f"{self.name}: cached engine {self.engine_path.name} is unreadable ({str(exc)[:200]}); rebuilding it")
            self.engine_path.unlink(missing_ok=True)
            return None

    def _build_engine(self, timing_cache: Path):
        """Build the engine from the ONNX file, cache its bytes atomically, and deserialize them."""
        from polygraphy.backend.trt import (
            CreateConfig,
            EngineBytesFromNetwork,
            EngineFromBytes,
            NetworkFromOnnxPath,
            Profile,
        )

        profile = Profile()
        for input_name, dims in self.options.input_shapes:
            profile.add(input_name, min=(1, *dims), opt=(self.options.max_batch, *dims), max=(self.options.max_batch, *dims))
        config = CreateConfig(
            fp16=self.options.fp16, profiles=[profile],
            load_timing_cache=str(timing_cache) if timing_cache.is_file() else None,
        )
        assert self.engine_path is not None, "activate_impl names the engine's path before building it"
        for tmp in self.engine_path.parent.glob(f".{self.engine_path.name}.*.tmp"):  # left by a killed build
            tmp.unlink(missing_ok=True)
        serialized = EngineBytesFromNetwork(
            NetworkFromOnnxPath(str(self.path)), config=config, save_timing_cache=str(timing_cache)
        )()
        atomic_write(self.engine_path, lambda f: f.write(serialized))
        self.built = True
        return EngineFromBytes(serialized)()

    def deactivate_impl(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None
        self._engine = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._runner.infer(dict(feed))
        return {k: np.asarray(v) for k, v in out.items()}

    def device_kind(self) -> str:
        return "gpu"

    def describe(self) -> str:
        state = "built" if self.built else "cached"
        return f"tensorrt (polygraphy, engine {state}: {self.engine_path.name if self.engine_path else '-'})"


def load(path: Path, name: str, options: BackendOptions) -> TensorRTRunner:
    return TensorRTRunner(path, name, options)


__all__ = ["TensorRTRunner", "engine_cache_key", "load"]
