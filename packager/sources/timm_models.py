"""A timm architecture with its trained checkpoint made an image member, offline.

``timm = "architecture"`` (with ``timm_kwargs``, e.g. ``num_classes``): the model is built by
``timm.create_model(name, pretrained=False, **timm_kwargs)`` (nothing downloaded; the Hugging Face offline
flags are set besides), the spec's checkpoint loaded strictly into it (missing, unexpected and reshaped keys
named: :func:`packager.torchload.load_strict`). Without ``[[model.input]]`` the member reads one image input,
``pixels``, sized, scaled and normalised as the architecture's pretrained config says (``input_size``,
``mean``, ``std``), which is how timm's own transforms feed it.
"""

from __future__ import annotations

import difflib

from packager.sources.hf import offline
from packager.spec.types import ModelSpec
from runtime.errors import ModelLoadError, SpecError
from runtime.manifest import ImageSpec, InputSpec


def _timm(name: str):
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(
            f"model {name!r}: a timm model needs timm (pip install \"ninefit[timm]\") and a torchvision that matches "
            f"your torch ({type(exc).__name__}: {str(exc)[:200]})") from exc
    except RuntimeError as exc:  # torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ModelLoadError(
            f"model {name!r}: timm does not import here: its torchvision does not match this torch ({str(exc)[:200]}); "
            "install the torch and torchvision pair you trained with") from exc
    return timm


def create(m: ModelSpec):
    """The architecture, built without pretrained weights (SpecError for a name timm does not know)."""
    timm = _timm(m.name)
    if not timm.is_model(m.factory):
        known = timm.list_models()
        close = difflib.get_close_matches(m.factory, known, n=4, cutoff=0.6)
        raise SpecError(f"model {m.name!r}: timm {timm.__version__} has no architecture {m.factory!r}"
                        + (f"; did you mean {', '.join(close)}?" if close else "")
                        + " (timm.list_models() lists them)")
    with offline():
        try:
            return timm.create_model(m.factory, pretrained=False, **m.timm_kwargs)
        except TypeError as exc:
            raise SpecError(f"model {m.name!r}: timm {m.factory!r} does not take timm_kwargs {m.timm_kwargs} "
                            f"({exc})") from exc


def default_inputs(m: ModelSpec) -> tuple[InputSpec, ...]:
    """One image input as the architecture's pretrained config describes it."""
    cfg = dict(getattr(create(m), "pretrained_cfg", None) or {})
    channels, height, width = (tuple(cfg.get("input_size") or (3, 224, 224)) + (224, 224))[:3]
    mean = tuple(float(v) for v in cfg.get("mean") or (0.485, 0.456, 0.406))
    std = tuple(float(v) for v in cfg.get("std") or (0.229, 0.224, 0.225))
    if channels not in (1, 3):
        raise SpecError(f"model {m.name!r}: timm {m.factory!r} takes {channels}-channel images; ninefit decodes 1 or "
                        "3 (give [[model.input]] with its image table)")
    image = ImageSpec(size=(int(height), int(width)), mean=mean, std=std, scale=1.0 / 255.0, channels=int(channels))
    return (InputSpec(name="pixels", dtype="float32", shape=("batch", int(channels), int(height), int(width)),
                      image=image),)


def load_timm(m: ModelSpec):
    """The architecture in eval mode (its checkpoint is loaded by the caller, strictly)."""
    return create(m).eval()


__all__ = ["create", "default_inputs", "load_timm"]
