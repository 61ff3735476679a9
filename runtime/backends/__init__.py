"""Inference backends. ``available()`` lists those usable here, best first."""

from runtime.backends import onnxruntime as _ort
from runtime.backends import tensorrt as _trt
from runtime.backends.base import BackendOptions, Runner
from runtime.backends.registry import Backend, available, get, load_plugins, register, unavailable

# Registration order is preference order. onnxruntime comes first: it already
# uses TensorRT through its execution provider where the libraries exist, and
# falls back per node; the native TensorRT backend is opt-in (--backend tensorrt).
register("onnxruntime", _ort.load, requires=("onnxruntime",), description="onnxruntime with TensorRT/CUDA/CPU providers")
register("tensorrt", _trt.load, requires=("tensorrt", "polygraphy"), description="TensorRT engines built on this GPU (Polygraphy)")


def default_backend() -> str:
    """The preferred backend usable here."""
    names = available()
    return names[0] if names else "onnxruntime"


__all__ = ["Backend", "BackendOptions", "Runner", "available", "default_backend", "get", "load_plugins", "register", "unavailable"]
