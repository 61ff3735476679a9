"""The bundle's ``wheels/`` folder: what ninefit needs on Kaggle that the image lacks.

A Kaggle code competition reruns the notebook with the internet off, so every
package that Kaggle's image does not already have must ship as a wheel and be
installed with ``pip install --no-index --find-links wheels/ REQS``. That
install fails when a single transitive dependency is missing, so the folder is
resolved by pip itself for Kaggle's Python and platform (manylinux x86_64),
then everything the image provides is deleted from it: reinstalling numpy or
torch over the image's own builds breaks the image.

The target is Kaggle's image as ``packager/data/kaggle_image.txt`` records it
(:mod:`packager.offline.image`: Python 3.12, manylinux up to its glibc), never
the machine packaging. :func:`build_wheelhouse` builds the folder;
:func:`verify_offline_install` proves it installs offline, by a real install
into a fresh virtual environment of an interpreter of the target's Python
found here (:mod:`packager.offline.interpreter`), and by a static walk of the
wheels' ``Requires-Dist`` (markers evaluated for the target) everywhere.

Both resolve as if the image's packages were installed: pip is shown empty
stand-in wheels (:mod:`packager.offline.standins`) pinned to the image's versions (the list in
``packager/data/kaggle_image.txt``), so it picks versions of the rest that work with
the image's numpy or protobuf, as pip on Kaggle must, and never downloads
torch with its CUDA wheels only to delete them.

pip evaluates environment markers against the interpreter running it, not the
``--python-version`` target (pypa/pip#11664, open). The static walk
(:mod:`packager.offline.wheelmeta`) evaluates them for the target, and
:func:`build_wheelhouse` downloads whatever it finds missing in further
rounds, so the folder is complete for the target even when this machine's
Python differs.

The target, the image's list and the wheels' metadata live in
:mod:`packager.offline.wheelmeta`; the names callers use are re-exported here.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from packager.offline.interpreter import find_interpreter
from packager.offline.standins import image_stand_ins, pick_version, write_stub_wheel
from packager.offline.wheelmeta import (
    DEFAULT_PLATFORMS,
    DEFAULT_PYTHON_VERSION,
    KAGGLE_GLIBC,
    KAGGLE_IMAGE_FILE,
    Analysis,
    Target,
    WheelInfo,
    analyse,
    expand_platforms,
    load_provided,
    parse_requirements,
    resolve_provided,
    scan_wheels,
)
from runtime.errors import PackagingError

logger = logging.getLogger("ninefit.package")


@dataclass(frozen=True)
class WheelhouseReport:
    """What :func:`build_wheelhouse` left in the folder and why.

    Attributes:
        dest: The wheel folder.
        python_version: Target Python, ``X.Y``.
        platforms: Platform tags the wheels were resolved for.
        wheels: Wheels kept, sorted by project.
        skipped_provided: Packages of the image that the resolution reached,
            deleted from the folder, with the image's version (with
            ``resolve_with_image`` the files were empty stand-ins, never
            downloaded).
        total_bytes: Size of the kept wheels.
        commands: Every pip command run; the first is the main resolve, later
            ones download dependencies pip skipped because it evaluated their
            markers for this machine instead of the target.
        conflicts: Requirements the image's version of a package does not
            satisfy; the offline install will fail on Kaggle for these.
        notes: Things worth telling the user that are not failures.
    """

    dest: Path
    python_version: str
    platforms: tuple[str, ...]
    wheels: tuple[WheelInfo, ...]
    skipped_provided: tuple[WheelInfo, ...]
    total_bytes: int
    commands: tuple[tuple[str, ...], ...]
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def command(self) -> tuple[str, ...]:
        """The main pip command (empty when every requirement was provided)."""
        return self.commands[0] if self.commands else ()

    def summary(self) -> str:
        """One paragraph for the CLI."""
        text = (f"{len(self.wheels)} wheels, {self.total_bytes / 1e6:.1f} MB, for Python "
                f"{self.python_version} on {self.platforms[0]} in {self.dest}; "
                f"{len(self.skipped_provided)} left out as provided by Kaggle's image.")
        if self.conflicts:
            text += " Conflicts with the image: " + "; ".join(self.conflicts) + "."
        return text


@dataclass(frozen=True)
class InstallCheck:
    """Whether a wheel folder installs offline for the target.

    Attributes:
        ok: True when nothing is missing, conflicting or failing to import.
        mode: ``"installed"`` when a real ``pip install --no-index`` ran in a
            fresh virtual environment of the target's Python, ``"static"``
            when only the wheels' metadata was checked (see ``skipped_reason``).
        missing: Normalized names of distributions needed but neither in the
            folder nor provided by the image.
        conflicts: Human-readable version conflicts (e.g. the image's protobuf
            is older than a wheel requires).
        failed_imports: Modules that would not import after a real install.
        skipped_reason: Why no real install was done (``mode == "static"``).
        log_tail: The end of pip's output, or of the static findings.
        seconds: Wall time of the check.
        python: The interpreter of the real install (``Python 3.12.1 (path, how found)``).
    """

    ok: bool
    mode: Literal["installed", "static"]
    missing: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    failed_imports: tuple[str, ...] = ()
    skipped_reason: str | None = None
    log_tail: str = ""
    seconds: float = 0.0
    python: str = ""

    def summary(self) -> str:
        """One paragraph for the CLI."""
        if self.ok:
            how = f"installed offline in a fresh environment of {self.python}" if self.mode == "installed" else (
                f"statically complete (no real install: {self.skipped_reason})")
            return f"Wheelhouse OK: {how}, in {self.seconds:.1f} s."
        parts = []
        if self.missing:
            parts.append("missing distributions: " + ", ".join(self.missing))
        if self.conflicts:
            parts.append("conflicts: " + "; ".join(self.conflicts))
        if self.failed_imports:
            parts.append("modules that fail to import: " + ", ".join(self.failed_imports))
        return ("The wheelhouse would not install offline on Kaggle (" + "; ".join(parts)
                + "). Expected every dependency to be a wheel in the folder or provided by "
                "Kaggle's image (packager/data/kaggle_image.txt).")


# --------------------------------------------------------------------------- pip

_NOT_FOUND = re.compile(r"(?:No matching distribution found for|Could not find a version "
                        r"that satisfies the requirement)\s+([A-Za-z0-9][A-Za-z0-9._-]*)")


def _pip_missing(output: str) -> tuple[str, ...]:
    return tuple(sorted({canonicalize_name(m) for m in _NOT_FOUND.findall(output)}))


def _pip_conflicts(output: str) -> list[str]:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "The conflict is caused by:" in line:
            block = []
            for nxt in lines[i + 1:]:
                if not nxt.strip():
                    break
                block.append(nxt.strip())
            return block
    return []


def _isolated_env() -> dict[str, str]:
    """The environment for an offline pip: no pip config files, no PIP_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")
    return env


def _run(cmd: Sequence[str], env: Mapping[str, str], timeout: float | None) -> tuple[int, str]:
    logger.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(list(cmd), env=dict(env), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"{' '.join(cmd[:6])} ... did not finish within {timeout} s. "
                             "Expected pip to resolve the wheelhouse in that time; raise the "
                             "timeout or check the package index.") from exc
    return proc.returncode, proc.stdout


def _errors(output: str) -> str:
    """pip's ERROR lines (else its last lines), on one line for a one-paragraph message."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")] or lines[-3:]
    return " ".join(errors[:4])


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _download(reqs: Sequence[Requirement], dest: Path, target: Target,
              find_links: Sequence[Path], index: bool, timeout: float | None,
              stand_ins: Path | None) -> tuple[str, ...]:
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
           "--python-version", target.python_version, "--implementation", "cp",
           *(arg for plat in target.platforms for arg in ("--platform", plat)),
           "-d", str(dest), "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    if not index:
        cmd.append("--no-index")
    for folder in find_links:
        cmd += ["--find-links", str(folder)]
    if stand_ins is not None:
        cmd += ["--find-links", str(stand_ins), "-c", str(stand_ins / "constraints.txt")]
    # Markers were already evaluated for the target; pip would evaluate them for this machine.
    cmd += [str(_without_marker(r)) for r in reqs]
    code, output = _run(cmd, os.environ if index else _isolated_env(), timeout)
    if code != 0:
        missing = _pip_missing(output)
        what = (f"no wheel was found for {', '.join(missing)}" if missing
                else "pip failed (see its output below)")
        raise PackagingError(
            f"Could not collect the wheelhouse for Python {target.python_version} on "
            f"{target.platforms[0]}: {what}. Expected every requirement and its dependencies "
            "to have a binary wheel for that Python and manylinux x86_64 "
            f"{'on the package index' if index else 'in ' + ', '.join(map(str, find_links))}"
            f"{_WITH_IMAGE if stand_ins else ''}. pip said: {_errors(output)}")
    return tuple(cmd)


_WITH_IMAGE = (", and working with the versions of packages in Kaggle's image "
               "(packager/data/kaggle_image.txt; override with extra_provided/provided_file)")


def _without_marker(req: Requirement) -> Requirement:
    plain = Requirement(str(req))
    plain.marker = None
    return plain


# --------------------------------------------------------------------------- public

def build_wheelhouse(
    requirements: Sequence[str],
    dest: Path,
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    provided: Collection[str] | None = None,
    extra_provided: Collection[str] = (),
    provided_file: Path | None = None,
    find_links: Sequence[Path] = (),
    index: bool = True,
    clean: bool = True,
    resolve_with_image: bool = True,
    max_rounds: int = 5,
    timeout: float | None = 1800.0,
) -> WheelhouseReport:
    """Downloads the wheels ``requirements`` need on Kaggle, minus what the image has.

    Runs ``python -m pip download --only-binary=:all: --python-version X.Y
    --implementation cp --platform ... -d dest REQS``, so pip resolves every
    transitive dependency for the target, then deletes each wheel whose
    project Kaggle's image provides, and repeats for dependencies that pip
    skipped because it evaluated their markers for this machine.

    Args:
        requirements: PEP 508 requirements; markers are evaluated for the target.
        dest: The wheel folder (the bundle's ``wheels/``); created if needed.
        python_version: Target Python, ``X.Y``.
        platforms: Target platform tags; manylinux tags are widened to every
            older glibc (see :func:`expand_platforms`).
        provided: ``name==version`` / ``name`` entries the image has; None
            reads ``provided_file`` (default :data:`KAGGLE_IMAGE_FILE`).
        extra_provided: Entries added to ``provided``.
        provided_file: Another list file to read when ``provided`` is None.
        find_links: Local folders of wheels to resolve from as well.
        index: False resolves from ``find_links`` only (``--no-index``), with
            pip's config files and ``PIP_*`` variables ignored.
        clean: Delete the ``*.whl`` already in ``dest`` first, so no stale
            version lingers.
        resolve_with_image: Resolve as if the image's packages were installed:
            pip sees empty stand-in wheels pinned (``-c``) to the image's
            versions, so it picks versions of the rest that work with them
            and never downloads e.g. torch and its CUDA wheels only for them
            to be deleted. False lets pip choose freely (conflicts with the
            image are then only reported).
        max_rounds: Bound on follow-up downloads of skipped dependencies.
        timeout: Seconds allowed for each pip run; None waits for ever.

    Returns:
        The report of wheels kept and deleted and the pip commands used.

    Raises:
        PackagingError: A requirement or dependency has no suitable wheel, an
            input is malformed, or ``dest`` holds files other than wheels.
    """
    target = Target.make(python_version, platforms)
    provided_map = resolve_provided(provided, extra_provided, provided_file)
    if not index and not find_links:
        raise PackagingError("build_wheelhouse(index=False) was given no find_links folder. "
                             "Expected at least one local folder of wheels to resolve from.")
    dest = _wheel_folder(Path(dest), clean)
    wanted = [r for r in parse_requirements(requirements) if target.marker_true(r.marker, ())]
    to_fetch = [r for r in wanted if canonicalize_name(r.name) not in provided_map]
    notes = [f"{r} is provided by Kaggle's image: not downloaded"
             for r in wanted if canonicalize_name(r.name) in provided_map]
    fetch = _Fetch(dest, target, provided_map, tuple(find_links), index, timeout)
    analysis = fetch.rounds(wanted, to_fetch, max_rounds, resolve_with_image)
    if analysis.missing:
        raise PackagingError(
            f"The wheelhouse in {dest} is still incomplete after {len(fetch.commands)} pip runs: "
            + "; ".join(f"{why[0]}" for why in analysis.missing.values())
            + ". Expected pip to download every dependency for Python "
            f"{target.python_version} on {target.platforms[0]}.")
    kept = tuple(sorted((w.info() for w in scan_wheels(dest)),
                        key=lambda w: (w.project, w.version)))
    return WheelhouseReport(
        dest=dest, python_version=target.python_version, platforms=target.platforms, wheels=kept,
        skipped_provided=tuple(sorted(fetch.skipped.values(), key=lambda w: w.project)),
        total_bytes=sum(w.size for w in kept), commands=tuple(fetch.commands),
        conflicts=tuple(analysis.conflicts), notes=tuple([*notes, *fetch.notes]))


def _wheel_folder(dest: Path, clean: bool) -> Path:
    """The wheel folder, created; refused when it holds anything but wheels (all of it is uploaded), emptied
    of its old wheels when ``clean``."""
    dest.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in dest.iterdir() if not p.name.endswith(".whl")]
    if strangers:
        raise PackagingError(
            f"The wheel folder {dest} holds files that are not wheels: "
            f"{', '.join(sorted(strangers))}. Expected a folder of *.whl only (the bundle's "
            "wheels/), since every file in it is uploaded to Kaggle.")
    if clean:
        for old in dest.glob("*.whl"):
            old.unlink()
    return dest


@dataclass
class _Fetch:
    """pip downloads into ``dest`` for the target, round by round, the image's projects deleted after each."""

    dest: Path
    target: Target
    provided: Mapping[str, str | None]  # project -> the image's version (None: unknown)
    find_links: tuple[Path, ...]
    index: bool
    timeout: float | None
    commands: list[tuple[str, ...]] = field(default_factory=list)
    skipped: dict[str, WheelInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rounds(self, wanted: list, to_fetch: list, max_rounds: int, resolve_with_image: bool) -> Analysis:
        """Download ``to_fetch``, then again what pip skipped (it evaluated their markers for this machine, not
        the target) until nothing is missing, nothing new is, or ``max_rounds`` further rounds were run."""
        analysis = Analysis()
        previous: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="ninefit-image-") as tmp:
            stand_ins = image_stand_ins(Path(tmp), self.provided) if resolve_with_image else None
            for round_no in range(max_rounds + 1):
                if to_fetch:
                    self.commands.append(_download(to_fetch, self.dest, self.target, self.find_links, self.index,
                                                   self.timeout, stand_ins))
                self._drop_provided()
                analysis = analyse(scan_wheels(self.dest), wanted, self.target, self.provided)
                if not analysis.missing or set(analysis.missing) == previous or round_no == max_rounds:
                    break
                previous = set(analysis.missing)
                to_fetch = list(analysis.missing_reqs.values())
                self.notes.append("downloaded in a further round (pip evaluated their markers for this "
                                  "machine, not the target): " + ", ".join(sorted(analysis.missing)))
        return analysis

    def _drop_provided(self) -> None:
        """Delete each wheel of a project the image provides, noting it (at the image's version)."""
        for wheel in scan_wheels(self.dest):
            if wheel.project in self.provided:
                info = wheel.info()
                version = self.provided[wheel.project] or info.version
                self.skipped[wheel.path.name] = WheelInfo(info.filename, info.project, version, info.size)
                wheel.path.unlink()


def verify_offline_install(
    wheel_dir: Path,
    requirements: Sequence[str],
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    provided: Collection[str] | None = None,
    extra_provided: Collection[str] = (),
    provided_file: Path | None = None,
    image_find_links: Sequence[Path] | None = None,
    imports: Sequence[str] = (),
    install: bool = True,
    env_dir: Path | None = None,
    timeout: float = 600.0,
    environ: Mapping[str, str] | None = None,
) -> InstallCheck:
    """Proves that ``pip install --no-index --find-links wheel_dir REQS`` works on Kaggle.

    Always walks the wheels' ``Requires-Dist`` with markers evaluated for the
    target (static mode). Where an interpreter of the target's Python runs
    here (this one, ``pythonX.Y`` on ``PATH`` or under pyenv:
    :func:`~packager.offline.interpreter.find_interpreter`), also installs for
    real into a fresh virtual environment of it (no system site-packages),
    with pip's config and index switched off.

    Packages the image provides are not in the folder; in the real install
    they are stood in for by ``image_find_links`` when given, else by empty
    stand-in wheels generated here with the image's versions, so that pip
    resolves exactly as it would on Kaggle and a wrong image version fails
    here too.

    Args:
        wheel_dir: The wheel folder.
        requirements: What the notebook installs (PEP 508); empty means every
            wheel in the folder. Only wheels reachable from them are checked,
            since pip installs no others.
        python_version: Target Python, ``X.Y``.
        platforms: Target platform tags.
        provided: Entries the image has; None reads ``provided_file``.
        extra_provided: Entries added to ``provided``.
        provided_file: Another list file to read when ``provided`` is None.
        image_find_links: Folders of wheels standing in for the image's
            packages; they count as provided in the static walk too.
        imports: Modules to import in the fresh environment after installing.
        install: False skips the real install (static mode only).
        env_dir: Where to create the virtual environment, kept afterwards;
            None uses a temporary folder removed afterwards.
        timeout: Seconds allowed for the pip install.
        environ: Where to look for the target's interpreter (``PATH``,
            ``PYENV_ROOT``); None reads ``os.environ``.

    Returns:
        The verdict, naming each missing distribution, and the interpreter
        of the real install or why there was none.

    Raises:
        PackagingError: An input is malformed (bad requirement, wheel name,
            provided list), not when the wheelhouse is incomplete.
    """
    start = time.perf_counter()
    target = Target.make(python_version, platforms)
    provided_map = _provided_with_links(resolve_provided(provided, extra_provided, provided_file), image_find_links)
    _check_folders(wheel_dir, env_dir)
    wheels = scan_wheels(Path(wheel_dir))
    # No requirements: every wheel in the folder must install.
    roots = parse_requirements(requirements) or [
        Requirement(f"{w.project}=={w.version}") for w in wheels]
    analysis = analyse(wheels, roots, target, provided_map)

    interp, reason = (None, "install=False was passed") if not install else find_interpreter(target, environ=environ)
    foreign = [w.path.name for w in wheels if interp is not None and not w.tags & interp.tags]
    if foreign and interp is not None:  # (foreign is empty without an interpreter)
        reason = (f"wheels that {interp.line()} cannot install although the target can: "
                  + ", ".join(foreign[:5]))
    if interp is None or foreign:
        return InstallCheck(
            ok=not analysis.missing and not analysis.conflicts, mode="static",
            missing=tuple(sorted(analysis.missing)), conflicts=tuple(analysis.conflicts),
            skipped_reason=reason, log_tail=analysis.log(), seconds=time.perf_counter() - start)

    with tempfile.TemporaryDirectory(prefix="ninefit-offline-") as tmp:
        env_path = Path(env_dir) if env_dir is not None else Path(tmp) / "venv"
        code, output, failed = _install_fresh(
            interp.path, env_path, Path(wheel_dir), roots, image_find_links,
            {n: provided_map[n] for n in analysis.provided_needs}, analysis, Path(tmp), imports,
            timeout)
    return _installed_check(analysis, code, output, failed, provided_map, interp.line(), start)


def _provided_with_links(provided: dict[str, str | None], image_find_links: Sequence[Path] | None) -> dict[str, str | None]:
    """The image's packages, those of the stand-in folders (``image_find_links``) among them."""
    for folder in image_find_links or ():
        for wheel in scan_wheels(Path(folder)):
            provided[wheel.project] = str(wheel.version)
    return provided


def _check_folders(wheel_dir: Path, env_dir: Path | None) -> None:
    if not Path(wheel_dir).is_dir():
        raise PackagingError(f"The wheel folder {wheel_dir} does not exist. Expected the folder "
                             "build_wheelhouse() wrote (the bundle's wheels/).")
    if env_dir is not None and Path(env_dir).exists() and any(Path(env_dir).iterdir()):
        raise PackagingError(f"env_dir {env_dir} is not empty. Expected a new or empty folder "
                             "for the fresh virtual environment.")


def _installed_check(analysis: Analysis, code: int, output: str, failed: Sequence[str],
                     provided: Mapping[str, str | None], python: str, start: float) -> InstallCheck:
    """The verdict of a real install: missing distributions and conflicts are the static walk's and pip's; a
    distribution the image has but pip found no acceptable version of is a conflict with the image, not a
    missing wheel."""
    missing = set(analysis.missing) | set(_pip_missing(output))
    conflicts = list(analysis.conflicts) + _pip_conflicts(output)
    for name in sorted(missing & set(provided)):
        missing.discard(name)
        conflicts.append(f"pip found no acceptable {name} although Kaggle's image has "
                         f"{name} {provided[name] or '(version unknown)'}")
    ok = code == 0 and not missing and not conflicts and not failed
    return InstallCheck(
        ok=ok, mode="installed", missing=tuple(sorted(missing)), conflicts=tuple(conflicts),
        failed_imports=tuple(failed), log_tail=_tail(output),
        seconds=time.perf_counter() - start, python=python)


def _install_fresh(base: Path, env_path: Path, wheel_dir: Path, roots: Sequence[Requirement],
                   image_find_links: Sequence[Path] | None, needed: Mapping[str, str | None],
                   analysis: Analysis, tmp: Path, imports: Sequence[str],
                   timeout: float) -> tuple[int, str, list[str]]:
    use_outer_pip = _pip_has_python_option()
    # The venv of the target's interpreter, which may not be this one (no system site-packages).
    code, out = _run([str(base), "-m", "venv", *(["--without-pip"] if use_outer_pip else []), str(env_path)],
                     _isolated_env(), timeout)
    if code != 0:
        raise PackagingError(f"Could not create a virtual environment of {base} for the offline install "
                             f"check: {_errors(out)}. Expected `{base} -m venv` to work (on Debian/Ubuntu "
                             "install the python3-venv package).")
    python = env_path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = ([sys.executable, "-m", "pip", "--python", str(python)] if use_outer_pip
           else [str(python), "-m", "pip"])
    links = [wheel_dir]
    if image_find_links is not None:
        links += [Path(p) for p in image_find_links]
    elif needed:
        stubs = tmp / "image-stand-ins"
        stubs.mkdir()
        for name, version in needed.items():
            write_stub_wheel(stubs, name, version or pick_version(analysis.provided_needs[name]))
        links.append(stubs)
    cmd = [*pip, "install", "--no-index", "--disable-pip-version-check", "--no-input",
           *(arg for link in links for arg in ("--find-links", str(link))),
           *(str(r) for r in roots)]
    env = _isolated_env()
    code, output = _run(cmd, env, timeout)
    failed = []
    if code == 0:
        for module in imports:
            rc, out = _run([str(python), "-c", f"import {module}"], env, timeout)
            if rc != 0:
                failed.append(module)
                output += f"\n$ python -c 'import {module}'\n{out}"
    return code, f"$ {' '.join(cmd)}\n{output}", failed


def _pip_has_python_option() -> bool:
    """pip >= 22.3 can install into another interpreter (``--python``), sparing ensurepip."""
    try:
        from importlib.metadata import version

        return Version(version("pip")) >= Version("22.3")
    except Exception:
        return False


__all__ = [
    "DEFAULT_PLATFORMS",
    "DEFAULT_PYTHON_VERSION",
    "KAGGLE_GLIBC",
    "KAGGLE_IMAGE_FILE",
    "InstallCheck",
    "WheelInfo",
    "WheelhouseReport",
    "build_wheelhouse",
    "expand_platforms",
    "load_provided",
    "verify_offline_install",
]
