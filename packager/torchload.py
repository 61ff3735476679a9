"""Build the user's trained torch model from its spec entry.

Sources: a ``module:function`` factory plus a ``state_dict`` checkpoint, a
TorchScript file, or a ``torch.export`` program (``.pt2``). Each failure is a
:class:`~runtime.errors.ModelLoadError` saying which file or name was wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import warnings
from pathlib import Path

from packager.spec import ModelSpec
from runtime.errors import ModelLoadError


@contextlib.contextmanager
def _on_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _forget_foreign(module_name: str, root: Path) -> None:
    """Drop a cached ``module_name`` imported from elsewhere when the spec's folder has its own.

    Two specs in one process (a notebook, a test session) often both name
    ``models:...``; without this the second would silently get the first's module.
    """
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    local = root / top
    if cached is None or not (local.with_suffix(".py").is_file() or local.is_dir()):
        return
    origin = Path(getattr(cached, "__file__", "") or "").resolve()
    if root.resolve() not in origin.parents:
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]


def _import_factory(spec: ModelSpec, root: Path):
    module_name, _, func_name = spec.factory.partition(":")
    _forget_foreign(module_name, root)
    with _on_path(root):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ModelLoadError(
                f"model {spec.name!r}: factory module {module_name!r} does not import ({type(exc).__name__}: {exc}). "
                f"It is looked up next to the spec ({root}) and on the Python path."
            ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelLoadError(f"model {spec.name!r}: module {module_name!r} has no callable {func_name!r} (factory = {spec.factory!r})")
    return func


def _torch(spec: ModelSpec):
    """torch, imported here so that an ONNX-only spec packages without it."""
    try:
        import torch
    except ImportError as exc:
        raise ModelLoadError(
            f"model {spec.name!r} ({spec.source}) needs torch, and torch is not installed; install the build "
            f"you trained with ({type(exc).__name__}: {exc})"
        ) from exc
    return torch


def _read_checkpoint(spec: ModelSpec):
    torch = _torch(spec)
    path = spec.path
    if path is None or not path.is_file():
        raise ModelLoadError(f"model {spec.name!r}: checkpoint {path} not found (expected a state_dict saved with torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"model {spec.name!r}: checkpoint {path} is unreadable as a torch state_dict ({type(exc).__name__}: {str(exc)[:200]})") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelLoadError(f"model {spec.name!r}: checkpoint {path} holds a {type(state).__name__}, expected a state_dict (a dict of tensors)")
    return state


def load_strict(model, state: dict, spec: ModelSpec) -> None:
    """``model.load_state_dict(state, strict=True)``, its refusal said as the keys missing from the checkpoint,
    the keys it has that the model does not, and those of another shape (each list cut at 8)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} ({tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model)"
              for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        what = f"timm {spec.factory!r}" if spec.source == "timm" else f"the factory {spec.factory!r}"
        parts = [f"{label} {len(keys)}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
                 if keys]
        raise ModelLoadError(f"model {spec.name!r}: checkpoint {spec.path} does not match the model {what} builds "
                             f"({'; '.join(parts)}). Is it the checkpoint of this architecture (and its kwargs)?")
    model.load_state_dict(state, strict=True)


def load_torch_model(spec: ModelSpec, root: Path):
    """The model in eval mode on CPU, or None for an ``onnx`` source (nothing to compare against).

    Raises:
        ModelLoadError: torch is not installed (an ``onnx`` source does not need
            it), or the model cannot be built or loaded.
    """
    if spec.source == "onnx":
        return None
    torch = _torch(spec)
    if spec.source in ("torchscript", "exported_program") and (spec.path is None or not spec.path.is_file()):
        raise ModelLoadError(f"model {spec.name!r}: {spec.source} file {spec.path} not found")
    try:
        if spec.source == "torchscript":
            with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; the user's file is still valid
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(spec.path), map_location="cpu")
        elif spec.source == "exported_program":
            model = torch.export.load(str(spec.path)).module()
        elif spec.source == "transformers":
            from packager.sources.hf import load_hf

            model = load_hf(spec)
        elif spec.source == "timm":
            from packager.sources.timm_models import load_timm

            model = load_timm(spec)
            if spec.path is not None:
                load_strict(model, _read_checkpoint(spec), spec)
        else:
            model = _import_factory(spec, root)(**spec.factory_kwargs)
            if spec.path is not None:
                load_strict(model, _read_checkpoint(spec), spec)
    except ModelLoadError:
        raise
    except RuntimeError as exc:
        raise ModelLoadError(f"model {spec.name!r}: could not load {spec.path}: {str(exc)[:600]}") from exc
    except Exception as exc:
        raise ModelLoadError(f"model {spec.name!r}: building the model failed ({type(exc).__name__}: {str(exc)[:400]})") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"model {spec.name!r}: {spec.source} gave a {type(model).__name__}, expected a torch.nn.Module")
    if spec.source == "exported_program":
        return model  # an ExportedProgram's module is already an inference graph; it refuses .eval()
    return model.eval()


__all__ = ["load_strict", "load_torch_model"]
