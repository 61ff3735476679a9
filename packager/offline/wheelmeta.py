"""What a folder of wheels needs, read from the wheels alone, for a target Python.

The static half of the wheelhouse (:mod:`packager.offline.wheelhouse` runs pip): the
target (Python ``X.Y``, manylinux platform tags, PEP 508 marker environment),
the list of what Kaggle's image provides, each wheel's ``Requires-Dist`` and
``Requires-Python`` read from its ``METADATA``, and :func:`analyse`, which
walks the requirement graph through the wheels the way pip would resolve it on
Kaggle and names every distribution that is neither a wheel in the folder nor
provided by the image.

Markers are evaluated for the target, never for this machine: pip evaluates
them against the interpreter running it, not its ``--python-version``
(pypa/pip#11664, open), which is why this walk exists at all.
"""

from __future__ import annotations

import email.parser
import platform
import re
import sys
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging import tags
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from packager.offline.image import KAGGLE_IMAGE_FILE, image_facts
from runtime.errors import PackagingError

#: Kaggle's Python, as ``X.Y``: the image file's ``python`` fact, never this machine's.
DEFAULT_PYTHON_VERSION = image_facts().python_version

#: The image file's ``glibc`` fact: a floor, a wheel needing a newer glibc is never chosen.
KAGGLE_GLIBC = image_facts().glibc

_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
_LINUX_PLATFORM = re.compile(
    r"(?:manylinux_\d+_\d+|manylinux1|manylinux2010|manylinux2014|musllinux_\d+_\d+|linux)_(\w+)")


def expand_platforms(platforms: Iterable[str]) -> tuple[str, ...]:
    """Spells out every manylinux tag that a glibc-versioned platform accepts.

    pip's ``--platform`` does not do this for ``manylinux_2_Y`` (it only
    widens ``manylinux2014``), so ``manylinux_2_28_x86_64`` alone would refuse
    a ``manylinux_2_17`` wheel that runs fine there.

    Args:
        platforms: Platform tags such as ``manylinux_2_35_x86_64`` or
            ``manylinux2014_x86_64``; other tags are kept as given.

    Returns:
        The tags, newest glibc first, without duplicates.
    """
    out: list[str] = []
    for plat in platforms:
        match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", plat)
        legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", plat)
        if match and match.group(1) == "2":
            glibc_minor, arch = int(match.group(2)), match.group(3)
        elif legacy:
            glibc_minor, arch = _LEGACY_MANYLINUX[legacy.group(1)], legacy.group(2)
        else:
            out.append(plat)
            continue
        for minor in range(glibc_minor, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            out.extend(f"{alias}_{arch}" for alias, m in _LEGACY_MANYLINUX.items() if m == minor)
    return tuple(dict.fromkeys(out))


#: manylinux up to Kaggle's glibc on its architecture (the image file's glibc and arch facts), newest first.
DEFAULT_PLATFORMS = expand_platforms([image_facts().platform])


@dataclass(frozen=True)
class WheelInfo:
    """One wheel file: its name on disk, project (PEP 503 normalized), version, size."""

    filename: str
    project: str
    version: str
    size: int


# --------------------------------------------------------------------------- provided

def load_provided(path: Path | None = None) -> dict[str, str | None]:
    """Reads a ``name==version`` / ``name`` list (the Kaggle image data file by default).

    Args:
        path: The list; None reads :data:`KAGGLE_IMAGE_FILE`.

    Returns:
        Normalized project name -> version (None where the line had none).

    Raises:
        PackagingError: The file is missing or a line is malformed.
    """
    path = KAGGLE_IMAGE_FILE if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackagingError(
            f"Cannot read the list of packages Kaggle's image provides at {path}: {exc}. "
            "Expected a text file with one 'name==version' or 'name' per line.") from exc
    return _parse_provided(text.splitlines(), source=str(path))


def _parse_provided(lines: Iterable[str], source: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+))?", line)
        version = match.group(2) if match else None
        try:
            if version is not None:
                Version(version)
        except InvalidVersion:
            match = None
        if match is None:
            raise PackagingError(
                f"{source}, line {number}: {raw.strip()!r} is not a provided-package entry. "
                "Expected 'name==version' (a PEP 440 version) or a bare 'name'.")
        out[canonicalize_name(match.group(1))] = version
    return out


def resolve_provided(provided: Collection[str] | None, extra_provided: Collection[str],
                     provided_file: Path | None) -> dict[str, str | None]:
    """What the image provides: ``provided`` entries, else the list file, plus ``extra_provided``.

    Raises:
        PackagingError: An entry or the file is malformed.
    """
    if provided is None:
        result = load_provided(provided_file)
    else:
        result = _parse_provided(provided, source="provided=")
    result.update(_parse_provided(extra_provided, source="extra_provided="))
    return result


# --------------------------------------------------------------------------- target

@dataclass(frozen=True)
class Target:
    """The Python and platform the wheels must install on (Kaggle's, by default).

    Attributes:
        python_version: ``X.Y``.
        platforms: Platform tags, widened by :func:`expand_platforms`.
        supported: Every wheel tag an interpreter of the target accepts.
        environment: The PEP 508 marker environment of the target.
    """

    python_version: str
    platforms: tuple[str, ...]
    supported: frozenset[tags.Tag] = field(repr=False)
    environment: Mapping[str, str] = field(repr=False)

    @classmethod
    def make(cls, python_version: str, platforms: Sequence[str]) -> Target:
        """Builds the target, checking both arguments.

        Raises:
            PackagingError: The version is not ``X.Y`` or the platforms are not
                one Linux architecture.
        """
        if not re.fullmatch(r"3\.\d{1,2}", python_version):
            raise PackagingError(
                f"Target Python version {python_version!r} is not understood. "
                "Expected 'X.Y' such as '3.11' (the Python of Kaggle's image).")
        plats = expand_platforms(platforms)
        arches = {m.group(1) if m else None for m in map(_LINUX_PLATFORM.fullmatch, plats)}
        if not plats or None in arches or len(arches) != 1:
            raise PackagingError(
                f"Target platforms {list(platforms)} are not one Linux architecture. "
                "Expected Linux platform tags such as 'manylinux_2_35_x86_64' (Kaggle runs "
                "Linux x86_64).")
        major, minor = (int(x) for x in python_version.split("."))
        arch = arches.pop()
        assert arch is not None, "a platform of no Linux architecture was refused above"
        supported = set(tags.cpython_tags((major, minor), abis=None, platforms=plats))
        supported |= set(tags.compatible_tags((major, minor), f"cp{major}{minor}", plats))
        env = {
            "implementation_name": "cpython", "implementation_version": f"{python_version}.0",
            "os_name": "posix", "platform_machine": arch, "platform_release": "",
            "platform_system": "Linux", "platform_version": "",
            "python_full_version": f"{python_version}.0",
            "platform_python_implementation": "CPython", "python_version": python_version,
            "sys_platform": "linux",
        }
        return cls(python_version, plats, frozenset(supported), env)

    def marker_true(self, marker: Marker | None, extras: Iterable[str]) -> bool:
        """Whether a requirement with this marker applies on the target, given the extras asked."""
        if marker is None:
            return True
        for extra in ("", *extras):
            try:
                if marker.evaluate({**self.environment, "extra": extra}):
                    return True
            except Exception:  # an odd marker: count the requirement rather than drop it
                return True
        return False

    def local_reason(self) -> str | None:
        """Why a real install on this machine would not stand for the target, or None."""
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if sys.implementation.name != "cpython":
            return f"this interpreter is {sys.implementation.name}, the target is CPython"
        if here != self.python_version:
            return f"the target is Python {self.python_version}, this machine runs {here}"
        if not sys.platform.startswith("linux") or \
                platform.machine() != self.environment["platform_machine"]:
            return (f"the target is Linux {self.environment['platform_machine']}, this machine is "
                    f"{sys.platform} {platform.machine()}")
        return None


# --------------------------------------------------------------------------- wheels

@dataclass(frozen=True)
class Wheel:
    """A wheel file, with what its name says (project normalized, PEP 425 tags)."""

    path: Path
    project: str
    version: Version
    tags: frozenset[tags.Tag]

    def info(self) -> WheelInfo:
        return WheelInfo(self.path.name, self.project, str(self.version), self.path.stat().st_size)


def scan_wheels(folder: Path) -> list[Wheel]:
    """The ``*.whl`` files of a folder, sorted by file name.

    Raises:
        PackagingError: A file name is not a valid wheel name.
    """
    wheels = []
    for path in sorted(Path(folder).glob("*.whl")):
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename as exc:
            raise PackagingError(
                f"{path} is not a validly named wheel ({exc}). Expected "
                "'{name}-{version}-{python}-{abi}-{platform}.whl' as pip writes it.") from exc
        wheels.append(Wheel(path, canonicalize_name(name), version, frozenset(wheel_tags)))
    return wheels


def read_metadata(path: Path) -> tuple[list[str], str | None]:
    """Requires-Dist lines and Requires-Python of a wheel, read from its METADATA.

    Raises:
        PackagingError: The file is not a readable wheel.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise PackagingError(
                    f"Wheel {path.name} has {len(names)} top-level *.dist-info/METADATA files. "
                    "Expected exactly one, as in every wheel pip builds or downloads.")
            raw = archive.read(names[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackagingError(f"Cannot read wheel {path}: {exc}. Expected a valid zip archive "
                             "(delete the file and build the wheelhouse again).") from exc
    message = email.parser.BytesHeaderParser().parsebytes(raw)
    return list(message.get_all("Requires-Dist") or []), message.get("Requires-Python")


@dataclass
class Analysis:
    """What :func:`analyse` found.

    Attributes:
        missing: Distribution -> why it is needed, for each one that is neither
            a usable wheel in the folder nor provided by the image.
        conflicts: Human-readable conflicts with the image's versions.
        provided_needs: Provided distribution -> the specifiers asked of it.
        missing_reqs: Missing distribution -> one merged requirement, for a
            further download.
    """

    missing: dict[str, list[str]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    provided_needs: dict[str, SpecifierSet] = field(default_factory=dict)
    missing_reqs: dict[str, Requirement] = field(default_factory=dict)

    def log(self) -> str:
        """The findings, one line each ("all satisfied" when none)."""
        lines = [f"missing {name}: " + "; ".join(why) for name, why in sorted(self.missing.items())]
        return "\n".join(lines + [f"conflict: {c}" for c in self.conflicts]) or "all satisfied"


def _python_ok(requires_python: str | None, python_version: str) -> bool:
    try:
        return not requires_python or SpecifierSet(requires_python).contains(python_version, True)
    except InvalidSpecifier:  # pip ignores an unreadable Requires-Python too
        return True


def parse_requirements(requirements: Iterable[str]) -> list[Requirement]:
    """PEP 508 requirements from text.

    Raises:
        PackagingError: One is not valid, named in the message.
    """
    out = []
    for text in requirements:
        try:
            out.append(Requirement(text))
        except InvalidRequirement as exc:
            raise PackagingError(
                f"Requirement {text!r} is not valid ({exc}). Expected a PEP 508 requirement "
                "such as 'onnxruntime-gpu>=1.18'.") from exc
    return out


def analyse(wheels: Sequence[Wheel], roots: Sequence[Requirement], target: Target,
            provided: Mapping[str, str | None]) -> Analysis:
    """Walks the requirement graph through the wheels, as pip would resolve it on Kaggle.

    From each root, takes the newest wheel that fits the specifier, the
    target's tags and its ``Requires-Python``, and follows its
    ``Requires-Dist`` (markers evaluated for the target, with the extras
    asked of it); a distribution the image provides ends the walk there,
    checked against the image's version.

    Args:
        wheels: The folder's wheels (:func:`scan_wheels`).
        roots: What the notebook installs.
        target: Where it installs.
        provided: The image's distributions (:func:`resolve_provided`).

    Raises:
        PackagingError: A wheel in the walk cannot be read.
    """
    walk = _Walk(wheels, target, provided)
    queue: list[tuple[Requirement, tuple[str, ...], str]] = [(r, (), "the request") for r in roots]
    while queue:
        req, parent_extras, parent = queue.pop(0)
        if not target.marker_true(req.marker, parent_extras):
            continue
        name = canonicalize_name(req.name)
        candidates = [w for w in walk.by_project.get(name, ()) if req.specifier.contains(w.version, True)]
        usable = [w for w in candidates if walk.installs(w)]
        if usable:
            queue.extend(walk.follow(max(usable, key=lambda w: w.version), req))
        elif name in provided:
            walk.provided_need(name, req, parent)
        else:
            walk.missing(name, req, parent, candidates)
    return walk.result


class _Walk:
    """The state of :func:`analyse`'s walk: the folder's wheels by project, their metadata once read, the
    (wheel, extras) already followed, and the findings."""

    def __init__(self, wheels: Sequence[Wheel], target: Target, provided: Mapping[str, str | None]):
        self.target, self.provided = target, provided
        self.result = Analysis()
        self.by_project: dict[str, list[Wheel]] = {}
        for wheel in wheels:
            self.by_project.setdefault(wheel.project, []).append(wheel)
        self.metadata: dict[Path, tuple[list[str], str | None]] = {}
        self.done: set[tuple[Path, frozenset[str]]] = set()

    def installs(self, wheel: Wheel) -> bool:
        """Whether the wheel installs on the target: its ``Requires-Python`` and its tags."""
        if wheel.path not in self.metadata:
            self.metadata[wheel.path] = read_metadata(wheel.path)
        return _python_ok(self.metadata[wheel.path][1], self.target.python_version) and bool(
            wheel.tags & self.target.supported)

    def follow(self, wheel: Wheel, req: Requirement) -> list[tuple[Requirement, tuple[str, ...], str]]:
        """The wheel's ``Requires-Dist`` to walk next (none when it was followed with these extras already)."""
        key = (wheel.path, frozenset(req.extras))
        if key in self.done:
            return []
        self.done.add(key)
        out = []
        for line in self.metadata[wheel.path][0]:
            try:
                dep = Requirement(line)
            except InvalidRequirement:
                self.result.conflicts.append(f"{wheel.path.name} has an unreadable Requires-Dist {line!r}")
                continue
            out.append((dep, tuple(sorted(req.extras)), wheel.path.name))
        return out

    def provided_need(self, name: str, req: Requirement, parent: str) -> None:
        """A distribution the image provides: what is asked of it, and a conflict where the image's version does not do."""
        have = self.provided[name]
        needs = self.result.provided_needs.setdefault(name, SpecifierSet())
        self.result.provided_needs[name] = needs & req.specifier
        if have is not None and not req.specifier.contains(have, True):
            self.result.conflicts.append(
                f"{parent} needs {_shown(req)} but Kaggle's image has {name} {have}, which is "
                "never reinstalled: require a version of the needing package that "
                "accepts it")

    def missing(self, name: str, req: Requirement, parent: str, candidates: list[Wheel]) -> None:
        """A distribution neither in the folder (usable) nor in the image: why, and the merged requirement."""
        shown = _shown(req)
        if candidates:
            why = (f"{shown} (required by {parent}): the folder's "
                   + ", ".join(w.path.name for w in candidates)
                   + f" do not fit Python {self.target.python_version} on {self.target.platforms[0]}")
        elif self.by_project.get(name):
            why = (f"{shown} (required by {parent}): the folder only has "
                   + ", ".join(str(w.version) for w in self.by_project[name]))
        else:
            why = f"{shown} (required by {parent})"
        result = self.result
        result.missing.setdefault(name, []).append(why)
        merged = result.missing_reqs.get(name)
        spec = req.specifier if merged is None else merged.specifier & req.specifier
        extras = set(req.extras) | (merged.extras if merged else set())
        result.missing_reqs[name] = Requirement(
            f"{name}{'[' + ','.join(sorted(extras)) + ']' if extras else ''}{spec}")


def _shown(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


__all__ = [
    "DEFAULT_PLATFORMS",
    "DEFAULT_PYTHON_VERSION",
    "KAGGLE_GLIBC",
    "KAGGLE_IMAGE_FILE",
    "Analysis",
    "Target",
    "Wheel",
    "WheelInfo",
    "analyse",
    "expand_platforms",
    "load_provided",
    "parse_requirements",
    "read_metadata",
    "resolve_provided",
    "scan_wheels",
]
