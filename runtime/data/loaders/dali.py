"""Decode and resize image-folder test data with NVIDIA DALI (``NINEFIT_LOADER=dali``).

On a GPU the JPEG/PNG decode (``device="mixed"``: nvJPEG / nvImageCodec),
the resize and the normalisation run on the device, which leaves a Kaggle
notebook's four CPU cores to the rest; without one the same pipeline runs on
the CPU. The file bytes are read here with numpy, in row order, and fed to an
``external_source``, so batch ``i`` of the output is row ``start + i`` exactly,
partial last batches included. One pipeline is built per (output size, image
spec) and reused across batches.

Parity with the PIL path (:mod:`runtime.data.loaders.pil`), measured
with DALI 2.4 CPU pipelines on 440 random PNG and JPEG images of odd sizes
(RGB, grayscale, RGBA; noise and smooth; up- and downscaled), in grey levels
of 0..255 (multiply by ``scale / std`` for the normalised values):

* inside the image the resampling kernels are the same (a triangle filter
  widened by the downscale factor): at most 1 level apart (rounding: Pillow
  rounds to uint8 between its two passes), 2 for grayscale from RGB (luma
  rounding too);
* on the one-pixel border they differ: Pillow renormalises the kernel where
  it overhangs the image, DALI repeats the edge pixel; up to 20 levels on
  pure noise (the overhanging weight is 1/8 when downscaling), about half
  that on smooth images. The mean difference stays under 0.7 levels.

tests/runtime/data/test_dali.py holds it to 2 inside, 24 on the border. nvJPEG on
a GPU decodes JPEG slightly differently from libjpeg-turbo; that has not been
measured yet (no GPU was at hand): see the ``gpu`` test there.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import BackendError, BackendUnavailableError, DataError
from runtime.manifest import ImageSpec, InputSpec

_INSTALL = (
    "install it (pip install nvidia-dali-cuda120; it is in ninefit's [gpu] extra), "
    "or unset NINEFIT_LOADER to decode with PIL"
)
#: Most rows one pipeline run decodes; larger requests are split.
MAX_BATCH = 256
_AUTO: Any = object()  # device_id not given: the first GPU if DALI sees one, else the CPU


def _dali():
    """``(fn, types, Pipeline)`` from nvidia.dali, or BackendUnavailableError saying how to get it."""
    try:
        from nvidia.dali import fn, types
        from nvidia.dali.pipeline import Pipeline
    except (ImportError, OSError) as exc:
        raise BackendUnavailableError(f"NINEFIT_LOADER=dali, but NVIDIA DALI cannot be imported here ({exc}); {_INSTALL}") from exc
    return fn, types, Pipeline


def _cuda_devices() -> int:
    try:
        from nvidia.dali import backend

        return int(backend.GetCUDADeviceCount())
    except Exception:  # noqa: BLE001 - no driver, no GPU: DALI then runs on the CPU
        return 0


class DaliImageLoader:
    """Decodes image files into normalised float batches, as the PIL path does.

    Args:
        device_id: GPU to decode on, or None for a CPU-only pipeline. By
            default the first GPU DALI sees, else the CPU.
        num_threads: DALI CPU worker threads (default: the CPU count, at most 4).
        max_batch: Most images one pipeline run holds; larger requests are split.
    """

    def __init__(self, device_id: int | None = _AUTO, num_threads: int | None = None, max_batch: int = MAX_BATCH):
        self._fn, self._types, self._pipeline_cls = _dali()
        self.device_id = (0 if _cuda_devices() > 0 else None) if device_id is _AUTO else device_id
        self.num_threads = num_threads or max(1, min(4, os.cpu_count() or 1))
        self.max_batch = max_batch
        self._pipes: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where the images are decoded: ``"gpu"`` or ``"cpu"``."""
        return "cpu" if self.device_id is None else "gpu"

    @property
    def pipelines(self) -> int:
        """DALI pipelines built and kept (one per image shape, size and dtype asked for), reused batch after batch."""
        return len(self._pipes)

    def load(self, paths: Sequence[str | os.PathLike], image: ImageSpec, size: tuple[int, int] | None = None,
             dtype: str = "float32") -> np.ndarray:
        """The images at ``paths``, in order, as one batch in ``image.layout``.

        Raises:
            DataError: a file is missing or cannot be decoded, or the spec
                asks for something DALI cannot give (the message says what).
        """
        h, w = size or image.size
        channels, mean, std = _check(image)
        n = len(paths)
        shape = (n, channels, h, w) if image.layout == "NCHW" else (n, h, w, channels)
        out = np.empty(shape, np.float32)
        key = (h, w, channels, image.layout, mean, std, image.scale)
        with self._lock:  # a pipeline takes one batch at a time: feed_input, then run
            self._load(paths, key, out, size=(h, w))
        return np.ascontiguousarray(out, dtype=dtype)

    def _load(self, paths, key: tuple, out: np.ndarray, size: tuple[int, int]) -> None:
        n = len(paths)
        for a in range(0, n, self.max_batch):
            chunk = [Path(p) for p in paths[a:a + self.max_batch]]
            encoded = [_read(p) for p in chunk]
            pipe = self._pipeline(key, len(chunk))
            try:
                pipe.feed_input("encoded", encoded)
                (batch,) = pipe.run()
            except Exception as exc:
                self._pipes.pop(key, None)  # DALI leaves a pipeline that raised unusable
                names = ", ".join(p.name for p in chunk[:5]) + (" ..." if len(chunk) > 5 else "")
                raise DataError(f"DALI ({self.device}) could not decode or resize {len(chunk)} image(s) ({names}): {exc}") from exc
            if self.device_id is not None:
                batch = batch.as_cpu()
            out[a:a + len(chunk)] = batch.as_array()

    def _pipeline(self, key: tuple, n: int):
        """The pipeline for ``key``, built once and rebuilt only for a larger batch."""
        pipe = self._pipes.get(key)
        if pipe is not None and pipe.max_batch_size >= n:
            return pipe
        fn, types, Pipeline = self._fn, self._types, self._pipeline_cls
        h, w, channels, layout, mean, std, scale = key
        # (x * scale - m) / s == (x - m / scale) / (s / scale): crop_mirror_normalize's form.
        mean, std = tuple(m / scale for m in mean), tuple(s / scale for s in std)
        try:
            # prefetch_queue_depth=1: each run() consumes exactly the one batch fed before it.
            pipe = Pipeline(batch_size=n, num_threads=self.num_threads, device_id=self.device_id, prefetch_queue_depth=1)
            with pipe:
                encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
                img = fn.decoders.image(
                    encoded, device="cpu" if self.device_id is None else "mixed", output_type=types.RGB,
                    adjust_orientation=False,  # PIL's Image.open ignores EXIF orientation too
                )
                if channels == 1:  # RGB, then luma, as PIL's convert("L"); decoding to GRAY skips the RGB clamp
                    img = fn.color_space_conversion(img, image_type=types.RGB, output_type=types.GRAY)
                # Linear with antialiasing is Pillow's BILINEAR: a triangle filter widened when downscaling.
                img = fn.resize(img, resize_x=w, resize_y=h, interp_type=types.INTERP_LINEAR, antialias=True)
                img = fn.crop_mirror_normalize(img, dtype=types.FLOAT, output_layout="CHW" if layout == "NCHW" else "HWC",
                                               mean=list(mean), std=list(std))
                pipe.set_outputs(img)
            pipe.build()
        except Exception as exc:
            where = "the CPU" if self.device_id is None else f"GPU {self.device_id}"
            raise BackendError(f"could not build a DALI image pipeline on {where} for {h}x{w}x{channels} images: {exc}") from exc
        self._pipes[key] = pipe
        return pipe


def _check(image: ImageSpec) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Channels and per-channel mean and std of ``image``, or DataError."""
    c = image.channels
    if c not in (1, 3):
        raise DataError(f"the DALI loader decodes 1 (grayscale) or 3 (RGB) channels; the input asks for {c}")
    if image.layout not in ("NCHW", "NHWC"):
        raise DataError(f"image layout {image.layout!r} is not one of NCHW, NHWC")
    if not image.scale:
        raise DataError("image scale 0 makes every pixel the same; expected the factor applied to 0..255 pixels, e.g. 1/255")
    stats = []
    for name, values in (("mean", image.mean), ("std", image.std)):
        if len(values) not in (1, c):
            raise DataError(f"image {name} has {len(values)} values; expected 1 or {c} (one per channel)")
        stats.append(tuple(float(v) for v in values) * (c if len(values) == 1 else 1))
    return c, stats[0], stats[1]


def _read(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"could not read image {path}: {exc}") from exc
    if data.size == 0:
        raise DataError(f"could not read image {path}: the file is empty")
    return data


_LOADERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_images(owner: object, paths: Sequence[Path], inp: InputSpec, size: tuple[int, int] | None,
                device_id: int | None = _AUTO) -> np.ndarray:
    """The images at ``paths`` as image input ``inp`` (at ``size``, else its own), as the PIL path gives them.

    One loader (and its pipelines) is kept per ``owner`` (the test data, a
    prefetch pipeline) and freed with it (:func:`loader_for`).
    """
    if inp.image is None:
        raise ValueError(f"input {inp.name!r} is not an image input: DALI has nothing to decode for it")
    return loader_for(owner, device_id).load(paths, inp.image, size, inp.dtype)


def loader_for(owner: object, device_id: int | None = _AUTO) -> DaliImageLoader:
    """The loader :func:`load_images` keeps for ``owner`` (made on first use, on ``device_id``), freed with it."""
    loader = _LOADERS.get(owner)
    if loader is None:
        loader = _LOADERS[owner] = DaliImageLoader(device_id)
    return loader


def dali_available() -> bool:
    """Whether NVIDIA DALI imports here."""
    try:
        _dali()
    except BackendUnavailableError:
        return False
    return True


__all__ = ["MAX_BATCH", "DaliImageLoader", "dali_available", "load_images", "loader_for"]
