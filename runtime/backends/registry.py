"""Registry of inference backends.

A backend registers only when its library is importable (checked without
importing it, so ``import runtime`` stays numpy-only); duplicate names raise.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from runtime.backends.base import BackendOptions, Runner
from runtime.errors import BackendUnavailableError
from runtime.settings import env_modules

#: Comma-separated modules imported before a run; each calls :func:`register`.
PLUGINS_ENV = "NINEFIT_PLUGINS"

#: Loader signature: (onnx path, runner name, options) -> Runner (not yet active).
Loader = Callable[[Path, str, BackendOptions], Runner]


@dataclass(frozen=True)
class Backend:
    name: str
    load: Loader
    requires: tuple[str, ...]
    description: str


_REGISTRY: dict[str, Backend] = {}
_UNAVAILABLE: dict[str, str] = {}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def register(name: str, load: Loader, *, requires: tuple[str, ...], description: str) -> bool:
    """Register ``name`` if every module in ``requires`` is importable; return whether it was."""
    if name in _REGISTRY or name in _UNAVAILABLE:
        raise ValueError(f"backend {name!r} is already registered")
    missing = [m for m in requires if not _importable(m)]
    if missing:
        _UNAVAILABLE[name] = f"needs {', '.join(missing)}, which is not installed"
        return False
    _REGISTRY[name] = Backend(name=name, load=load, requires=requires, description=description)
    return True


def available() -> list[str]:
    """Names of the backends usable here, in registration (preference) order."""
    return list(_REGISTRY)


def unavailable() -> dict[str, str]:
    """Backends known but not usable here, with the reason."""
    return dict(_UNAVAILABLE)


def get(name: str) -> Backend:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _UNAVAILABLE:
        raise BackendUnavailableError(f"backend {name!r} is not available here: {_UNAVAILABLE[name]}; available: {', '.join(available()) or 'none'}")
    raise BackendUnavailableError(f"no backend {name!r}; known backends: {', '.join([*_REGISTRY, *_UNAVAILABLE])}")


def load_plugins(environ: Mapping[str, str] | None = None) -> list[str]:
    """Import the modules listed in ``NINEFIT_PLUGINS`` (custom backends); returns their names.

    Raises:
        UsageError: a name that is not a module name.
        BackendUnavailableError: a module that cannot be imported or raised while importing.
    """
    names = env_modules(PLUGINS_ENV, environ)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"{PLUGINS_ENV}: cannot import plugin module {name!r} ({exc}); it must be importable, e.g. on PYTHONPATH"
            ) from exc
        except Exception as exc:
            raise BackendUnavailableError(
                f"{PLUGINS_ENV}: plugin module {name!r} raised while importing: {type(exc).__name__}: {exc}"
            ) from exc
    return names


__all__ = ["PLUGINS_ENV", "Backend", "Loader", "available", "get", "load_plugins", "register", "unavailable"]
