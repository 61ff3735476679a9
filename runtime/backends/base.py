"""The backend interface: loaders build runners, runners run batches.

Two layers, as in Polygraphy: a *loader* is a cheap deferred callable that
builds a session or engine when called; a *runner* is a context manager with
``activate()`` / ``infer(feed)`` / ``deactivate()``. Backends translate their
library's errors into :mod:`runtime.errors` at this boundary.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from runtime.errors import BackendError, OutOfMemoryError


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend may honour; ``None`` means the backend's default."""

    device_id: int = 0
    fp16: bool = False  # build reduced-precision engines (TensorRT)
    cache_dir: Path | None = None  # engine / timing caches
    threads: int | None = None  # CPU intra-op threads
    providers: tuple[str, ...] | None = None  # onnxruntime: explicit provider order
    max_batch: int = 64  # TensorRT optimization profile: largest batch
    # TensorRT optimization profile: per input, the dims after the batch (runtime.run.trt_input_shapes).
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # The torch backend: the variant's torch.export program (None: the member carries ONNX only),
    # the device ("cuda", "cuda:1", "cpu"; None: CUDA where there is one), opt-in torch.compile,
    # and the model's inputs (name, dtype) in argument order and output names (the member's first).
    torch_file: Path | None = None
    torch_device: str | None = None
    torch_compile: bool = False
    inputs: tuple[tuple[str, str], ...] = ()
    outputs: tuple[str, ...] = ()
    # The rung's precision (Variant.precision: fp32, fp16, bf16, int8); the openvino backend compiles at it.
    precision: str = ""


class Runner(abc.ABC):
    """Runs one model. Use as a context manager, or call activate/deactivate."""

    def __init__(self, name: str):
        self.name = name
        self.is_active = False
        # The member's graph runs on the CPU whatever the target (Member.device "cpu": tree ensembles), so
        # its CPU session is by design, not a fallback (runtime.gpu.device_mismatch stays quiet about it).
        self.cpu_by_design = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Raises OutOfMemoryError or BackendError, never a library error."""
        if not self.is_active:
            raise BackendError(f"runner {self.name!r} used before activate()")
        try:
            return self.infer_impl(feed)
        except (BackendError, MemoryError) as exc:
            if isinstance(exc, MemoryError):
                raise OutOfMemoryError(f"{self.name}: host memory exhausted") from exc
            raise
        except Exception as exc:  # translated at the boundary, with the original chained
            raise translate_error(self.name, exc) from exc

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def deactivate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def device_kind(self) -> str:
        """"cpu" or "gpu": where this runner's work happens."""
        return "cpu"

    def describe(self) -> str:
        """One line for the run log (backend, providers, device)."""
        return self.name

    def cpu_cause(self) -> str:
        """Why this runner runs on the CPU, when a GPU was wanted (see ``runtime.gpu.device_mismatch``); "" unknown."""
        return ""


_OOM_PATTERNS = re.compile(
    r"out of memory|failed to allocate memory|bad_alloc|cudaErrorMemoryAllocation|"
    r"CUDA_ERROR_OUT_OF_MEMORY|CUBLAS_STATUS_ALLOC_FAILED|OutOfMemory",
    re.IGNORECASE,
)


def translate_error(name: str, exc: BaseException) -> BackendError:
    """Map a library exception onto the ninefit tree (OOM is told apart)."""
    text = f"{type(exc).__name__}: {exc}"
    if _OOM_PATTERNS.search(text):
        return OutOfMemoryError(f"{name}: out of memory ({text.strip()[:300]})")
    return BackendError(f"{name}: inference failed ({text.strip()[:500]})")


__all__ = ["BackendOptions", "Runner", "translate_error"]
