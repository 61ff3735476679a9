"""Opening a bundle: read the manifest, then prove every file is intact.

Nothing runs before :func:`open_bundle` has checked the schema version and the
sha256 of every file the manifest lists; a modified or missing file is a
:class:`~runtime.errors.ChecksumError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import BundleError, ChecksumError
from runtime.manifest import MANIFEST_NAME, Manifest

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_tree(root: str | os.PathLike, *, exclude: tuple[str, ...] = (MANIFEST_NAME,)) -> dict[str, str]:
    """sha256 of every regular file below ``root``, keyed by POSIX relative path."""
    root = Path(root)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        out[rel] = sha256_file(path)
    return out


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    root: Path
    manifest: Manifest

    def path(self, rel: str) -> Path:
        return self.root / rel


def verify_files(root: Path, manifest: Manifest) -> None:
    """Raise :class:`ChecksumError` unless every listed file exists with its sha256."""
    if not manifest.files:
        raise BundleError(f"{root / MANIFEST_NAME} lists no files; the bundle is damaged or was not written by ninefit")
    missing, modified = [], []
    for rel, expected in sorted(manifest.files.items()):
        p = root / rel
        if not p.is_file():
            missing.append(rel)
        elif sha256_file(p) != expected:
            modified.append(rel)
    if missing or modified:
        parts = []
        if missing:
            parts.append(f"missing: {', '.join(missing)}")
        if modified:
            parts.append(f"modified (sha256 differs from the manifest): {', '.join(modified)}")
        raise ChecksumError(
            f"bundle {root} failed its checksum check - {'; '.join(parts)}. "
            "Re-upload the bundle exactly as `ninefit package` wrote it (or re-package)."
        )


def open_bundle(bundle_dir: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """Load the manifest of ``bundle_dir`` and (by default) verify every checksum."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist (expected the folder `ninefit package` wrote)")
    manifest = Manifest.load(root)
    if verify:
        verify_files(root, manifest)
    return Bundle(root=root, manifest=manifest)


__all__ = ["Bundle", "checksum_tree", "open_bundle", "sha256_file", "verify_files"]
