"""The offline half of the packager: what a notebook with the internet off needs.

* :mod:`.image` reads the facts of Kaggle's image (its Python, glibc, machine
  shapes...) from ``packager/data/kaggle_image.txt``, the one source of truth;
* :mod:`.wheelmeta` reads wheels and Kaggle's image list statically, and
  :mod:`.wheelhouse` fills and proves the bundle's ``wheels/`` folder with pip
  (with :mod:`.standins` for the image's packages, and a real install into an
  interpreter of the image's Python found by :mod:`.interpreter`);
* :mod:`.dataset` makes the bundle an uploadable Kaggle dataset
  (``dataset-metadata.json``, Kaggle's size and file-count limits);
* :mod:`.steps` runs those two as steps of packaging
  (:attr:`packager.build.PackageOptions.steps`) on the staged bundle; its names
  are re-exported here;
* :mod:`.notebook` writes the submission notebook, and :mod:`.simulate` runs
  it the way Kaggle reruns it (offline, read-only inputs, a time limit) and
  judges the outcome, in the network-isolated executor of :mod:`.sandbox`.

:func:`wheelhouse_step` and :func:`dataset_step` are the steps,
:func:`add_dataset_metadata` adds the dataset file to a finished bundle, and
:func:`offline_summary` reads both outcomes back for the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module it lives in: imported when first used (``import packager.offline.x``
#: must stay cheap, e.g. for the CLI's help).
_EXPORTS = {
    "DEFAULT_OWNER_HINT": "packager.offline.steps",
    "DEFAULT_REQUIREMENTS": "packager.offline.steps",
    "WHEELHOUSE_JSON": "packager.offline.steps",
    "Step": "packager.offline.steps",
    "WHEELS_DIR": "packager.offline.steps",
    "add_dataset_metadata": "packager.offline.steps",
    "dataset_step": "packager.offline.steps",
    "default_requirements": "packager.offline.steps",
    "install_command": "packager.offline.steps",
    "offline_summary": "packager.offline.steps",
    "wheelhouse_step": "packager.offline.steps",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
