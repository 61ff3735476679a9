"""Image loaders for image-folder test data, chosen with ``NINEFIT_LOADER``.

``pil`` (the default) decodes and resizes on the CPU with PIL, inside
:meth:`runtime.data.TestData.feed`. ``dali`` does it with NVIDIA DALI
(:mod:`runtime.loaders.dali`): on the GPU where there is one, which relieves a
Kaggle notebook's four CPU cores, else in a CPU-only pipeline. DALI is imported
lazily there, so ``import runtime`` still needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.errors import DataError
from runtime.settings import env_choice

#: Environment variable that picks the image loader.
LOADER_ENV = "NINEFIT_LOADER"
#: Accepted values of ``NINEFIT_LOADER``; the first is the default.
LOADERS = ("pil", "dali")


def image_loader(environ: Mapping[str, str] | None = None) -> str:
    """The image loader ``NINEFIT_LOADER`` selects: ``"pil"`` (default) or ``"dali"``.

    Raises:
        DataError: the variable holds anything else (the message names the accepted values).
    """
    try:
        return env_choice(LOADER_ENV, LOADERS, LOADERS[0], environ)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


__all__ = ["LOADERS", "LOADER_ENV", "image_loader"]
