"""torch backend: the bundle's ``torch.export`` program run by the image's own torch.

Kaggle's GPU image ships torch with CUDA, so this path needs no wheel from the
bundle and cannot mismatch Kaggle's CUDA or cuDNN, unlike onnxruntime-gpu and
TensorRT. The runner loads the variant's ``.pt2`` with ``torch.export.load``,
moves it to the device (CUDA where there is one), and runs it under
``torch.inference_mode``; an fp16 rung runs the same program under
``torch.autocast`` (the packager checked that rung's parity the same way).
On CUDA, batches are staged through pinned host buffers and copied without
blocking.

``torch_compile`` (opt-in) wraps the module with ``torch.compile`` and runs one
batch of the member's size inside :meth:`TorchRunner.activate`, so compile time
is the runner's setup time, which the executor measures and the planner
charges. Inductor's cache lives under ``cache_dir/torch/<key>``, the key made of
GPU name, compute capability, torch and CUDA versions; inductor writes its
entries atomically, and a marker written with :func:`runtime.fileio.atomic_write`
records each finished compile (``compile_cache_hit`` tells a warm cache).

torch's errors are translated at this boundary: ``torch.cuda.OutOfMemoryError``
becomes :class:`~runtime.errors.OutOfMemoryError`, so the executor halves the
batch. :func:`load` falls back to the ONNX file (onnxruntime) when the program
is missing or does not load here, e.g. one exported by a newer torch.

GPU paths are written against torch's documented API and not yet run on a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends.base import BackendOptions, Runner
from runtime.bundle import sha256_file
from runtime.errors import BackendError, BackendUnavailableError, OutOfMemoryError
from runtime.fileio import atomic_write
from runtime.locks import PY_COMPILE_LOCK
from runtime.progress import log

#: Environment variable inductor reads for its on-disk cache.
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_cache_key(gpu_name: str, capability: tuple[int, int] | None, torch_version: str, cuda_version: str | None) -> str:
    """File-name-safe key: compiled kernels are only reusable when all of these match."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "device"
    cap = f"-sm{capability[0]}{capability[1]}" if capability else ""
    ver = re.sub(r"[^A-Za-z0-9.]+", "-", torch_version)
    return f"{gpu}{cap}-torch{ver}-cuda{cuda_version or 'none'}"


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(f"the torch backend needs torch, which is not installed here ({exc})") from exc
    return torch


class TorchRunner(Runner):
    """Runs a ``torch.export`` program (``.pt2``) on CUDA or the CPU.

    Attributes:
        device: Where it runs, once active (``cuda:0``, ``cpu``).
        compile_seconds: Seconds compiling took in :meth:`activate` (0 without compile).
        compile_cache_hit: A compile found this key's cache already written.
        compile_error: Why compile was given up (the program then runs uncompiled).
        peak_gpu_bytes: ``torch.cuda.max_memory_allocated`` while active (CUDA only).
    """

    def __init__(self, program: Path | None, name: str, options: BackendOptions):
        super().__init__(name)
        self.program = Path(program) if program is not None else None
        self.options = options
        self.module: Any = None  # the program's torch module (compiled or not) while active
        self.device = ""
        self.compile_seconds = 0.0
        self.compile_cache_hit = False
        self.compile_error = ""
        self.peak_gpu_bytes: int | None = None
        self._torch: Any = None  # the torch module, imported when first activated
        self._pinned: dict[str, Any] = {}
        self._autocast: tuple[str, Any] | None = None  # (device type, dtype) with fp16
        self._pad = False  # compiled: pad smaller batches up to max_batch (one compiled shape)

    # -- loading ------------------------------------------------------------------------
    def _device(self, torch) -> str:
        wanted = self.options.torch_device
        if wanted is None:
            return f"cuda:{self.options.device_id}" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda"):
            if not torch.cuda.is_available():
                raise BackendUnavailableError(f"{self.name}: torch device {wanted!r} asked for, but torch "
                                              f"{torch.__version__} sees no CUDA GPU (CUDA build: {torch.version.cuda or 'none'})")
            return wanted if ":" in wanted else f"cuda:{self.options.device_id}"
        return wanted

    def _load_module(self, torch, device: str):
        """The program's module on ``device``; BackendError (with both torch versions) when it does not load."""
        if self.program is None:
            raise BackendError(f"{self.name}: the bundle carries no torch program for this variant (ONNX only)")
        quiet = logging.getLogger("torch.export")  # it logs a traceback of its own; ours carries the reason
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            ep = torch.export.load(str(self.program))
            if device != "cpu":
                from torch.export.passes import move_to_device_pass

                ep = move_to_device_pass(ep, device)
            return ep.module()
        except Exception as exc:
            raise BackendError(
                f"{self.name}: torch {torch.__version__} could not load {self.program.name} "
                f"({type(exc).__name__}: {str(exc).strip()[:300]})"
            ) from exc
        finally:
            quiet.setLevel(level)

    def activate_impl(self) -> None:
        # Lanes load at once: torch.export.load keeps its deserializer in a global, and loading (torch.fx code
        # generation, torch.compile) builds Python ASTs, which CPython 3.11 cannot do in two threads at once.
        with PY_COMPILE_LOCK:
            self._activate()

    def _activate(self) -> None:
        torch = self._torch = _torch()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.device = self._device(torch)
        module = self._load_module(torch, self.device)
        cuda = self.device.startswith("cuda")
        if self.options.fp16:
            self._autocast = (self.device.split(":")[0], torch.float16)
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.module = module
        if self.options.torch_compile:
            self._compile(torch)

    def _compile(self, torch) -> None:
        """torch.compile the module and run one batch now, so the compile is setup time."""
        cache = self._cache_dir(torch)
        marker = None
        if cache is not None:
            assert self.program is not None, "_load_module refuses a variant without a torch program"
            cache.mkdir(parents=True, exist_ok=True)
            # One marker per program, precision and batch: each compiles to kernels of its own.
            what = f"{sha256_file(self.program)[:16]}-{'fp16' if self.options.fp16 else 'fp32'}-b{self.options.max_batch}"
            marker = cache / f"ninefit-compiled-{what}.json"
            self.compile_cache_hit = marker.is_file()
            os.environ[INDUCTOR_CACHE_ENV] = str(cache)
        t0 = time.perf_counter()
        eager = self.module
        try:
            with warnings.catch_warnings():  # inductor's own deprecation chatter is not the user's business
                warnings.simplefilter("ignore")
                self.module, self._pad = torch.compile(eager, dynamic=False), True
                if self.options.inputs and self.options.input_shapes:
                    shapes = dict(self.options.input_shapes)
                    feed = {n: np.zeros((self.options.max_batch, *shapes[n]), dtype=d) for n, d in self.options.inputs}
                    self.infer_impl(feed)
                    self._sync(torch)
        except Exception as exc:  # compile is an optimisation: the program still runs without it
            self.module, self._pad = eager, False
            self.compile_error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            log(f"{self.name}: torch.compile failed, running uncompiled ({self.compile_error})")
            return
        finally:
            self.compile_seconds = time.perf_counter() - t0
        if marker is not None:
            atomic_write(marker, json.dumps({"program": str(self.program), "seconds": self.compile_seconds}), fsync=False)

    def _cache_dir(self, torch) -> Path | None:
        if self.options.cache_dir is None:
            return None
        gpu, cap = platform.machine() or "cpu", None
        if self.device.startswith("cuda"):
            gpu = torch.cuda.get_device_name(self.device)
            cap = tuple(torch.cuda.get_device_capability(self.device))
        key = compile_cache_key(gpu, cap, torch.__version__, torch.version.cuda if self.device.startswith("cuda") else None)
        return Path(self.options.cache_dir) / "torch" / key

    def _sync(self, torch) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def deactivate_impl(self) -> None:
        torch = self._torch
        if torch is not None and self.device.startswith("cuda"):
            self._record_peak(torch)
            self.module = None
            self._pinned.clear()
            torch.cuda.empty_cache()
        self.module = None
        self._pinned.clear()

    def _record_peak(self, torch) -> None:
        try:
            self.peak_gpu_bytes = max(self.peak_gpu_bytes or 0, int(torch.cuda.max_memory_allocated(self.device)))
        except Exception:  # a failing query must not hide the run's real error
            pass

    # -- running --------------------------------------------------------------------------
    def _to_device(self, torch, name: str, array: np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if not self.device.startswith("cuda"):
            return tensor
        # A pinned buffer per input, reused across batches: page-locked memory lets the copy
        # to the GPU run asynchronously, and pinning once avoids paying it every batch.
        buf = self._pinned.get(name)
        if buf is None or buf.shape[1:] != tensor.shape[1:] or buf.dtype != tensor.dtype or buf.shape[0] < tensor.shape[0]:
            buf = torch.empty((max(tensor.shape[0], self.options.max_batch), *tensor.shape[1:]), dtype=tensor.dtype).pin_memory()
            self._pinned[name] = buf
        staged = buf[: tensor.shape[0]]
        staged.copy_(tensor)
        return staged.to(self.device, non_blocking=True)

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        names = [n for n, _ in self.options.inputs] or list(feed)
        missing = [n for n in names if n not in feed]
        if missing:
            raise BackendError(f"{self.name}: inputs {missing} missing from the feed; got {', '.join(feed)}")
        try:
            with torch.inference_mode():
                args = [self._to_device(torch, n, feed[n]) for n in names]
                n = args[0].shape[0] if args else 0
                if self._pad and 0 < n < self.options.max_batch:
                    # Compiled for the member's batch: pad the last, smaller batch rather than recompile.
                    args = [torch.cat([a, a[-1:].expand(self.options.max_batch - n, *a.shape[1:])]) for a in args]
                if self._autocast is not None:
                    with torch.autocast(self._autocast[0], dtype=self._autocast[1]):
                        out = self.module(*args)
                else:
                    out = self.module(*args)
                outs = out if isinstance(out, (tuple, list)) else (out,)
                arrays = [o[:n].float().cpu().numpy() if o.is_floating_point() else o[:n].cpu().numpy() for o in outs]
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()  # leave the cache empty for the halved batch that follows
            self._pad = False  # padding back up to the compiled batch would run out of memory again
            raise OutOfMemoryError(f"{self.name}: CUDA out of memory at batch {len(next(iter(feed.values())))} "
                                   f"({str(exc).strip().splitlines()[0][:200]})") from exc
        if self.device.startswith("cuda"):
            self._record_peak(torch)
        base = self.options.outputs[0] if self.options.outputs else "output"
        names_out = list(self.options.outputs) + [f"{base}_{k}" for k in range(len(self.options.outputs), len(arrays))]
        return dict(zip(names_out, arrays))

    def device_kind(self) -> str:
        return "gpu" if self.device.startswith("cuda") else "cpu"

    def describe(self) -> str:
        parts = [self.device or "inactive"]
        if self._autocast is not None:
            parts.append("autocast fp16")
        if self.options.torch_compile:
            parts.append(f"compile failed: {self.compile_error[:80]}" if self.compile_error else
                         f"compiled in {self.compile_seconds:.1f}s ({'cache hit' if self.compile_cache_hit else 'cold cache'})")
        return f"torch {self._torch.__version__ if self._torch else ''} ({', '.join(parts)})".replace("torch  (", "torch (")


__all__ = ["INDUCTOR_CACHE_ENV", "TorchRunner", "compile_cache_key"]
