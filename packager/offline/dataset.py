"""``dataset-metadata.json``: makes a bundle folder uploadable as a Kaggle dataset.

The Kaggle CLI creates a dataset from a folder holding this file::

    {"title": "...", "id": "owner/slug", "licenses": [{"name": "CC0-1.0"}]}

(format: Kaggle/kaggle-api ``docs/datasets_metadata.md``). The rules checked
here are the ones the CLI enforces before uploading (``dataset_create_new`` in
``kaggle/api/kaggle_api_extended.py``): title 6-50 characters, dataset slug
6-50 characters, exactly one license. The docs say the slug may have 3-50
characters, but the CLI refuses fewer than 6, so 6 it is.

The CLI skips sub-folders (``wheels/``, ``models/``) unless run with
``--dir-mode zip``; it then uploads each as an archive that Kaggle unpacks
back into a folder under ``/kaggle/input/<slug>/`` (Kaggle/kaggle-cli PR #111).
:attr:`DatasetWriteResult.upload_command` says so.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import PackagingError

#: File name the Kaggle CLI looks for in the upload folder.
METADATA_FILENAME = "dataset-metadata.json"

TITLE_MIN, TITLE_MAX = 6, 50
SLUG_MIN, SLUG_MAX = 6, 50

#: License names the Kaggle CLI accepts (Kaggle/kaggle-api docs/datasets_metadata.md).
KAGGLE_LICENSES = frozenset({
    "CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0",
    "DbCL-1.0", "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL",
    "CC-BY-3.0", "CC-BY-3.0-IGO", "US-Government-Works", "CC-BY-NC-SA-3.0-IGO",
    "CDLA-Permissive-1.0", "CDLA-Sharing-1.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0", "ODC-BY-1.0",
    "LGPL-3.0", "AGPL-3.0", "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0", "GPL-3.0",
})

#: Size of one dataset. Kaggle's datasets documentation (kaggle.com/docs/datasets)
#: was quoted in 2025 as allowing 200 GB per dataset (it was 100 GB before);
#: private datasets also count against a per-user private quota (over 100 GB,
#: figure not firm). Neither is checked by the CLI; both are uncertain.
KAGGLE_DATASET_MAX_BYTES = 200 * 10**9

#: Files per dataset version. Kaggle's server answered "The file count exceeds
#: the maximum of 1000" (reported in 2020, whirlwide/candlestick_retriever#15).
#: Whether files inside an uploaded (and unpacked) folder archive count is not
#: documented, so every file in the bundle is counted: the cautious reading.
KAGGLE_MAX_FILES = 1000

#: Warn from this fraction of a limit on.
WARN_FRACTION = 0.8

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_PLACEHOLDERS = {"INSERT_TITLE_HERE", "INSERT_SLUG_HERE"}


@dataclass(frozen=True)
class DatasetMetadata:
    """A validated ``dataset-metadata.json``.

    Attributes:
        title: Dataset title, 6-50 characters.
        owner: Kaggle user or organization slug.
        slug: Dataset slug, 6-50 lowercase letters, digits and single hyphens.
        license: One of :data:`KAGGLE_LICENSES`.
    """

    title: str
    owner: str
    slug: str
    license: str = "CC0-1.0"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def id(self) -> str:
        """``owner/slug``, the dataset's reference (``/kaggle/input/<slug>/`` in a notebook)."""
        return f"{self.owner}/{self.slug}"

    def to_json(self) -> dict[str, object]:
        """The JSON object the Kaggle CLI reads."""
        return {"title": self.title, "id": self.id, "licenses": [{"name": self.license}]}


@dataclass(frozen=True)
class DatasetWriteResult:
    """What :func:`write_dataset_metadata` wrote and found.

    Attributes:
        path: The written ``dataset-metadata.json``.
        metadata: Its content.
        total_bytes: Size of every file in the bundle.
        file_count: Number of files in the bundle, sub-folders included.
        warnings: Sizes or counts near Kaggle's limits, one sentence each.
        upload_command: The CLI command that uploads the bundle as is.
    """

    path: Path
    metadata: DatasetMetadata
    total_bytes: int
    file_count: int
    warnings: tuple[str, ...]
    upload_command: tuple[str, ...]


def slugify(title: str) -> str:
    """A Kaggle dataset slug from a title: lowercase ASCII words joined by hyphens.

    Args:
        title: Any text.

    Returns:
        The slug, cut at a word boundary to at most 50 characters; may be
        shorter than Kaggle's minimum (validation says so).
    """
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[:SLUG_MAX + 1].rsplit("-", 1)[0] if "-" in slug[:SLUG_MAX + 1] \
            else slug[:SLUG_MAX]
    return slug.strip("-")


def _validate(meta: DatasetMetadata) -> None:
    title = meta.title
    if title in _PLACEHOLDERS or not TITLE_MIN <= len(title) <= TITLE_MAX or title != title.strip():
        raise PackagingError(
            f"Dataset title {title!r} has {len(title)} characters. Expected {TITLE_MIN} to "
            f"{TITLE_MAX} characters without leading or trailing spaces (Kaggle's CLI refuses "
            "others).")
    if not _OWNER.fullmatch(meta.owner):
        raise PackagingError(
            f"Kaggle owner {meta.owner!r} is not a Kaggle user or organization name. Expected "
            "letters, digits, '-' or '_', as in https://www.kaggle.com/<owner>.")
    slug = meta.slug
    if not SLUG_MIN <= len(slug) <= SLUG_MAX or not _SLUG.fullmatch(slug):
        raise PackagingError(
            f"Dataset slug {slug!r} ({len(slug)} characters) is not valid. Expected {SLUG_MIN} "
            f"to {SLUG_MAX} lowercase letters, digits and single hyphens, not starting or ending "
            "with a hyphen (e.g. 'my-ensemble-bundle'); pass slug= explicitly if the title "
            "does not make one.")
    if meta.license not in KAGGLE_LICENSES:
        raise PackagingError(
            f"License {meta.license!r} is not one Kaggle accepts. Expected one of: "
            + ", ".join(sorted(KAGGLE_LICENSES)) + ".")


def kaggle_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder the Kaggle CLI reads ``kaggle.json`` from.

    ``$KAGGLE_CONFIG_DIR`` if set; else ``~/.kaggle`` if it exists; else, on
    Linux, ``$XDG_CONFIG_HOME/kaggle`` (default ``~/.config/kaggle``), as in
    the Kaggle CLI.

    Args:
        environ: Environment variables; None reads ``os.environ``. ``HOME`` in
            it stands for the home folder.
    """
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"])
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    legacy = home / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return legacy


def resolve_owner(owner: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The Kaggle owner of the dataset: the argument, ``$KAGGLE_USERNAME``, or ``kaggle.json``.

    Only the ``username`` key of ``kaggle.json`` is read.

    Args:
        owner: Explicit owner; wins when given.
        environ: Environment variables; None reads ``os.environ``.

    Raises:
        PackagingError: No owner is found, or ``kaggle.json`` is unreadable.
    """
    if owner:
        return owner
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_USERNAME"):
        return env["KAGGLE_USERNAME"]
    config = kaggle_config_dir(env) / "kaggle.json"
    if config.is_file():
        try:
            username = json.loads(config.read_text(encoding="utf-8")).get("username")
        except (OSError, ValueError, AttributeError) as exc:
            raise PackagingError(
                f"Cannot read the Kaggle username from {config}: {exc}. Expected a JSON object "
                'such as {"username": "...", "key": "..."} as downloaded from Kaggle.') from exc
        if username:
            return str(username)
    raise PackagingError(
        f"No Kaggle owner for the dataset id: none was passed, KAGGLE_USERNAME is unset and "
        f"{config} has no 'username'. Expected the owner as an argument (owner=... / --owner), "
        "in $KAGGLE_USERNAME, or in kaggle.json (Kaggle > Settings > API > Create New Token).")


def make_metadata(title: str, *, owner: str | None = None, slug: str | None = None,
                  license: str = "CC0-1.0", environ: Mapping[str, str] | None = None
                  ) -> DatasetMetadata:
    """Validated metadata; the slug defaults to :func:`slugify` of the title.

    Raises:
        PackagingError: Title, slug, owner or license breaks Kaggle's rules,
            or no owner is found.
    """
    return DatasetMetadata(title=title, owner=resolve_owner(owner, environ=environ),
                           slug=slugify(title) if slug is None else slug, license=license)


def check_bundle(bundle_dir: Path, *, max_bytes: int = KAGGLE_DATASET_MAX_BYTES,
                 max_files: int = KAGGLE_MAX_FILES) -> tuple[int, int, tuple[str, ...]]:
    """Measures a bundle against Kaggle's dataset limits.

    Args:
        bundle_dir: The folder to upload.
        max_bytes: Dataset size limit.
        max_files: File count limit.

    Returns:
        ``(total_bytes, file_count, warnings)``; a warning from
        :data:`WARN_FRACTION` of a limit on.
    """
    files = [p for p in Path(bundle_dir).rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    warnings = []
    if total >= WARN_FRACTION * max_bytes:
        warnings.append(
            f"The bundle is {total / 1e9:.3g} GB, {100 * total / max_bytes:.0f}% of Kaggle's "
            f"{max_bytes / 1e9:.3g} GB dataset limit (private datasets also count against your "
            "private quota): drop models or wheels, or split the bundle into two datasets.")
    if len(files) >= WARN_FRACTION * max_files:
        warnings.append(
            f"The bundle has {len(files)} files, {100 * len(files) / max_files:.0f}% of the "
            f"{max_files} files Kaggle accepts in a dataset version: pack small files together.")
    return total, len(files), tuple(warnings)


def write_dataset_metadata(
    bundle_dir: Path,
    title: str,
    *,
    owner: str | None = None,
    slug: str | None = None,
    license: str = "CC0-1.0",
    environ: Mapping[str, str] | None = None,
    max_bytes: int = KAGGLE_DATASET_MAX_BYTES,
    max_files: int = KAGGLE_MAX_FILES,
) -> DatasetWriteResult:
    """Writes ``dataset-metadata.json`` so ``kaggle datasets create -p BUNDLE_DIR`` uploads it.

    Args:
        bundle_dir: An existing bundle folder.
        title: Dataset title, 6-50 characters.
        owner: Kaggle owner; else ``$KAGGLE_USERNAME``, else ``kaggle.json``.
        slug: Dataset slug; None slugifies the title.
        license: A Kaggle license name.
        environ: Environment variables; None reads ``os.environ``.
        max_bytes: Dataset size limit to warn against.
        max_files: File count limit to warn against.

    Returns:
        The file written, the bundle's size, warnings and the upload command.

    Raises:
        PackagingError: The folder is missing or the metadata breaks Kaggle's rules.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise PackagingError(f"Bundle folder {bundle_dir} does not exist. Expected the folder "
                             "that holds the bundle to upload.")
    meta = make_metadata(title, owner=owner, slug=slug, license=license, environ=environ)
    path = bundle_dir / METADATA_FILENAME
    path.write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
    total, count, warnings = check_bundle(bundle_dir, max_bytes=max_bytes, max_files=max_files)
    return DatasetWriteResult(path=path, metadata=meta, total_bytes=total, file_count=count,
                              warnings=warnings, upload_command=upload_command(bundle_dir))


def upload_command(bundle_dir: Path, *, new_version: str | None = None) -> tuple[str, ...]:
    """The Kaggle CLI command that uploads ``bundle_dir`` as it is.

    Args:
        bundle_dir: The folder holding ``dataset-metadata.json``.
        new_version: None creates the dataset (``kaggle datasets create``);
            a message uploads a new version of an existing one
            (``kaggle datasets version -m MESSAGE``).

    Returns:
        The command as arguments, with ``--dir-mode zip`` when the folder has
        sub-folders.
    """
    bundle_dir = Path(bundle_dir)
    command = ["kaggle", "datasets", "create", "-p", str(bundle_dir)]
    if new_version is not None:
        command = ["kaggle", "datasets", "version", "-p", str(bundle_dir), "-m", new_version]
    if bundle_dir.is_dir() and any(p.is_dir() for p in bundle_dir.iterdir()):
        # Without it the CLI silently skips every sub-folder, wheels/ included.
        command += ["--dir-mode", "zip"]
    return tuple(command)


__all__ = [
    "KAGGLE_DATASET_MAX_BYTES",
    "KAGGLE_LICENSES",
    "KAGGLE_MAX_FILES",
    "METADATA_FILENAME",
    "DatasetMetadata",
    "DatasetWriteResult",
    "check_bundle",
    "kaggle_config_dir",
    "make_metadata",
    "resolve_owner",
    "slugify",
    "upload_command",
    "write_dataset_metadata",
]
