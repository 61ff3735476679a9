"""The training-machine half of ninefit: spec -> verified bundle -> notebook, rehearsed offline.

:func:`load_spec` reads the ensemble spec (TOML, see docs/spec.md);
:func:`package` exports each model to ONNX, verifies it against the torch
model and writes the checksummed bundle folder, running
:attr:`PackageOptions.hooks` on it first (:func:`wheelhouse_hook` for the
offline wheels, :func:`dataset_hook` for ``dataset-metadata.json``,
:func:`packager.estimate.profile_hook` for the measured profile).
:func:`write_notebook` writes the Kaggle submission notebook for a bundle, and
:func:`packager.offline.simulate.simulate` runs it the way Kaggle reruns it: offline,
read-only inputs, a time limit (it stays in its module: exported here, its name
would hide the module). Run-time estimates live in :mod:`packager.estimate`.

The packager may import :mod:`runtime` (it verifies and profiles with the very
backends that run on Kaggle); the runtime never imports the packager.
"""

from packager.build import PackageOptions, PackageResult, package
from packager.offline import add_dataset_metadata, dataset_hook, wheelhouse_hook
from packager.offline.notebook import build_notebook, write_notebook
from packager.spec import ModelSpec, Spec, VariantSpec, load_spec

__all__ = [
    "ModelSpec",
    "PackageOptions",
    "PackageResult",
    "Spec",
    "VariantSpec",
    "add_dataset_metadata",
    "build_notebook",
    "dataset_hook",
    "load_spec",
    "package",
    "wheelhouse_hook",
    "write_notebook",
]
