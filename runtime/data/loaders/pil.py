"""Decode image files with PIL: each file opened and decoded once, resized to every size asked for.

The decode (:func:`decode`) gives uint8 pixels, one array per ``(mode, height,
width)``; :func:`normalise` turns a batch of them into the model's float
input (scale, mean, std, layout). The two halves are apart so that several
members reading the same images at one size, or at several, share one decode
(:mod:`runtime.data.pipeline`). PIL releases the GIL while it decodes and
resizes, so threads decode in parallel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from runtime.errors import DataError
from runtime.manifest import ImageSpec

#: A decoded form: (PIL mode "L" or "RGB", height, width).
Form = tuple[str, int, int]


def form(image: ImageSpec, size: tuple[int, int] | None = None) -> Form:
    """The decoded form an image input needs: its mode and its (or the variant's) size."""
    h, w = size or image.size
    return ("L" if image.channels == 1 else "RGB", int(h), int(w))


def decode(path: Path, forms: Iterable[Form], where: str = "", *, data: bytes | None = None,
           times: dict[str, float] | None = None) -> dict[Form, np.ndarray]:
    """Open ``path`` once and give its pixels in every form, uint8, (h, w, channels).

    ``data``: the file's bytes, when already read. ``times`` gets the seconds
    spent decoding (``"decode"``, conversions included) and resizing (``"resize"``).

    Raises:
        DataError: the file is missing or cannot be decoded; the message names
            the file and ``where`` (e.g. the row and its id).
    """
    import io
    import time

    from PIL import Image

    out: dict[Form, np.ndarray] = {}
    spent = {"decode": 0.0, "resize": 0.0}
    try:
        t0 = time.perf_counter()
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            im.load()
            spent["decode"] += time.perf_counter() - t0
            converted: dict[str, Image.Image] = {}
            for mode, h, w in forms:
                t1 = time.perf_counter()
                if mode not in converted:  # (PIL's convert to the same mode, and resize to the same size, copy)
                    converted[mode] = im if im.mode == mode else im.convert(mode)
                t2 = time.perf_counter()
                pic = converted[mode]
                arr = np.asarray(pic if pic.size == (w, h) else pic.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
                out[(mode, h, w)] = arr.reshape(h, w, 1 if mode == "L" else 3)
                spent["resize"] += time.perf_counter() - t2
                spent["decode"] += t2 - t1
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken PNG chunks
        raise DataError(f"could not read image {path}{f' ({where})' if where else ''}: {exc}") from exc
    if times is not None:
        for k, v in spent.items():
            times[k] = times.get(k, 0.0) + v
    return out


def _table(image: ImageSpec, dtype: str) -> np.ndarray:
    """(256, channels) lookup table: every uint8 level scaled and normalised per channel, in ``dtype``.

    The same float32 operations, in the same order, as on a whole batch; so
    the values are bit for bit those of ``(x * scale - mean) / std``.
    """
    key = (image.scale, tuple(image.mean), tuple(image.std), image.channels, dtype)
    table = _TABLES.get(key)
    if table is None:
        levels = np.arange(256, dtype=np.float32)[:, None]
        table = (levels * image.scale - np.asarray(image.mean, np.float32)) / np.asarray(image.std, np.float32)
        table = np.ascontiguousarray(np.broadcast_to(table, (256, image.channels)).T, dtype=dtype)  # (c, 256)
        _TABLES[key] = table
    return table


_TABLES: dict[tuple, np.ndarray] = {}


def normalise(pixels: np.ndarray, image: ImageSpec, dtype: str) -> np.ndarray:
    """A batch of uint8 pixels (n, h, w, c) as the model input: scaled, normalised, in ``image.layout``.

    A lookup per channel (256 values) instead of float arithmetic on every pixel: several times faster.
    """
    table = _table(image, dtype)
    n, h, w, c = pixels.shape
    if image.layout == "NCHW":
        out = np.empty((n, c, h, w), dtype=dtype)
        for k in range(c):
            np.take(table[k], pixels[..., k], out=out[:, k])
    else:
        out = np.empty((n, h, w, c), dtype=dtype)
        for k in range(c):
            out[..., k] = np.take(table[k], pixels[..., k])
    return out


__all__ = ["Form", "decode", "form", "normalise"]
