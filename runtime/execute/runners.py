"""A member's runner for a lane: the backend chosen, its options from the member, the lane and the run.

Loading is deferred (Polygraphy's loader / runner split): :func:`load_runner`
builds a runner that is not active yet; the lane's worker activates it, timed,
as the member's setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from runtime import backends
from runtime.backends.base import BackendOptions, Runner
from runtime.bundle import Bundle
from runtime.errors import BackendError
from runtime.manifest import InputSpec, Member, Variant


class RunnerOptions(Protocol):
    """What a runner is built with (``runtime.run.RunOptions`` for one lane); read only, so frozen
    dataclasses fit."""

    @property
    def backend(self) -> str | None: ...
    @property
    def batch_size(self) -> int | None: ...
    @property
    def threads(self) -> int | None: ...
    @property
    def device_id(self) -> int: ...
    @property
    def work_dir(self) -> Path | None: ...
    @property
    def torch_compile(self) -> bool: ...


def _input_dims(inp: InputSpec, variant: Variant) -> tuple[int, ...]:
    """One input's dims after the batch; an image input takes the variant's size, in its layout."""
    if inp.image is not None:
        h, w = variant.image_size or inp.image.size
        c = inp.image.channels
        return (c, h, w) if inp.image.layout == "NCHW" else (h, w, c)  # as TestData.feed lays them out
    dims = inp.shape[1:]
    symbolic = [str(d) for d in dims if not isinstance(d, int)]
    if symbolic:
        raise BackendError(
            f"input {inp.name!r} has shape {list(inp.shape)}, with symbolic dimension(s) {', '.join(symbolic)} "
            "after the batch; the tensorrt backend builds its engine for fixed shapes and needs every dimension "
            "but the first to be a number (re-package with a fixed shape, or run with --backend onnxruntime)"
        )
    return tuple(int(d) for d in dims)


def trt_input_shapes(member: Member, variant: Variant) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Per input, the dims after the batch for a TensorRT optimization profile.

    Raises:
        BackendError: A non-image input with a symbolic dimension after the batch.
    """
    return tuple((inp.name, _input_dims(inp, variant)) for inp in member.inputs)


def load_runner(bundle: Bundle, member: Member, variant: Variant, options: RunnerOptions) -> Runner:
    """A (not yet active) runner for one variant of a member.

    A member whose graph runs on the CPU whatever the target (``Member.device == "cpu"``: tree ensembles and
    scikit-learn models, whose ai.onnx.ml operators have no GPU kernels in ONNX Runtime) gets an onnxruntime
    CPU session whatever the backend asked for: a CUDA session would run those nodes on the CPU anyway and
    copy the inputs to the GPU and back, TensorRT cannot build them, and there is no torch program.
    """
    if member.device == "cpu":
        runner = backends.get("onnxruntime").load(
            bundle.path(variant.file), f"{member.name}/{variant.name}",
            BackendOptions(threads=options.threads, providers=("CPUExecutionProvider",)))
        runner.cpu_by_design = True
        return runner
    if variant.backend == "openvino":  # the rung is OpenVINO's at its precision (its fp32, bf16 and int8 rungs)
        return backends.get("openvino").load(
            bundle.path(variant.file), f"{member.name}/{variant.name}",
            BackendOptions(threads=options.threads, precision=variant.precision))
    name = options.backend or backends.default_backend()
    backend = backends.get(name)
    batch = options.batch_size or member.batch_size
    # TensorRT needs shapes up front (its optimization profile), and torch.compile warms up on one batch of
    # them in activate(); onnxruntime takes them per batch.
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    if name == "tensorrt" or options.torch_compile:
        try:
            shapes = trt_input_shapes(member, variant)
        except BackendError:
            if name == "tensorrt":
                raise  # torch.compile instead compiles on the first batch (then not counted as load time)
    bopts = BackendOptions(
        device_id=options.device_id, fp16=variant.precision == "fp16", threads=options.threads,
        cache_dir=(options.work_dir / "engines") if options.work_dir else None, max_batch=batch, input_shapes=shapes,
        torch_file=bundle.path(variant.torch_file) if variant.torch_file else None, torch_compile=options.torch_compile,
        inputs=tuple((i.name, i.dtype) for i in member.inputs), outputs=(member.output,), precision=variant.precision,
    )
    return backend.load(bundle.path(variant.file), f"{member.name}/{variant.name}", bopts)


__all__ = ["RunnerOptions", "load_runner", "trt_input_shapes"]
