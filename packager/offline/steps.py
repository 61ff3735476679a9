"""The offline steps of ``ninefit package``: the bundle's wheelhouse and its Kaggle dataset file.

A code-competition notebook runs with the internet off, so the bundle must
carry, as wheels, whatever ninefit's runtime needs that Kaggle's image lacks,
and must be uploadable as a Kaggle dataset. Both are steps of packaging on the
staged bundle, given to :func:`packager.build.package` as
``PackageOptions.steps``: whatever they write becomes part of the
checksummed bundle (but ``dataset-metadata.json``, which the Kaggle CLI reads
and never uploads), and an exception removes the whole staged folder, so a
broken wheelhouse never lands half-written.

* :func:`wheelhouse_step` fills ``wheels/``, proves it installs offline and
  records the outcome in ``wheelhouse.json`` and ``report.md``;
* :func:`dataset_step` writes ``dataset-metadata.json`` and puts the bundle's
  size against Kaggle's limits into ``report.md``;
* :func:`offline_summary` reads both back from the finished bundle for the CLI.

Run the wheelhouse step first: the dataset step measures the staged folder,
and the wheels are most of it.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from packaging.utils import parse_wheel_filename

from packager.offline.dataset import (
    KAGGLE_DATASET_MAX_BYTES,
    KAGGLE_MAX_FILES,
    METADATA_FILENAME,
    SLUG_MIN,
    TITLE_MAX,
    TITLE_MIN,
    DatasetMetadata,
    DatasetWriteResult,
    check_bundle,
    resolve_owner,
    slugify,
    upload_command,
    write_dataset_metadata,
)
from packager.offline.wheelhouse import (
    DEFAULT_PLATFORMS,
    DEFAULT_PYTHON_VERSION,
    InstallCheck,
    WheelhouseReport,
    build_wheelhouse,
    verify_offline_install,
)
from packager.offline.wheelmeta import Target, parse_requirements, resolve_provided
from packager.spec import Spec
from runtime.errors import PackagingError
from runtime.manifest import MANIFEST_NAME, Manifest

#: What the steps say as they go (pip downloads can take minutes): the CLI shows it.
LOG = logging.getLogger("ninefit.package")

#: A step of packaging on the staged bundle folder, run by :func:`packager.build.package` (not to be
#: confused with the user's features and postprocess hooks, :mod:`runtime.hooks`).
Step = Callable[[Path, Spec, Manifest], Manifest]

WHEELS_DIR = "wheels"
WHEELHOUSE_JSON = "wheelhouse.json"
#: Bumped on any change a reader of ``wheelhouse.json`` could misread.
WHEELHOUSE_SCHEMA = 1
REPORT_NAME = "report.md"

#: What ninefit's runtime needs on Kaggle that the image lacks, per target.
#: The runtime itself needs numpy alone, which the image has; it runs the
#: models with ONNX Runtime, which the image does not have (see
#: ``packager/data/kaggle_image.txt``). On a GPU notebook that is ``onnxruntime-gpu``:
#: the plain ``onnxruntime`` wheel has the CPU provider only, and the two must
#: never be installed together (both are the module ``onnxruntime``). The
#: bounds follow the CUDA that Kaggle's GPU image has (12.x, with its torch):
#: PyPI's onnxruntime-gpu is built for CUDA 12 / cuDNN 9 from 1.19 on
#: (microsoft/onnxruntime#21758) and for CUDA 13 from 1.27 on
#: (microsoft/onnxruntime#29032: "CUDA 12 packages are deprecated"), which
#: needs a newer driver than CUDA 12 does. The CUDA and cuDNN libraries come
#: from the image, so the ``[cuda,cudnn]`` extras are left out. TensorRT is not
#: here: its libraries come from NVIDIA's own index; add
#: ``tensorrt``/``polygraphy`` to the requirements for the TensorRT backend.
DEFAULT_REQUIREMENTS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "gpu": ("onnxruntime-gpu>=1.19,<1.27",),
    "cpu": ("onnxruntime>=1.18",),
})


def default_requirements(target: str = "gpu") -> tuple[str, ...]:
    """What the runtime needs on a Kaggle notebook of ``target`` beyond the image.

    Args:
        target: ``"gpu"``, ``"cpu"``, or a notebook hardware target such as
            ``"t4x2"`` (:data:`packager.estimate.price.hardware.TARGETS`; every one
            but ``"cpu"`` is a GPU).

    Raises:
        PackagingError: ``target`` is none of these.
    """
    if target in DEFAULT_REQUIREMENTS:
        return DEFAULT_REQUIREMENTS[target]
    from packager.estimate.price.hardware import TARGETS

    if target in TARGETS and target != "local":
        return DEFAULT_REQUIREMENTS["gpu"]
    known = ["gpu", "cpu", *(t for t in TARGETS if t not in ("cpu", "local"))]
    raise PackagingError(f"Unknown target {target!r} for the wheelhouse. Expected one of: "
                         f"{', '.join(known)} (the accelerator the notebook runs on).")


# --------------------------------------------------------------------------- wheelhouse

def wheelhouse_step(
    requirements: Sequence[str] | None = None,
    *,
    target: str = "gpu",
    python_version: str = DEFAULT_PYTHON_VERSION,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    provided: Collection[str] | None = None,
    extra_provided: Collection[str] = (),
    provided_file: Path | None = None,
    find_links: Sequence[Path] = (),
    index: bool = True,
    verify: bool = True,
    imports: Sequence[str] = (),
    timeout: float = 1800.0,
) -> Step:
    """A step that puts the wheels the notebook must install offline into ``wheels/``.

    The step resolves ``requirements`` with every transitive dependency for
    Kaggle's Python and platform, leaving out what the image provides
    (:func:`~packager.offline.wheelhouse.build_wheelhouse`); then proves the folder
    installs offline (:func:`~packager.offline.wheelhouse.verify_offline_install`: a
    real ``pip install --no-index`` into a fresh virtual environment of an
    interpreter of ``python_version`` where one runs here, the static check of
    the wheels' metadata otherwise); then writes ``wheelhouse.json`` (each
    wheel with its tags) and a "## Offline install" section of ``report.md``.
    It returns the manifest unchanged: the
    files are checksummed with the rest of the bundle.

    The arguments are checked here, so a mistake fails before the models are
    exported rather than after.

    Args:
        requirements: PEP 508 requirements; None takes
            :func:`default_requirements` of ``target``.
        target: Used only when ``requirements`` is None.
        python_version: Kaggle's Python, ``X.Y`` (default: the image file's).
        platforms: Kaggle's platform tags.
        provided: ``name==version`` entries of the image; None reads
            ``provided_file`` (default ``packager/data/kaggle_image.txt``).
        extra_provided: Entries added to ``provided``.
        provided_file: Another list of the image's packages.
        find_links: Local folders of wheels to resolve from as well.
        index: False resolves from ``find_links`` only.
        verify: False skips the install check (``wheelhouse.json`` then
            records none).
        imports: Modules to import after the real install. Only for modules
            whose dependencies are all in ``wheels/``: the image's packages are
            empty stand-ins in that environment.
        timeout: Seconds allowed for each pip run.

    Returns:
        The step.

    Raises:
        PackagingError: An argument is malformed (bad requirement, target,
            Python version, provided list, missing find-links folder).
    """
    reqs = tuple(default_requirements(target) if requirements is None else requirements)
    parse_requirements(reqs)
    Target.make(python_version, platforms)
    resolve_provided(provided, extra_provided, provided_file)
    links = tuple(Path(p) for p in find_links)
    for folder in links:
        if not folder.is_dir():
            raise PackagingError(f"find-links folder {folder} does not exist. Expected a local "
                                 "folder of wheels to resolve the wheelhouse from.")
    common: dict[str, Any] = dict(python_version=python_version, platforms=platforms,
                                  provided=provided, extra_provided=extra_provided,
                                  provided_file=provided_file)

    def step(stage: Path, spec: Spec, manifest: Manifest) -> Manifest:
        _fill_wheelhouse(Path(stage), reqs, links, index=index, verify=verify, imports=imports, timeout=timeout,
                         common=common)
        return manifest

    return step


def _fill_wheelhouse(stage: Path, reqs: tuple[str, ...], links: tuple[Path, ...], *, index: bool, verify: bool,
                     imports: Sequence[str], timeout: float, common: dict[str, Any]) -> None:
    """The wheelhouse step on a staged bundle (:func:`wheelhouse_step`): ``wheels/`` filled and proven,
    ``wheelhouse.json`` and the report's section written."""
    wheels = stage / WHEELS_DIR
    LOG.info(f"wheelhouse: resolving {', '.join(reqs) or 'nothing'} for Python {common['python_version']} "
        f"on {common['platforms'][0]}")
    report = build_wheelhouse(reqs, wheels, find_links=links, index=index, timeout=timeout, **common)
    if report.conflicts:
        raise PackagingError(
            "The wheelhouse would not install on Kaggle: " + "; ".join(report.conflicts)
            + ". Expected every requirement to accept the versions Kaggle's image has "
            "(packager/data/kaggle_image.txt); loosen the requirement, or correct the "
            "image's versions with extra_provided/provided_file if the list is stale.")
    LOG.info(f"wheelhouse: {len(report.wheels)} wheel(s), {_size(report.total_bytes)}; "
        f"{len(report.skipped_provided)} left out as provided by Kaggle's image")
    check = None
    if verify:
        check = verify_offline_install(wheels, reqs, imports=imports, timeout=timeout, **common)
        if not check.ok:
            raise PackagingError(
                f"{check.summary()} Add the missing wheels (find_links=...) or, if Kaggle's "
                "image has them, name them in extra_provided. Check log: "
                + " | ".join(check.log_tail.splitlines()[-8:]))
        LOG.info(f"wheelhouse: install check {_check_line(_check_record(check))}")
    if wheels.is_dir() and not any(wheels.iterdir()):
        wheels.rmdir()  # everything was provided: no empty folder in the upload
    record = _wheelhouse_record(reqs, report, check, index)
    (stage / WHEELHOUSE_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _append_report(stage, _wheelhouse_section(record))


def install_command(requirements: Sequence[str]) -> str:
    """The offline pip command, run from the bundle folder."""
    return shlex.join(["pip", "install", "--no-index", "--find-links", f"{WHEELS_DIR}/",
                       *requirements])


def _wheel_tags(filename: str) -> list[str]:
    """The PEP 425 tags a wheel's file name declares, sorted (``cp312-cp312-manylinux_2_17_x86_64``)."""
    return sorted(str(tag) for tag in parse_wheel_filename(filename)[3])


def _check_record(check: InstallCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {"ok": check.ok, "mode": check.mode, "missing": list(check.missing),
            "conflicts": list(check.conflicts), "failed_imports": list(check.failed_imports),
            "skipped_reason": check.skipped_reason, "python": check.python, "seconds": round(check.seconds, 3)}


def _wheelhouse_record(reqs: Sequence[str], report: WheelhouseReport,
                       check: InstallCheck | None, index: bool) -> dict[str, Any]:
    # Only paths inside the bundle: the file is uploaded, the build machine's are noise.
    return {
        "schema_version": WHEELHOUSE_SCHEMA,
        "requirements": list(reqs),
        "install_command": install_command(reqs),
        "python_version": report.python_version,
        "platform": report.platforms[0],
        "index": index,
        "wheels": [{"file": f"{WHEELS_DIR}/{w.filename}", "project": w.project,
                    "version": w.version, "bytes": w.size, "tags": _wheel_tags(w.filename)}
                   for w in report.wheels],
        "total_bytes": report.total_bytes,
        "skipped_provided": [{"project": w.project, "version": w.version}
                             for w in report.skipped_provided],
        "notes": list(report.notes),
        "install_check": _check_record(check),
    }


def _check_line(check: Mapping[str, Any] | None) -> str:
    if check is None:
        return "not run (verify=False)"
    if not check["ok"]:
        return "FAILED (missing: " + (", ".join(check["missing"]) or "none") + ")"
    if check["mode"] == "installed":
        return (f"passed (installed offline into a fresh virtual environment of "
                f"{check.get('python') or 'this Python'}, {check['seconds']:.1f} s)")
    return f"passed (statically complete; no real install: {check['skipped_reason']})"


def _wheelhouse_section(record: Mapping[str, Any]) -> list[str]:
    wheels = record["wheels"]
    lines = ["## Offline install", ""]
    if wheels:
        lines += [f"{len(wheels)} wheel(s), {_size(record['total_bytes'])}, in "
                  f"`{WHEELS_DIR}/`, for Python {record['python_version']} on "
                  f"{record['platform']}:", "",
                  "| wheel | version | size | tags |", "|---|---|---|---|"]
        lines += [f"| {w['project']} | {w['version']} | {_size(w['bytes'])} | {', '.join(w.get('tags', ()))} |"
                  for w in wheels]
    else:
        lines.append(f"No wheels: Kaggle's image provides all of "
                     f"{', '.join(record['requirements']) or 'nothing'}.")
    skipped = record["skipped_provided"]
    if skipped:
        lines += ["", "Left out as provided by Kaggle's image: "
                  + ", ".join(f"{w['project']} {w['version']}" for w in skipped) + "."]
    lines += ["", f"Install check: {_check_line(record['install_check'])}.", "",
              "The notebook installs them offline, as in:", "",
              f"    {record['install_command']}"]
    if record["notes"]:
        lines += ["", *(f"- {n}" for n in record["notes"])]
    return lines


# --------------------------------------------------------------------------- dataset

def _default_title(name: str) -> str:
    title = " ".join(name.split())
    if len(title) < TITLE_MIN:
        title = f"{title} ninefit bundle".strip()
    return title[:TITLE_MAX].rstrip()


def _default_slug(title: str) -> str:
    slug = slugify(title)
    return slug if len(slug) >= SLUG_MIN else f"{slug}-ninefit-bundle".strip("-")


#: How to get ``dataset-metadata.json`` when no owner was found; the CLI may
#: pass its own wording (``owner_hint``).
DEFAULT_OWNER_HINT = (
    "set KAGGLE_USERNAME (or save kaggle.json from Kaggle > Settings > API) and package "
    "again, or pass the owner explicitly; or write it into this bundle with "
    "packager.offline.add_dataset_metadata(BUNDLE, owner=NAME)")


def dataset_step(
    title: str | None = None,
    *,
    owner: str | None = None,
    slug: str | None = None,
    license: str = "CC0-1.0",
    environ: Mapping[str, str] | None = None,
    max_bytes: int = KAGGLE_DATASET_MAX_BYTES,
    max_files: int = KAGGLE_MAX_FILES,
    owner_hint: str | None = None,
) -> Step:
    """A step that writes ``dataset-metadata.json`` and Kaggle's size check into the bundle.

    Sizes are measured on the staged folder, so put this step after
    :func:`wheelhouse_step`. Never fails packaging for want of an owner: when
    none is found (argument, ``$KAGGLE_USERNAME``, ``kaggle.json``) the file is
    not written and ``report.md`` says how to add it.

    Args:
        title: Dataset title; None derives it from the spec's name.
        owner: Kaggle user or organization; None looks it up.
        slug: Dataset slug; None slugifies the title.
        license: A Kaggle license name.
        environ: Environment variables for the owner lookup; None reads
            ``os.environ``.
        max_bytes: Dataset size limit to warn against.
        max_files: File count limit to warn against.
        owner_hint: How to add the owner, for the report; None uses
            :data:`DEFAULT_OWNER_HINT`.

    Returns:
        The step.

    Raises:
        PackagingError: An explicit title, owner, slug or license breaks
            Kaggle's rules.
    """
    placeholder = "ninefit"
    DatasetMetadata(title=title or placeholder, owner=owner or placeholder,
                    slug=slug if slug is not None else slugify(title or placeholder),
                    license=license)
    hint = owner_hint or DEFAULT_OWNER_HINT

    def step(stage: Path, spec: Spec, manifest: Manifest) -> Manifest:
        name = title or _default_title(spec.name)
        try:
            result = write_dataset_metadata(
                stage, name, owner=owner, environ=environ, license=license,
                slug=slug if slug is not None or title is not None else _default_slug(name),
                max_bytes=max_bytes, max_files=max_files)
        except PackagingError as exc:
            total, count, warnings = check_bundle(stage, max_bytes=max_bytes,
                                                  max_files=max_files)
            warnings = (f"no {METADATA_FILENAME} was written: {exc} To add it, {hint}.",
                        *warnings)
            lines = ["## Kaggle dataset", "", "Not described for Kaggle yet."]
        else:
            meta, total, count, warnings = (result.metadata, result.total_bytes,
                                            result.file_count, result.warnings)
            command = [a if a != str(stage) else "BUNDLE" for a in upload_command(Path(stage))]
            lines = ["## Kaggle dataset", "",
                     f"Dataset `{meta.id}` (\"{meta.title}\", license {meta.license}), described "
                     f"by `{METADATA_FILENAME}`. Upload the bundle folder with (`--dir-mode zip`, "
                     "else the Kaggle CLI skips every sub-folder):", "",
                     f"    {shlex.join(command)}"]
        with_wheels = ", wheels included" if (Path(stage) / WHEELS_DIR).is_dir() else ""
        if not (Path(stage) / MANIFEST_NAME).exists():  # written after the steps: count it as uploaded
            count += 1
        lines += ["", f"The bundle is {_size(total)} in {count} files{with_wheels}."]
        if warnings:
            lines += ["", *(f"- warning: {w}" for w in warnings)]
        _append_report(Path(stage), lines)
        return manifest

    return step


def add_dataset_metadata(bundle_dir: Path, title: str | None = None, *, owner: str | None = None,
                         slug: str | None = None, license: str = "CC0-1.0",
                         environ: Mapping[str, str] | None = None) -> DatasetWriteResult:
    """Writes ``dataset-metadata.json`` into a finished bundle (one packaged without an owner).

    The file is never among the manifest's checksums (``packager.build.UNCHECKED_FILES``):
    the Kaggle CLI reads it and does not upload it, and the runtime never reads it.

    Args:
        bundle_dir: A bundle ``ninefit package`` wrote.
        title: Dataset title; None derives it from the manifest's name, as
            :func:`dataset_step` does.
        owner: Kaggle owner; None looks it up.
        slug: Dataset slug; None slugifies the title.
        license: A Kaggle license name.
        environ: Environment variables; None reads ``os.environ``.

    Returns:
        What was written, with the bundle's size and the upload command.

    Raises:
        PackagingError: No owner is found or the metadata breaks Kaggle's rules.
        BundleError: ``bundle_dir`` is not a bundle.
    """
    name = title or _default_title(Manifest.load(bundle_dir).name)
    return write_dataset_metadata(
        Path(bundle_dir), name, owner=resolve_owner(owner, environ=environ), license=license,
        slug=slug if slug is not None or title is not None else _default_slug(name))


# --------------------------------------------------------------------------- summary

def offline_summary(bundle_dir: Path) -> list[str]:
    """What the offline steps left in a finished bundle, one line each, for the CLI.

    Args:
        bundle_dir: The bundle folder.

    Raises:
        PackagingError: ``wheelhouse.json`` or ``dataset-metadata.json`` is unreadable.
    """
    root = Path(bundle_dir)
    lines = []
    record = _read_json(root / WHEELHOUSE_JSON)
    if record is None:
        lines.append("wheels: none built (the notebook relies on Kaggle's image)")
    else:
        lines.append(f"wheels: {len(record['wheels'])} ({_size(record['total_bytes'])}) for "
                     f"Python {record['python_version']} on {record['platform']}, "
                     f"{len(record['skipped_provided'])} left out as provided by Kaggle's image")
        lines.append(f"offline install check: {_check_line(record['install_check'])}")
    meta = _read_json(root / METADATA_FILENAME)
    if meta is None:
        lines.append(f"Kaggle dataset: no {METADATA_FILENAME} (no owner was found; see "
                     f"{root / REPORT_NAME})")
    else:
        lines.append(f"Kaggle dataset: {meta.get('id')}")
        lines.append(f"upload: {shlex.join(upload_command(root))}")
        lines.append("new version: "
                     + shlex.join(upload_command(root, new_version="ninefit bundle update")))
    _, _, warnings = check_bundle(root)
    lines += [f"warning: {w}" for w in warnings]
    return lines


# --------------------------------------------------------------------------- helpers

def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _append_report(stage: Path, lines: Sequence[str]) -> None:
    """Adds a section to ``report.md`` (written by the build before the steps run)."""
    path = stage / REPORT_NAME
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + ("\n" if text else "") + "\n".join(lines) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackagingError(f"{path} is not readable JSON ({exc}). Expected the file "
                             "`ninefit package` wrote; package the bundle again.") from exc
    if not isinstance(data, dict):
        raise PackagingError(f"{path} holds {type(data).__name__}, not a JSON object. Expected "
                             "the file `ninefit package` wrote; package the bundle again.")
    return data


__all__ = [
    "DEFAULT_OWNER_HINT",
    "DEFAULT_REQUIREMENTS",
    "WHEELHOUSE_JSON",
    "WHEELS_DIR",
    "Step",
    "add_dataset_metadata",
    "dataset_step",
    "default_requirements",
    "install_command",
    "offline_summary",
    "wheelhouse_step",
]
