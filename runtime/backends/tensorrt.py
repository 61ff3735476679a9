"""TensorRT backend through NVIDIA Polygraphy (needs `tensorrt` and `polygraphy`).

An engine is tied to the GPU architecture and the TensorRT version that built
it, so the bundle carries ONNX and the engine is built on the Kaggle GPU at
notebook start. Built engines are cached under ``cache_dir`` keyed by the ONNX
file's sha256, GPU name, compute capability, TensorRT version and precision;
a timing cache (valid only within one TensorRT version) cuts rebuild time.

Not exercised on the development machines: TensorRT is not installable there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.bundle import sha256_file
from runtime.errors import BackendError, BackendUnavailableError
from runtime.gpu import gpu_info


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
        self._runner = None
        self.engine_path: Path | None = None
        self.built = False

    def activate_impl(self) -> None:
        try:
            import tensorrt as trt
            from polygraphy.backend.common import BytesFromPath
            from polygraphy.backend.trt import (
                CreateConfig, EngineFromBytes, EngineFromNetwork, NetworkFromOnnxPath, Profile, SaveEngine, TrtRunner,
            )
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
            if self.engine_path.is_file():
                engine = EngineFromBytes(BytesFromPath(str(self.engine_path)))
            else:
                profile = Profile()
                for input_name, dims in self.options.input_shapes:
                    profile.add(
                        input_name, min=(1, *dims),
                        opt=(self.options.max_batch, *dims), max=(self.options.max_batch, *dims),
                    )
                config = CreateConfig(
                    fp16=self.options.fp16, profiles=[profile],
                    load_timing_cache=str(timing_cache) if timing_cache.is_file() else None,
                )
                engine = SaveEngine(
                    EngineFromNetwork(NetworkFromOnnxPath(str(self.path)), config=config, save_timing_cache=str(timing_cache)),
                    str(self.engine_path),
                )
                self.built = True
            self._runner = TrtRunner(engine, name=self.name)
            self._runner.activate()
        except Exception as exc:
            raise BackendError(f"{self.name}: TensorRT could not build or load an engine for {self.path.name}: {str(exc)[:400]}") from exc

    def deactivate_impl(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

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
