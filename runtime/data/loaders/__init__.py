"""Image loaders for image-folder test data, chosen with ``NINEFIT_LOADER``.

``pil`` decodes and resizes on the CPU with PIL (:mod:`runtime.data.loaders.pil`),
in the prefetch workers of :mod:`runtime.data.pipeline`, each file once for every
member and size. ``dali`` does it with NVIDIA DALI (:mod:`runtime.data.loaders.dali`):
on the GPU where there is one (its ``mixed`` decoder), which relieves a
Kaggle notebook's four CPU cores, else in a CPU-only pipeline. Unset, the
run picks (:func:`resolve_loader`): DALI for a GPU target on a machine with a
GPU and DALI installed, PIL otherwise (the DALI GPU path is unverified on a
GPU). DALI is imported lazily, so ``import runtime`` still needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.settings import env_choice

#: Environment variable that picks the image loader.
LOADER_ENV = "NINEFIT_LOADER"
#: Accepted values of ``NINEFIT_LOADER``; the first is the default.
LOADERS = ("pil", "dali")


def image_loader(environ: Mapping[str, str] | None = None) -> str:
    """The image loader ``NINEFIT_LOADER`` selects: ``"pil"`` (default) or ``"dali"``.

    Raises:
        UsageError: the variable holds anything else (the message names the accepted values).
    """
    return env_choice(LOADER_ENV, LOADERS, LOADERS[0], environ)


def resolve_loader(gpu_target: bool, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(loader, why)``: the one ``NINEFIT_LOADER`` names, else DALI on a GPU for a GPU target, else PIL."""
    import os

    env = os.environ if environ is None else environ
    choice = image_loader(environ)
    if env.get(LOADER_ENV, "").strip():
        return choice, f"{LOADER_ENV}={choice}"
    if not gpu_target:
        return "pil", "CPU target"
    from runtime.data.loaders.dali import dali_available
    from runtime.gpu import gpu_present

    present, how = gpu_present()
    if not present:
        return "pil", f"no GPU here ({how})"
    if not dali_available():
        return "pil", "GPU target, but NVIDIA DALI is not installed (pip install nvidia-dali-cuda120)"
    return "dali", "GPU target with a GPU and DALI"


__all__ = ["LOADERS", "LOADER_ENV", "image_loader", "resolve_loader"]
