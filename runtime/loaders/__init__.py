"""Image loaders for image-folder test data, chosen with ``NINEFIT_LOADER``.

``pil`` (the default) decodes and resizes on the CPU with PIL, inside
:meth:`runtime.data.TestData.feed`. ``dali`` does it with NVIDIA DALI
(:mod:`runtime.loaders.dali`): on the GPU where there is one, which relieves a
Kaggle notebook's four CPU cores, else in a CPU-only pipeline. DALI is imported
lazily there, so ``import runtime`` still needs numpy alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from runtime.errors import DataError

#: Environment variable that picks the image loader.
LOADER_ENV = "NINEFIT_LOADER"
#: Accepted values of ``NINEFIT_LOADER``; the first is the default.
LOADERS = ("pil", "dali")


def env_choice(name: str, choices: Sequence[str], default: str, environ: Mapping[str, str] | None = None) -> str:
    """One of ``choices`` (case-insensitive) from an environment variable; unset or empty: ``default``.

    Raises:
        ValueError: naming the variable, its value and the accepted values.
    """
    # Written as runtime.settings writes its helpers, so that it can move there as is.
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"environment variable {name}={raw!r} is not one of: {', '.join(choices)} (unset it for {default})")
    return value


def image_loader(environ: Mapping[str, str] | None = None) -> str:
    """The image loader ``NINEFIT_LOADER`` selects: ``"pil"`` (default) or ``"dali"``.

    Raises:
        DataError: the variable holds anything else (the message names the accepted values).
    """
    try:
        return env_choice(LOADER_ENV, LOADERS, LOADERS[0], environ)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


__all__ = ["LOADERS", "LOADER_ENV", "env_choice", "image_loader"]
