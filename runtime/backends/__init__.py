"""Inference backends. ``available()`` lists those usable here, best first."""

from runtime.backends import chain as _chain, onnxruntime as _ort, openvino as _ov, tensorrt as _trt
from runtime.backends.base import BackendOptions, Runner
from runtime.backends.registry import Backend, available, get, load_plugins, register, unavailable

# Registration order is preference order. onnxruntime comes first: it already
# uses TensorRT through its execution provider where the libraries exist, and
# falls back per node; the native TensorRT backend is opt-in (--backend tensorrt).
register("onnxruntime", _ort.load, requires=("onnxruntime",), description="onnxruntime with TensorRT/CUDA/CPU providers")
register("tensorrt", _trt.load, requires=("tensorrt", "polygraphy"), description="TensorRT engines built on this GPU (Polygraphy)")
# OpenVINO on the CPU: the rungs that name it (Variant.backend "openvino": its fp32 and bf16 rungs), or
# --backend openvino; registered only where openvino is installed.
register("openvino", _ov.load, requires=("openvino",), description="OpenVINO on the CPU, fp32 or bf16 (native bf16 only)")
register("torch", _chain.torch_first, requires=("torch",), description="the bundle's torch.export program on the image's torch (CUDA or CPU), ONNX as fallback")
# The default: each variant on the first of TensorRT, onnxruntime CUDA, torch CUDA,
# onnxruntime CPU, OpenVINO CPU, torch CPU that runs here, with the reason for every step passed over.
register("auto", _chain.load, requires=(), description="fallback chain: tensorrt > onnxruntime-cuda > torch-cuda > onnxruntime-cpu > openvino-cpu > torch-cpu")


def default_backend() -> str:
    """The backend used when none is named: the fallback chain."""
    return "auto"


__all__ = ["Backend", "BackendOptions", "Runner", "available", "default_backend", "get", "load_plugins", "register", "unavailable"]
