"""The cells every notebook ninefit writes shares: parameters, the offline install, the runtime check.

Both notebooks - the file run (:mod:`.notebook`) and the evaluation API's
(:mod:`.serve_notebook`) - start the same way:

* a *parameters* cell (tagged ``parameters``, papermill style) that records
  ``NINEFIT_START`` first - the runtime's deadline clock starts there - and
  reads each parameter from its ``NINEFIT_*`` environment variable, falling
  back to the default written in the cell; this is how ``ninefit simulate``
  points the very same notebook at a local Kaggle-shaped tree;
* an *install* cell that finds the bundle and the competition data (under
  ``/kaggle/input`` if the given folders are wrong), then installs the
  bundle's ``wheels/`` with ``pip install --no-index --find-links``: each
  wheel whose distribution the image lacks at that version
  (``importlib.metadata``, never "does a module of that name import"), first
  removing an installed distribution of another name that is the same module
  (the CPU ``onnxruntime`` under ``onnxruntime-gpu``);
* a check that ``import runtime`` found the runtime vendored in the bundle.

The code those cells run is written here as real functions and put into the
cells with :func:`inspect.getsource`, so it is linted, imported and
unit-tested like any other code; it uses the standard library only, since it
runs before the runtime is importable.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap
from collections.abc import Mapping  # (named in a cell function's annotation as a string: the cells do not import it)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell

from packager.offline.dataset import METADATA_FILENAME
from runtime.errors import PackagingError
from runtime.manifest import Manifest

#: Tag of the parameters cell (papermill's convention).
PARAMETERS_TAG = "parameters"
COMPETITION_PLACEHOLDER = "<competition>"
KAGGLE_INPUT = "/kaggle/input"
KAGGLE_WORKING = "/kaggle/working"


@dataclass(frozen=True)
class Parameter:
    """One editable notebook parameter and the environment variable overriding it."""

    name: str
    env: str
    default: str
    help: str

    def line(self) -> str:
        return f"{self.name} = os.environ.get({self.env!r}, {self.default!r})  # {self.help}"


# -- code that runs inside the notebook (standard library only) ------------------------------------


def _find_input(path: str, marker: str, root: str = "/kaggle/input") -> str:
    """``path`` if ``path/marker`` exists (a file or a folder, e.g. the bundle's manifest.json, the competition's
    test file or its ``kaggle_evaluation`` package), else the one folder under ``root`` holding ``marker``."""
    import glob
    import os

    if os.path.exists(os.path.join(path, marker)):
        return path
    found = sorted({p[:-len(marker) - 1] for depth in ("*", "*/*", "*/*/*")
                    for p in glob.glob(os.path.join(root, depth, marker))})
    if len(found) == 1:
        print(f"{path} has no {marker}; using {found[0]}")
        return found[0]
    listing = ", ".join(sorted(os.listdir(root))) if os.path.isdir(root) else f"{root} does not exist"
    raise FileNotFoundError(
        f"{path} has no {marker}, and {len(found)} folders under {root} have one ({', '.join(found) or 'none'}). "
        f"Attach the dataset (or the competition's data) and set the parameter (or its NINEFIT_* variable). "
        f"{root} holds: {listing}")


def _wheel_modules(wheel: str) -> list[str]:
    """Top-level modules a wheel installs: ``top_level.txt``, else its root entries."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        listed = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/top_level.txt")]
        if listed:
            return [m.strip() for m in z.read(listed[0]).decode().splitlines() if m.strip()]
    modules = set()
    for name in names:
        head, _, rest = name.partition("/")
        if head.endswith((".dist-info", ".data")):
            continue
        if rest:
            modules.add(head)
        elif head.endswith((".py", ".so", ".pyd")):
            modules.add(head.split(".")[0])
    return sorted(modules)


def _wheel_dist(wheel: str) -> tuple[str, str]:
    """(normalised distribution name, version) from a wheel's file name (PEP 427, PEP 503)."""
    import os
    import re

    name, version = os.path.basename(wheel)[:-len(".whl")].split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _module_files(module: str, paths) -> list[str]:
    """The paths among ``paths`` that make ``module`` a regular top-level module (not a namespace part)."""
    return [p for p in map(str, paths) if p == f"{module}/__init__.py" or (
        "/" not in p and p.split(".")[0] == module and p.endswith((".py", ".so", ".pyd")))]


def _regular_modules(wheel: str, modules: list[str]) -> list[str]:
    """Those of ``modules`` that the wheel holds as regular modules (a file of its own, not a namespace)."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    return [m for m in modules if _module_files(m, names)]


def _conflicts(wheel: str, modules: list[str], owners: "Mapping[str, list[str]]") -> dict[str, str]:
    """Installed distributions of another name that install one of ``modules`` too: {name: module}.

    ``onnxruntime`` and ``onnxruntime-gpu`` are the case in point: both are the
    package ``onnxruntime``, so installing one over the other mixes their files.
    Namespace packages (``google``...) are shared on purpose and do not count.
    ``owners`` is ``importlib.metadata.packages_distributions()``, read once.
    """
    import importlib.metadata
    import re

    name, _ = _wheel_dist(wheel)
    # Folders some projects ship at the top level by mistake: sharing one makes no two distributions the same.
    stray = {"tests", "test", "testing", "docs", "examples", "benchmarks", "scripts"}
    regular = [m for m in _regular_modules(wheel, modules) if m not in stray]
    found = {}
    for module in regular:
        for other in owners.get(module, []):
            if re.sub(r"[-_.]+", "-", other).lower() == name:
                continue
            files = importlib.metadata.distribution(other).files
            if files is None or _module_files(module, files):  # no RECORD: assume the worst
                found[other] = module
    return found


def _imported_from(module: str, dist: str) -> str | None:
    """Why ``import module`` does not load the copy of distribution ``dist``; None when it does."""
    import importlib.metadata
    import importlib.util
    import os
    import sys

    if module in sys.modules:
        return (f"{module} was imported before the install, so this kernel keeps the old one: "
                "restart the kernel and run all cells")
    try:
        spec = importlib.util.find_spec(module)
        files = importlib.metadata.distribution(dist).files or []
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError) as exc:
        return f"{module} cannot be found after installing {dist} ({exc})"
    origin = getattr(spec, "origin", None)
    theirs = {os.path.realpath(str(importlib.metadata.distribution(dist).locate_file(f))) for f in _module_files(module, files)}
    if origin and os.path.realpath(origin) in theirs:
        return None
    return f"`import {module}` loads {origin}, which is not the copy {dist} installed"


def _install_wheels(bundle_dir: str) -> tuple[list[str], list[str]]:
    """Install the bundle's wheels that the environment lacks; returns (installed, skipped) file names.

    A wheel is skipped only when its distribution is installed at the same
    version (``importlib.metadata``), never because a module of that name
    imports: the CPU ``onnxruntime`` of an image must not stand in for
    ``onnxruntime-gpu``. An installed distribution of another name that is
    the same module (the CPU ``onnxruntime`` under ``onnxruntime-gpu``) is
    uninstalled first; where it cannot be (outside this environment, or
    read-only), the new one is installed ahead of it on ``sys.path``. Either
    way each installed module is checked to load from its new distribution,
    and a loud warning says when it does not.
    """
    import glob
    import importlib
    import importlib.metadata
    import os
    import subprocess
    import sys

    wheels = sorted(glob.glob(os.path.join(bundle_dir, "wheels", "*.whl")))
    if not wheels:
        print("no wheels/ in the bundle: nothing to install")
        return [], []
    install, skipped, remove = [], [], {}
    owners = importlib.metadata.packages_distributions()  # module -> distributions: one scan of the image
    # Set by `ninefit simulate` only: wheels built for Kaggle's Python that the rehearsal's Python cannot install.
    foreign = set(filter(None, os.environ.get("NINEFIT_REHEARSAL_FOREIGN_WHEELS", "").split(os.pathsep)))
    for wheel in wheels:
        if os.path.basename(wheel) in foreign:
            skipped.append(wheel)
            print(f"rehearsal: not installed on this Python (built for Kaggle's): {os.path.basename(wheel)}")
            continue
        name, version = _wheel_dist(wheel)
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        conflicts = _conflicts(wheel, _wheel_modules(wheel), owners)
        if have is not None and have.lower() == version.lower() and not conflicts:
            skipped.append(wheel)
            print(f"skipped (the image has {name} {have}): {os.path.basename(wheel)}")
            continue
        install.append(wheel)
        for other, module in conflicts.items():
            remove[other] = (f"{other} {importlib.metadata.version(other)} is the module {module} too: "
                             f"removed before installing {name} {version}")
            if have is not None:  # the same files are about to be deleted: reinstall ours afterwards
                remove[name] = f"{name} {have} shares its files with {other}: reinstalled"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # no lookup of pip's own version offline
    if remove:
        cmd = [sys.executable, "-m", "pip", "uninstall", "--yes", *remove]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        importlib.invalidate_caches()
        for other, why in remove.items():
            try:
                where = importlib.metadata.distribution(other).locate_file("")
            except importlib.metadata.PackageNotFoundError:
                print(why)
                continue
            said = " ".join(line.strip() for line in done.stdout.splitlines() if other in line)[:300]
            print(f"could not remove {other} from {where} ({said or f'pip exit {done.returncode}'}); "
                  "installing ahead of it on sys.path instead")
    if install:
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
               os.path.join(bundle_dir, "wheels"), "--no-warn-script-location", *install]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if done.returncode != 0:
            print(done.stdout)
            raise RuntimeError(f"offline install of {len(install)} wheel(s) failed (pip exit {done.returncode}); "
                               "pip's output is above. The wheelhouse lacks a dependency: rebuild it for Kaggle's Python.")
        importlib.invalidate_caches()
        for wheel in install:
            print(f"installed: {os.path.basename(wheel)}")
            name, _ = _wheel_dist(wheel)
            for module in _regular_modules(wheel, _wheel_modules(wheel)):
                problem = _imported_from(module, name)
                if problem:
                    print(f"WARNING: {problem}. The run would use that {module} (for onnxruntime: perhaps the CPU "
                          "build, many times slower than the GPU one).", file=sys.stderr)
    return [os.path.basename(w) for w in install], [os.path.basename(w) for w in skipped]


def _check_runtime(runtime, bundle_dir: str) -> None:
    """Fail unless ``runtime`` is the package vendored in the bundle (not another one on ``sys.path``)."""
    import os

    where = os.path.realpath(os.path.dirname(runtime.__file__))
    if os.path.commonpath([where, os.path.realpath(bundle_dir)]) != os.path.realpath(bundle_dir):
        raise ImportError(f"`import runtime` found {where}, not the runtime vendored in {bundle_dir}; "
                          "restart the kernel so that the bundle's copy is imported")
    print(f"ninefit runtime {runtime.__version__} from {where}")


# -- building the cells --------------------------------------------------------------------------


def source_of(*functions: Callable[..., Any]) -> str:
    return "\n\n\n".join(textwrap.dedent(inspect.getsource(f)).rstrip() for f in functions)


def code_cell(cell_id: str, source: str, tags: tuple[str, ...] = ()) -> NotebookNode:
    cell = new_code_cell(source=source.strip() + "\n", metadata={"tags": list(tags)} if tags else {})
    cell.id = cell_id  # stable ids: the same bundle gives the same notebook
    return cell


def markdown_cell(cell_id: str, source: str) -> NotebookNode:
    cell = new_markdown_cell(source=source.strip() + "\n")
    cell.id = cell_id
    return cell


def bundle_slug(bundle_dir: str | os.PathLike) -> str:
    """The Kaggle dataset slug of a bundle: ``dataset-metadata.json``'s ``id``, else the folder name.

    Raises:
        PackagingError: ``dataset-metadata.json`` is unreadable or has no ``owner/slug`` id.
    """
    root = Path(bundle_dir)
    meta = root / METADATA_FILENAME
    if not meta.is_file():
        return root.resolve().name
    try:
        ident = json.loads(meta.read_text(encoding="utf-8"))["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackagingError(f"{meta} is not a Kaggle dataset description with an 'id' ({exc!r}); "
                             "expected {\"id\": \"owner/slug\", ...}") from exc
    if not isinstance(ident, str) or not ident.strip("/").split("/")[-1]:
        raise PackagingError(f"{meta}: id {ident!r} is not 'owner/slug'")
    return ident.strip("/").split("/")[-1]


def packaged_target(manifest: Manifest) -> str:
    """The notebook target a bundle was packaged for: its manifest's, where it names a Kaggle target."""
    from packager.estimate.price.hardware import TARGETS

    return manifest.target if manifest.target in TARGETS and manifest.target != "local" else "t4x2"


def check_target(target: str) -> None:
    from packager.estimate.price.hardware import TARGETS

    known = [t for t in TARGETS if t != "local"]
    if target not in known:
        raise PackagingError(f"unknown notebook target {target!r}; expected one of {', '.join(known)}")


def checked_durations(slug: str, time_limit: str | float, margin: str) -> str:
    """The slug, time limit and margin checked; the time limit with its unit (seconds from Python get one)."""
    from runtime.settings import parse_duration

    if "/" in slug or not slug.strip():
        raise PackagingError(f"dataset slug {slug!r}: expected the slug alone (the part after 'owner/')")
    for label, value in (("time limit", time_limit), ("margin", margin)):
        try:
            if value or label == "time limit":
                parse_duration(value)
        except ValueError as exc:
            raise PackagingError(f"notebook {label}: {exc}") from None
    if isinstance(time_limit, (int, float)):  # seconds from Python: the notebook's TIME_LIMIT needs its unit
        time_limit = f"{time_limit:.3f}".rstrip("0").rstrip(".") + "s"
    return time_limit


def parameters_cell(params: tuple[Parameter, ...]) -> NotebookNode:
    return code_cell("ninefit-parameters", "\n".join([
        "import time",
        "",
        "NINEFIT_START = time.time()  # the runtime's deadline clock starts here: keep this first",
        "",
        "import os",
        "",
        *(p.line() for p in params),
    ]), tags=(PARAMETERS_TAG,))


def check_runtime_source() -> str:
    """The source of ``_check_runtime``: fail unless ``import runtime`` found the bundle's copy."""
    return source_of(_check_runtime)


def install_cell(data_line: str) -> NotebookNode:
    """The install cell: the bundle found, ``data_line`` (which finds ``DATA_DIR``), the bundle's wheels installed."""
    return code_cell("ninefit-install", "\n".join([
        source_of(_find_input, _wheel_modules, _wheel_dist, _module_files, _regular_modules, _conflicts, _imported_from,
                  _install_wheels),
        "",
        "",
        'BUNDLE_DIR = _find_input(BUNDLE_DIR, "manifest.json")',
        data_line,
        "installed, skipped = _install_wheels(BUNDLE_DIR)",
    ]))


__all__ = ["COMPETITION_PLACEHOLDER", "KAGGLE_INPUT", "KAGGLE_WORKING", "PARAMETERS_TAG", "Parameter", "bundle_slug",
           "check_runtime_source", "check_target", "checked_durations", "code_cell", "install_cell", "markdown_cell", "packaged_target",
           "parameters_cell", "source_of"]
