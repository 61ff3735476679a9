"""OpenVINO backend (needs ``openvino``): the bundle's ONNX file on the CPU, in fp32 or bf16.

OpenVINO compiles the ONNX file for this CPU (``Core.compile_model(..., "CPU", config)``) with an explicit
``INFERENCE_PRECISION_HINT``: ``f32`` for an fp32 rung (OpenVINO's own default is bf16 on a CPU that has it,
which would change the predictions without a word), ``bf16`` for a bf16 rung. An int8 (QDQ) file runs in int8
whatever the hint.

bf16 is run only on a CPU with native bf16, detected from OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU
device (it lists ``BF16`` where the CPU has AVX-512 BF16 or AMX; :func:`native_bf16`), what OpenVINO itself
decides by. Elsewhere OpenVINO would silently run the bf16 hint in fp32 (or emulate it), so a bf16 rung there
fails to load with the reason, and the run leaves the rung out (:mod:`runtime.schedule.rungs`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.errors import BackendError, BackendUnavailableError
from runtime.locks import PY_COMPILE_LOCK

#: The precisions an OpenVINO rung runs at, and OpenVINO's name for each.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: /proc/cpuinfo flags of native bf16 (said beside OpenVINO's verdict).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(text: str | None = None) -> set[str]:
    """The CPU's flags from /proc/cpuinfo (empty where unreadable)."""
    if text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return set()
    found = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return set(found.group(1).split()) if found else set()


def _core() -> Any:
    try:
        with PY_COMPILE_LOCK:  # a first import compiles modules: not beside another lane doing so (runtime.locks)
            import openvino as ov
    except ImportError as exc:
        raise BackendUnavailableError("the openvino backend needs openvino (pip install openvino)") from exc
    return ov.Core()


def capabilities(core: Any = None) -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU device (``BF16``, ``INT8``, ``FP32``...)."""
    core = core or _core()
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def native_bf16(core: Any = None) -> tuple[bool, str]:
    """(whether this CPU runs bf16 natively, how that was decided), from OpenVINO's capabilities and the flags."""
    caps = capabilities(core)
    flags = sorted(f for f in BF16_FLAGS if f in cpu_flags())
    where = (f"OpenVINO's CPU OPTIMIZATION_CAPABILITIES: {', '.join(caps)}; /proc/cpuinfo bf16 flags: "
             f"{', '.join(flags) or 'none'}")
    return "BF16" in caps, where


class OpenVinoRunner(Runner):
    """Compiles the ONNX file with OpenVINO for the CPU at the rung's precision; runs batches of any size."""

    def __init__(self, path: Path, name: str, options: BackendOptions):
        super().__init__(name)
        self.path = Path(path)
        self.options = options
        self.precision = options.precision or "fp32"
        self.compiled: Any = None
        self.request: Any = None
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self.got = ""  # the inference precision OpenVINO reports it compiled with

    def activate_impl(self) -> None:
        if self.precision not in PRECISION_HINTS:
            raise BackendError(f"{self.name}: the openvino backend runs fp32, bf16 or int8 rungs, not "
                               f"{self.precision}")
        core = _core()
        if self.precision == "bf16":
            ok, where = native_bf16(core)
            if not ok:
                raise BackendUnavailableError(f"{self.name}: this CPU has no native bf16 ({where}); a bf16 rung is "
                                              "run only where the CPU computes in bf16, never emulated or silently "
                                              "in fp32")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if self.options.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.options.threads)
        try:
            model = core.read_model(str(self.path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise BackendError(f"{self.name}: OpenVINO could not compile {self.path.name}: {str(exc)[:400]}") from exc
        got = str(self.compiled.get_property("INFERENCE_PRECISION_HINT")).lower()  # "<Type: 'bfloat16'>"
        self.got = "bf16" if "bfloat16" in got or "bf16" in got else "fp32" if "f32" in got or "float32" in got else got
        if self.precision == "bf16" and self.got != "bf16":
            raise BackendError(f"{self.name}: asked OpenVINO for bf16, it compiled {self.path.name} at {self.got}")
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_names = [p.get_any_name() for p in self.compiled.outputs]

    def deactivate_impl(self) -> None:
        self.request = None
        self.compiled = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer({k: np.ascontiguousarray(v) for k, v in feed.items()})
        return {name: np.array(result[port]) for name, port in zip(self.output_names, self.compiled.outputs)}

    def describe(self) -> str:
        return f"openvino CPU ({self.precision}, inference precision {self.got or 'inactive'})"


def load(path: Path, name: str, options: BackendOptions) -> OpenVinoRunner:
    """Loader for the registry: deferred, nothing is compiled until activate()."""
    return OpenVinoRunner(path, name, options)


__all__ = ["BF16_FLAGS", "PRECISION_HINTS", "OpenVinoRunner", "capabilities", "cpu_flags", "load", "native_bf16"]
