"""The fallback chain: try the fastest backend first, end on one that runs, say why.

On Kaggle a submission loses most often not to a wrong model but to a backend
that quietly is not there: onnxruntime-gpu built for another CUDA or cuDNN
(the session then runs on the CPU, with a warning nobody reads), TensorRT
libraries missing, a torch program exported by a newer torch. The ``auto``
backend tries, per variant, in order:

1. ``tensorrt``: onnxruntime's TensorRT execution provider;
2. ``onnxruntime-cuda``: onnxruntime's CUDA execution provider;
3. ``torch-cuda``: the bundle's ``torch.export`` program on the image's torch
   (needs nothing from the bundle's wheels);
4. ``onnxruntime-cpu``;
5. ``openvino-cpu``: the ONNX file on OpenVINO at fp32 (an explicit f32 inference
   precision, never its bf16 default), where openvino is installed and
   onnxruntime's CPU session failed;
6. ``torch-cpu``: where onnxruntime and OpenVINO are missing or broken.

OpenVINO comes after onnxruntime's CPU step, not before it: which of the two is
faster depends on the model (measured here: OpenVINO fp32 0.8x to 2.2x of
onnxruntime fp32), so it is not the chain's to guess per load. Where OpenVINO is
the faster, the bundle says so with an OpenVINO rung (``backend = "openvino"`` in
a ``[[model.variant]]``, guarded at packaging): the probes at run start measure it
beside the onnxruntime rung, and the planner uses it only where it is measured
cheaper (:mod:`runtime.schedule.rungs`). Probing both in the chain would load
every model twice on every lane for what the rung ladder already measures.

A step that does not apply here (no GPU, provider not in this onnxruntime, no
torch program in the bundle) is skipped; a step that is tried and fails, or
that ends on another device or provider than it asked for, is deactivated.
Either way the reason is kept in :attr:`FallbackRunner.attempts`, logged, and
reported per member; the executor re-measures the member's cost on the
backend it ended on (:meth:`runtime.schedule.costs.CostModel.rebase`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.errors import BackendError
from runtime.gpu import gpu_memory_used, gpu_present
from runtime.progress import log

#: Step labels, in the order they are tried.
STEPS = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu", "openvino-cpu", "torch-cpu")

_SKIPS_LOGGED: set[str] = set()  # a skip (no GPU here) is said once per process, not once per member


@dataclass(frozen=True)
class Candidate:
    """One step of a chain.

    Attributes:
        label: What the step is (``torch-cuda``); reported with its reason.
        make: Builds the (inactive) runner.
        accept: Given the activated runner, "" when it is what the step asked
            for, else why not (e.g. the session got the CPU provider only).
        skip: Non-empty: the step does not apply here, for this reason.
    """

    label: str
    make: Callable[[], Runner]
    accept: Callable[[Runner], str] | None = None
    skip: str = ""


class FallbackRunner(Runner):
    """Activates the first candidate that loads and is accepted; runs everything on it.

    Attributes:
        used: Label of the candidate it ended on ("" before activate).
        inner: That candidate's runner.
        attempts: ``(label, reason)`` of every candidate before it, skipped or failed.
    """

    def __init__(self, name: str, candidates: Sequence[Candidate], device_id: int = 0):
        super().__init__(name)
        self.candidates = list(candidates)
        self.device_id = device_id
        self.inner: Runner | None = None
        self.used = ""
        self.attempts: list[tuple[str, str]] = []
        self._nvml_peak: int | None = None

    @property
    def fell_back(self) -> bool:
        """Whether a candidate was tried and failed before the one used (skips do not count)."""
        return any(not reason.startswith("skipped") for _, reason in self.attempts)

    def activate_impl(self) -> None:
        self.attempts, self.used, self.inner = [], "", None
        for c in self.candidates:
            if c.skip:
                self._note(c.label, f"skipped: {c.skip}", once=True)
                continue
            runner = None
            try:
                runner = c.make()
                runner.activate()
                why = c.accept(runner) if c.accept else ""
            except Exception as exc:  # every failure is a reason to try the next step
                why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BackendError) else str(exc)
                runner = None
            if why and runner is not None:
                runner.deactivate()
                runner = None
            if runner is None:
                self._note(c.label, f"failed: {why}"[:500])
                continue
            self.inner, self.used = runner, c.label
            if self.fell_back:
                log(f"{self.name}: running on {c.label}: {runner.describe()}")
            return
        raise BackendError(f"{self.name}: no backend could run it; tried "
                           + "; ".join(f"{label} ({reason})" for label, reason in self.attempts))

    def _note(self, label: str, reason: str, once: bool = False) -> None:
        self.attempts.append((label, reason))
        text = f"{self.name}: {label} {reason}" if not once else f"{label} {reason}"
        if once:
            if text in _SKIPS_LOGGED:
                return
            _SKIPS_LOGGED.add(text)
        log(text + ("" if once else "; trying the next backend"))

    def deactivate_impl(self) -> None:
        if self.inner is not None:
            self.inner.deactivate()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.inner is not None, "an active chain has a runner: activate_impl sets one or raises"
        out = self.inner.infer(feed)  # the inner runner already translated its errors
        if self.inner.device_kind() == "gpu" and not hasattr(self.inner, "peak_gpu_bytes"):
            # onnxruntime and TensorRT keep no per-model peak: NVML's device-wide reading after each batch.
            used = gpu_memory_used(self.device_id)
            if used is not None:
                self._nvml_peak = max(self._nvml_peak or 0, used)
        return out

    def device_kind(self) -> str:
        return self.inner.device_kind() if self.inner is not None else "cpu"

    def describe(self) -> str:
        return self.inner.describe() if self.inner is not None else f"{self.name} (inactive)"

    def cpu_cause(self) -> str:
        """The backend's own reason, then why each GPU step of the chain was passed over."""
        from runtime.backends.onnxruntime import OnnxRuntimeRunner, cpu_fallback_cause

        if isinstance(self.inner, OnnxRuntimeRunner):
            # The chain set its providers itself: say why the GPU ones were not there, not that they were set.
            own = cpu_fallback_cause(self.inner.available, self.inner.providers, BackendOptions())
        else:
            own = self.inner.cpu_cause() if self.inner is not None else ""
        passed = "; ".join(f"{label}: {reason}" for label, reason in self.attempts)
        return "; ".join(filter(None, [own, f"the GPU steps were passed over ({passed})" if passed else ""]))

    @property
    def peak_gpu_bytes(self) -> int | None:
        """The inner runner's own peak (torch), else the NVML peak seen while it ran."""
        return getattr(self.inner, "peak_gpu_bytes", None) or self._nvml_peak

    @property
    def gpu_memory_source(self) -> str:
        if getattr(self.inner, "peak_gpu_bytes", None):
            return "torch.cuda.max_memory_allocated"
        return "nvml device used (all processes)" if self._nvml_peak else ""


def _ort_providers() -> list[str] | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _first_provider(wanted: str) -> Callable[[Runner], str]:
    def accept(runner: Runner) -> str:
        got = list(getattr(runner, "providers", []))
        if got[:1] == [wanted]:
            return ""
        return (f"asked onnxruntime for {wanted}, the session got {', '.join(got) or 'none'} "
                "(onnxruntime-gpu and this machine's CUDA/cuDNN or TensorRT do not match?)")
    return accept


def _on_gpu(runner: Runner) -> str:
    return "" if runner.device_kind() == "gpu" else f"asked for the GPU, ended on the CPU ({runner.describe()})"


def candidates(path: Path, name: str, options: BackendOptions) -> list[Candidate]:
    """The chain for one variant: the ONNX file at ``path``, the torch program in ``options.torch_file``."""
    from runtime.backends import onnxruntime as ort
    from runtime.backends.torch import TorchRunner

    gpu = gpu_present()[0]
    providers = _ort_providers()
    has_torch = importlib.util.find_spec("torch") is not None

    def ort_skip(provider: str, needs_gpu: bool) -> str:
        if needs_gpu and not gpu:
            return "no GPU here"
        if providers is None:
            return "onnxruntime is not installed"
        if provider not in providers:
            return f"this onnxruntime has no {provider} (it has {', '.join(providers)})"
        if provider == ort.TRT_EP and not ort.tensorrt_libraries_present():
            return "TensorRT libraries not found"
        return ""

    def torch_skip(needs_gpu: bool) -> str:
        if needs_gpu and not gpu:
            return "no GPU here"
        if not has_torch:
            return "torch is not installed"
        if options.torch_file is None:
            return "the bundle carries no torch program for this variant"
        return ""

    def openvino_skip() -> str:
        if importlib.util.find_spec("openvino") is None:
            return "openvino is not installed"
        if (options.precision or "fp32") not in ("fp32", "int8"):
            return f"OpenVINO runs this chain's fp32 and int8 files, not {options.precision}"
        return ""

    def openvino_runner() -> Runner:
        from runtime.backends.openvino import OpenVinoRunner

        return OpenVinoRunner(path, name, replace(options, precision=options.precision or "fp32"))

    def ort_runner(*chosen: str) -> Callable[[], Runner]:
        return lambda: ort.OnnxRuntimeRunner(path, name, replace(options, providers=chosen))

    def torch_runner(device: str) -> Callable[[], Runner]:
        return lambda: TorchRunner(options.torch_file, name, replace(options, torch_device=device))

    return [
        Candidate("tensorrt", ort_runner(ort.TRT_EP, ort.CUDA_EP), _first_provider(ort.TRT_EP), ort_skip(ort.TRT_EP, True)),
        Candidate("onnxruntime-cuda", ort_runner(ort.CUDA_EP), _first_provider(ort.CUDA_EP), ort_skip(ort.CUDA_EP, True)),
        Candidate("torch-cuda", torch_runner("cuda"), _on_gpu, torch_skip(True)),
        Candidate("onnxruntime-cpu", ort_runner(ort.CPU_EP), None, ort_skip(ort.CPU_EP, False)),
        Candidate("openvino-cpu", openvino_runner, None, openvino_skip()),
        Candidate("torch-cpu", torch_runner("cpu"), None, torch_skip(False)),
    ]


def load(path: Path, name: str, options: BackendOptions) -> FallbackRunner:
    """Loader for the registry (backend ``auto``)."""
    return FallbackRunner(name, candidates(path, name, options), options.device_id)


def torch_first(path: Path, name: str, options: BackendOptions) -> Runner:
    """Loader for the registry (backend ``torch``): the torch program, falling back to the ONNX file at ``path``.

    A program missing from the bundle, or one this torch cannot load (exported
    by a newer torch, say), is logged with the reason and the variant runs on
    onnxruntime instead, on the same kind of device.
    """
    from runtime.backends import onnxruntime as ort
    from runtime.backends.torch import TorchRunner

    cuda_wanted = options.torch_device is None or options.torch_device.startswith("cuda")
    providers = (ort.CUDA_EP, ort.CPU_EP) if cuda_wanted else (ort.CPU_EP,)
    return FallbackRunner(name, [
        Candidate("torch", lambda: TorchRunner(options.torch_file, name, options)),
        Candidate("onnxruntime", lambda: ort.OnnxRuntimeRunner(path, name, replace(options, providers=_present(providers)))),
    ], options.device_id)


def _present(providers: tuple[str, ...]) -> tuple[str, ...] | None:
    """The providers of ``providers`` this onnxruntime has (None: its own choice)."""
    have = _ort_providers()
    return None if have is None else (tuple(p for p in providers if p in have) or None)


__all__ = ["STEPS", "Candidate", "FallbackRunner", "candidates", "load", "torch_first"]
