"""Build the user's trained torch model from its spec entry.

Sources: a ``module:function`` factory plus a ``state_dict`` checkpoint, a
TorchScript file, or a ``torch.export`` program (``.pt2``). Each failure is a
:class:`~runtime.errors.ModelLoadError` saying which file or name was wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
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


def _import_factory(spec: ModelSpec, root: Path):
    module_name, _, func_name = spec.factory.partition(":")
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


def _read_checkpoint(spec: ModelSpec):
    import torch

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


def load_torch_model(spec: ModelSpec, root: Path):
    """The model in eval mode on CPU, or None for an ``onnx`` source (nothing to compare against)."""
    import torch

    if spec.source == "onnx":
        return None
    if spec.source != "factory" and (spec.path is None or not spec.path.is_file()):
        raise ModelLoadError(f"model {spec.name!r}: {spec.source} file {spec.path} not found")
    try:
        if spec.source == "torchscript":
            model = torch.jit.load(str(spec.path), map_location="cpu")
        elif spec.source == "exported_program":
            model = torch.export.load(str(spec.path)).module()
        else:
            model = _import_factory(spec, root)(**spec.factory_kwargs)
            if spec.path is not None:
                result = model.load_state_dict(_read_checkpoint(spec), strict=True)
                del result
    except ModelLoadError:
        raise
    except RuntimeError as exc:
        raise ModelLoadError(f"model {spec.name!r}: could not load {spec.path}: {str(exc)[:600]}") from exc
    except Exception as exc:
        raise ModelLoadError(f"model {spec.name!r}: building the model failed ({type(exc).__name__}: {str(exc)[:400]})") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"model {spec.name!r}: {spec.source} gave a {type(model).__name__}, expected a torch.nn.Module")
    return model.eval()


__all__ = ["load_torch_model"]
