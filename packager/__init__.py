"""The training-machine half of ninefit: spec -> verified bundle -> notebook, rehearsed offline.

:func:`load_spec` reads the ensemble spec (TOML, see docs/spec.md);
:func:`package` exports each model to ONNX, verifies it against the torch
model and writes the checksummed bundle folder, running
:attr:`PackageOptions.steps` on it first (:func:`wheelhouse_step` for the
offline wheels, :func:`dataset_step` for ``dataset-metadata.json``,
:func:`packager.estimate.profile_step` for the measured profile): steps of packaging,
not the user's features and postprocess hooks.
:func:`write_notebook` writes the Kaggle submission notebook for a bundle, and
:func:`packager.offline.simulate.simulate` runs it the way Kaggle reruns it: offline,
read-only inputs, a time limit (it stays in its module: exported here, its name
would hide the module). Run-time estimates live in :mod:`packager.estimate`.

The packager may import :mod:`runtime` (it verifies and profiles with the very
backends that run on Kaggle); the runtime never imports the packager.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module it lives in, imported on first use (so that ``ninefit --help`` and
#: ``ninefit run`` do not pay for onnx, torch or nbformat).
_EXPORTS = {
    "ModelSpec": "packager.spec",
    "PackageOptions": "packager.build",
    "PackageResult": "packager.build",
    "Spec": "packager.spec",
    "VariantSpec": "packager.spec",
    "add_dataset_metadata": "packager.offline",
    "build_notebook": "packager.offline.notebook",
    "dataset_step": "packager.offline",
    "load_spec": "packager.spec",
    "package": "packager.build",
    "wheelhouse_step": "packager.offline",
    "write_notebook": "packager.offline.notebook",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
