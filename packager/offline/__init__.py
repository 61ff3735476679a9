"""The offline half of the packager: what a notebook with the internet off needs.

* :mod:`.image` reads the facts of Kaggle's image (its Python, glibc, machine
  shapes...) from ``packager/data/kaggle_image.txt``, the one source of truth;
* :mod:`.wheelmeta` reads wheels and Kaggle's image list statically, and
  :mod:`.wheelhouse` fills and proves the bundle's ``wheels/`` folder with pip
  (with :mod:`.standins` for the image's packages, and a real install into an
  interpreter of the image's Python found by :mod:`.interpreter`);
* :mod:`.dataset` makes the bundle an uploadable Kaggle dataset
  (``dataset-metadata.json``, Kaggle's size and file-count limits);
* :mod:`.hooks` runs those two as :attr:`packager.build.PackageOptions.hooks`
  on the staged bundle; its names are re-exported here;
* :mod:`.notebook` writes the submission notebook, and :mod:`.simulate` runs
  it the way Kaggle reruns it (offline, read-only inputs, a time limit) and
  judges the outcome, in the network-isolated executor of :mod:`.sandbox`.

:func:`wheelhouse_hook` and :func:`dataset_hook` are the hooks,
:func:`add_dataset_metadata` adds the dataset file to a finished bundle, and
:func:`offline_summary` reads both outcomes back for the CLI.
"""

from packager.offline.hooks import (
    DEFAULT_OWNER_HINT,
    DEFAULT_REQUIREMENTS,
    WHEELHOUSE_JSON,
    WHEELS_DIR,
    Hook,
    add_dataset_metadata,
    dataset_hook,
    default_requirements,
    install_command,
    offline_summary,
    wheelhouse_hook,
)

__all__ = [
    "DEFAULT_OWNER_HINT",
    "DEFAULT_REQUIREMENTS",
    "WHEELHOUSE_JSON",
    "WHEELS_DIR",
    "Hook",
    "add_dataset_metadata",
    "dataset_hook",
    "default_requirements",
    "install_command",
    "offline_summary",
    "wheelhouse_hook",
]
