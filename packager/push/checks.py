"""Everything checked before ``ninefit push`` sends anything to Kaggle.

Each check reads the files as they will be uploaded, not what ninefit meant
to write, and names each mismatch with what was expected:

* ``bundle``: every file matches its checksum (``ninefit verify``), and no
  file the manifest does not list would be uploaded with it;
* ``dataset``: ``dataset-metadata.json`` gives the dataset id the notebook
  and the kernel metadata attach;
* ``notebook``: made by ``ninefit notebook`` for this bundle; its dataset
  path is ``/kaggle/input/<slug>`` of that dataset, its target (accelerator)
  the bundle's, its data folder the competition's;
* ``kernel``: ``kernel-metadata.json`` field by field (internet off, private,
  GPU with an explicit machine shape, the dataset attached...);
* ``wheels``: every wheel installs on the image's Python and platform (the
  tags in its name), ``wheelhouse.json`` was resolved for that Python, and
  the members have a backend on Kaggle (ONNX Runtime in ``wheels/`` or the
  image, or a torch program the image's torch can load).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat

from packager.offline.dataset import METADATA_FILENAME
from packager.offline.image import ImageFacts
from packager.offline.notebook import KAGGLE_INPUT, PARAMETERS_TAG
from packager.offline.wheelmeta import DEFAULT_PLATFORMS, Target, load_provided, scan_wheels
from packager.push.kernelmeta import check_kernel_metadata
from runtime.errors import BundleError, PackagingError
from runtime.manifest import MANIFEST_NAME, Manifest, is_gpu_target

#: Files of a bundle folder the manifest never lists (``packager.build.UNCHECKED_FILES``).
_UNLISTED_OK = {MANIFEST_NAME, METADATA_FILENAME}
_ORT = {"onnxruntime": "cpu", "onnxruntime-gpu": "gpu"}


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``ok`` False stops the push before anything is sent."""

    check: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"  {'ok' if self.ok else 'PROBLEM'} [{self.check}] {self.message}"


def notebook_parameters(nb) -> dict[str, str]:
    """The defaults of a ninefit notebook's parameters cell: ``NAME = os.environ.get(VAR, DEFAULT)``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    out: dict[str, str] = {}
    for cell in cells[:1]:
        for node in ast.parse(cell.source).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Call) and len(node.value.args) == 2
                    and isinstance(node.value.args[1], ast.Constant)):
                out[node.targets[0].id] = str(node.value.args[1].value)
    return out


def dataset_id(bundle: Path) -> str:
    """``owner/slug`` from the bundle's ``dataset-metadata.json``.

    Raises:
        PackagingError: The file is missing, unreadable, or its id is not ``owner/slug``.
    """
    path = Path(bundle) / METADATA_FILENAME
    try:
        ident = json.loads(path.read_text(encoding="utf-8"))["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackagingError(f"{path} cannot be read ({exc!r}). Expected the dataset description `ninefit package "
                             "--kaggle-owner NAME` writes (or pass --kaggle-owner to push).") from exc
    if not isinstance(ident, str) or ident.count("/") != 1 or not all(ident.split("/")):
        raise PackagingError(f"{path}: id {ident!r} is not 'owner/slug'.")
    return ident


def check_bundle_files(bundle: Path, manifest: Manifest) -> list[Finding]:
    """The bundle's checksums, and files that would be uploaded without being listed."""
    from runtime.bundle import check_files

    try:
        damage = check_files(bundle, manifest)
    except BundleError as exc:
        return [Finding("bundle", False, f"the manifest cannot be trusted: {exc}")]
    if damage:
        lines = "; ".join(damage.lines())
        return [Finding("bundle", False, f"DAMAGED, {len(damage.files)} of {damage.checked} file(s): {lines}. "
                        "Re-package, or restore the files `ninefit package` wrote")]
    out = [Finding("bundle", True, f"intact: {damage.checked} files match their sha256 (ninefit verify)")]
    stray = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*")
                   if p.is_file() and str(p.relative_to(bundle)) not in manifest.files
                   and p.relative_to(bundle).as_posix() not in _UNLISTED_OK)
    if stray:
        out.append(Finding("bundle", False, f"{len(stray)} file(s) the manifest does not list would be uploaded "
                           f"with it: {', '.join(stray[:5])}. Expected only what `ninefit package` wrote: move "
                           "them out of the bundle folder"))
    return out


def check_notebook(nb_path: Path, manifest: Manifest, *, slug: str, target: str,
                   competition: str | None) -> list[Finding]:
    """The notebook is ninefit's for this bundle, reading the dataset, target and data pushed."""
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except (OSError, ValueError) as exc:
        return [Finding("notebook", False, f"{nb_path} is not a readable notebook ({exc})")]
    meta = nb.metadata.get("ninefit")
    params = notebook_parameters(nb)
    if not isinstance(meta, Mapping) or not {"BUNDLE_DIR", "TARGET", "DATA_DIR"} <= set(params):
        return [Finding("notebook", False, f"{nb_path} was not written by `ninefit notebook` (no ninefit metadata "
                        "or parameters cell). Expected `ninefit notebook BUNDLE -o NB`, or leave --notebook out "
                        "and push writes it")]
    out = []
    if meta.get("bundle") != manifest.name:
        out.append(Finding("notebook", False, f"it was written for bundle {meta.get('bundle')!r}, this bundle is "
                           f"{manifest.name!r}: write it again with `ninefit notebook`"))
    want = f"{KAGGLE_INPUT}/{slug}"
    out.append(Finding("notebook", params["BUNDLE_DIR"] == want,
                       f"dataset path BUNDLE_DIR = {params['BUNDLE_DIR']!r}"
                       + ("" if params["BUNDLE_DIR"] == want else f"; expected {want!r}, where Kaggle mounts the "
                          f"dataset {slug!r} (write it again with `ninefit notebook --slug {slug}`)")))
    out.append(Finding("notebook", params["TARGET"] == target,
                       f"accelerator TARGET = {params['TARGET']!r}"
                       + ("" if params["TARGET"] == target else f"; expected the bundle's target {target!r} "
                          f"(write it again with `ninefit notebook --target {target}`)")))
    data = params["DATA_DIR"]
    if competition:
        want_data = f"{KAGGLE_INPUT}/{competition}"
        out.append(Finding("notebook", data == want_data,
                           f"competition data DATA_DIR = {data!r}"
                           + ("" if data == want_data else f"; expected {want_data!r} for competition "
                              f"{competition!r} (write it again with `ninefit notebook --competition {competition}`)")))
    elif "<" in data:
        out.append(Finding("notebook", False, f"competition data DATA_DIR = {data!r} is a placeholder; expected "
                           "--competition SLUG (push attaches the competition and the notebook reads its data)"))
    return out


def check_kernel_file(path: Path, *, dataset_id: str) -> list[Finding]:
    """``kernel-metadata.json`` as written, field by field, and attached to the bundle's dataset."""
    problems = check_kernel_metadata(path)
    try:
        sources = json.loads(path.read_text(encoding="utf-8")).get("dataset_sources", [])
    except (OSError, ValueError, AttributeError):
        sources = []
    if isinstance(sources, list) and sources and dataset_id not in sources:
        problems.append(f"dataset_sources {sources} do not attach the bundle's dataset {dataset_id!r}")
    if problems:
        return [Finding("kernel", False, f"{path.name}: {p}") for p in problems]
    return [Finding("kernel", True, f"{path.name}: private, internet off, {dataset_id} attached")]


def check_wheels(bundle: Path, manifest: Manifest, facts: ImageFacts, target: str) -> list[Finding]:
    """The wheels install on the image's Python, and every member has a backend on Kaggle."""
    from packager.offline.steps import WHEELHOUSE_JSON, WHEELS_DIR
    from packager.torch_artifact import version_skew

    out = []
    record_path = bundle / WHEELHOUSE_JSON
    wheels = scan_wheels(bundle / WHEELS_DIR) if (bundle / WHEELS_DIR).is_dir() else []
    if record_path.is_file():
        try:
            resolved = json.loads(record_path.read_text(encoding="utf-8")).get("python_version")
        except (OSError, ValueError, AttributeError) as exc:
            raise PackagingError(f"{record_path} is not readable JSON ({exc}); package the bundle again") from exc
        out.append(Finding("wheels", resolved == facts.python_version,
                           f"resolved for Python {resolved}" + ("" if resolved == facts.python_version else
                           f"; Kaggle's image has Python {facts.python} (package again without --kaggle-python)")))
    image = Target.make(facts.python_version, DEFAULT_PLATFORMS)
    foreign = [w.path.name for w in wheels if not w.tags & image.supported]
    if foreign:
        out.append(Finding("wheels", False, f"{len(foreign)} wheel(s) do not install on the image's Python "
                           f"{facts.python_version} ({facts.platform}): {', '.join(foreign)}. Package again: "
                           "the wheelhouse is resolved for the image file's Python"))
    elif wheels:
        out.append(Finding("wheels", True, f"{len(wheels)} wheel(s), every one installs on Python "
                           f"{facts.python_version} {facts.platform}"))
    provided = load_provided(facts.path if facts.path.is_file() else None)
    ort = {w.project for w in wheels if w.project in _ORT} | {p for p in provided if p in _ORT}
    if is_gpu_target(target) and ort == {"onnxruntime"}:
        out.append(Finding("wheels", False, "the GPU target's notebook would have the CPU onnxruntime only: ONNX "
                           "members would run on the CPU. Expected onnxruntime-gpu (the default requirement)"))
    if not ort:
        needy = [m.name for m in manifest.members
                 if not m.variants[0].torch_file or version_skew(m.torch_version, facts.torch, target)]
        if needy:
            out.append(Finding("wheels", False, f"no ONNX Runtime on Kaggle (none in wheels/, none in the image) and "
                               f"member(s) {', '.join(needy)} have no torch program the image's torch "
                               f"{facts.torch} is sure to load: they would fail. Package without --no-wheels"))
    return out


__all__ = ["Finding", "check_bundle_files", "dataset_id", "check_kernel_file", "check_notebook", "check_wheels",
           "notebook_parameters"]
