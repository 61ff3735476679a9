"""Empty stand-in wheels for the packages of Kaggle's image.

pip must resolve the wheelhouse, and install it in the offline check, as if
the image's packages were installed: an empty wheel carrying only the
metadata of each (name, the image's version) stands in for it, so pip picks
versions of the rest that work with the image's numpy or protobuf and never
downloads torch with its CUDA wheels only for it to be deleted.
:mod:`packager.offline.wheelhouse` uses them in both steps.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

#: Local version label of stand-ins: sorts above the index's same public version,
#: so pip takes the stand-in rather than downloading the real wheel.
STAND_IN_LABEL = "ninefit.image"


def pick_version(spec: SpecifierSet) -> str:
    """A version satisfying ``spec`` for a stand-in whose real version is unknown."""
    candidates = [s.version.rstrip(".*") for s in spec] + ["0", "9999"]
    for text in candidates:
        try:
            if spec.contains(Version(text), True):
                return str(Version(text))
        except InvalidVersion:
            continue
    return "9999"


def image_stand_ins(folder: Path, provided: Mapping[str, str | None]) -> Path:
    """Stand-in wheels for the image's packages, and constraints pinning their versions."""
    constraints = []
    for name, version in provided.items():
        public = Version(version).public if version else "9999"
        write_stub_wheel(folder, name, f"{public}+{STAND_IN_LABEL}")
        if version:
            constraints.append(f"{name}=={public}\n")
    (folder / "constraints.txt").write_text("".join(constraints), encoding="utf-8")
    return folder


def write_stub_wheel(folder: Path, project: str, version: str) -> Path:
    """An empty wheel carrying only metadata, standing in for a package of the image."""
    dist = re.sub(r"[-_.]+", "_", project)
    info = f"{dist}-{version}.dist-info"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: ninefit\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        record = "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"])
        archive.writestr(f"{info}/RECORD", record)
    return path


__all__ = ["STAND_IN_LABEL", "image_stand_ins", "pick_version", "write_stub_wheel"]
