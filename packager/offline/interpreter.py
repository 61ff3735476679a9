"""A Python interpreter on this machine that stands for Kaggle's, for the real offline install.

The wheelhouse is resolved for the image's Python (3.12), which is rarely the
one running ninefit. A static walk of the wheels' metadata proves a lot, but
only a real ``pip install --no-index`` into a fresh environment of the very
same Python version proves the wheels install. :func:`find_interpreter`
looks for one: this interpreter when its version is the target's, else
``pythonX.Y`` on ``PATH``, else pyenv's ``$PYENV_ROOT/versions/X.Y.*``
(``~/.pyenv`` by default). Each candidate is run once to learn what it is
(CPython, its version, Linux and architecture, the wheel tags it accepts);
one that fails to run (a pyenv shim for a version not selected) is passed
over and named in the reason when none is found.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import packaging
from packaging import tags

from packager.offline.wheelmeta import Target

#: Run by each candidate: what it is, and every wheel tag it accepts (with its own
#: `packaging` where it has one, else this machine's copy, pure Python, put last on its path).
_PROBE = """
import json, platform, sys
sys.path.append(sys.argv[1])
from packaging import tags
print(json.dumps({"implementation": sys.implementation.name, "version": platform.python_version(),
                  "platform": sys.platform, "machine": platform.machine(), "executable": sys.executable,
                  "tags": [str(t) for t in tags.sys_tags()]}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A CPython found here that matches the target.

    Attributes:
        path: Its executable, as it reports it (a shim resolved).
        version: ``X.Y.Z``.
        tags: Every wheel tag it installs.
        found: How it was found (``this interpreter``, ``PATH``, ``pyenv``).
    """

    path: Path
    version: str
    tags: frozenset[tags.Tag] = field(repr=False)
    found: str = ""

    def line(self) -> str:
        return f"Python {self.version} ({self.path}, {self.found})"


def _candidates(version: str, environ: Mapping[str, str]) -> list[tuple[Path, str]]:
    name = f"python{version}"
    out: list[tuple[Path, str]] = []
    for folder in environ.get("PATH", "").split(os.pathsep):
        if folder and (Path(folder) / name).is_file():
            out.append((Path(folder) / name, "PATH"))
    root = Path(environ.get("PYENV_ROOT") or Path(environ.get("HOME") or Path.home()) / ".pyenv")
    versions = root / "versions"
    if versions.is_dir():
        found = [p for p in versions.glob(f"{version}.*/bin/{name}") if p.is_file()]
        found.sort(key=lambda p: [int(x) if x.isdigit() else -1 for x in p.parents[1].name.split(".")], reverse=True)
        out += [(p, "pyenv") for p in found]
    return out


def _probe(path: Path, timeout: float) -> dict | None:
    try:
        proc = subprocess.run([str(path), "-I", "-c", _PROBE, str(Path(packaging.__file__).parents[1])],
                              capture_output=True, text=True, timeout=timeout, check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_interpreter(target: Target, *, environ: Mapping[str, str] | None = None,
                     timeout: float = 30.0) -> tuple[Interpreter | None, str]:
    """A CPython of the target's ``X.Y`` on the target's OS and architecture, found here.

    Args:
        target: The wheelhouse's target (Python version, platform).
        environ: Environment (``PATH``, ``PYENV_ROOT``, ``HOME``); None reads ``os.environ``.
        timeout: Seconds allowed for each candidate to describe itself.

    Returns:
        ``(interpreter, "")``, or ``(None, why none stands for the target)``
        naming what was looked at.
    """
    env = os.environ if environ is None else environ
    machine = target.environment["platform_machine"]
    if not sys.platform.startswith("linux"):
        return None, f"the target is Linux {machine}, this machine is {sys.platform}"
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name == "cpython" and here == target.python_version and platform.machine() == machine:
        return Interpreter(Path(sys.executable), platform.python_version(), frozenset(tags.sys_tags()),
                           "this interpreter"), ""
    seen: list[str] = []
    for path, how in dict(_candidates(target.python_version, env)).items():
        info = _probe(path, timeout)
        if info is None:
            seen.append(f"{path} (did not run or could not describe itself)")
            continue
        if not (info["implementation"] == "cpython" and info["platform"].startswith("linux")
                and info["machine"] == machine
                and ".".join(info["version"].split(".")[:2]) == target.python_version):
            seen.append(f"{path} ({info['implementation']} {info['version']} {info['machine']})")
            continue
        parsed = frozenset(t for text in info["tags"] for t in tags.parse_tag(text))
        return Interpreter(Path(info["executable"]), info["version"], parsed, how), ""
    where = "; ".join(seen) if seen else "none on PATH or under pyenv"
    return None, (f"the target is Python {target.python_version}, this machine runs {here} and has no "
                  f"python{target.python_version} that runs (looked at: {where}); install one (e.g. "
                  f"`pyenv install {target.python_version}`) for a real install check")


__all__ = ["Interpreter", "find_interpreter"]
