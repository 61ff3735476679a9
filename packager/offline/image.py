"""Kaggle's notebook image: the facts ninefit relies on, read from one file.

``packager/data/kaggle_image.txt`` is the one source of truth for the image.
Its header holds facts as ``#@ key: value | source`` lines (the image's Python,
glibc, architecture, CUDA, torch build and driver; the lowest GPU compute
capability its torch has kernels for; the Kaggle machine shape of each
target); below a marker line comes the list of distributions the image
provides (read by :func:`packager.offline.wheelmeta.load_provided`).

* :func:`image_facts` parses the facts (every key checked, none optional), so
  the wheelhouse's Python and platform tags, ``--kaggle-python``'s default and
  ``ninefit push``'s machine shapes cannot drift from the file;
* :data:`IMAGE_REFRESH_COMMAND` is the one line to run in a Kaggle notebook
  to measure the image again, and :func:`merge_snapshot` folds its output into
  the file (``scripts/kaggle_image.py merge``).

This module reads files only; it imports nothing else of ninefit's but the
error type, so every other module may use it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import PackagingError

KAGGLE_IMAGE_FILE = Path(__file__).resolve().parents[1] / "data" / "kaggle_image.txt"  # packager/data/

#: The line after which a refresh replaces everything (the package list).
LIST_MARKER = "# ==== package list (a refresh replaces everything below this line) ===="
#: Facts the refresh command measures in a notebook.
MEASURED = ("python", "glibc", "arch", "cuda", "torch", "driver")
_OTHER_KEYS = ("min_gpu_capability", "retired_shapes")
#: ``shape.<target>`` value meaning "Kaggle has no machine shape for it".
NO_SHAPE = "-"

#: Run in a Kaggle notebook cell: prints the measured facts and the package list.
#: Written for IPython's ``!`` line (no ``$``, no braces, which IPython would
#: expand) and for a notebook without internet, torch or a GPU alike.
IMAGE_REFRESH_COMMAND = (
    "!python -c \"import platform,shutil,subprocess,datetime,importlib.util as u,importlib.metadata as md; "
    "t=__import__('torch') if u.find_spec('torch') else None; s=shutil.which('nvidia-smi'); "
    "v=subprocess.run([s,'--query-gpu=driver_version','--format=csv,noheader'],capture_output=True,text=True)"
    ".stdout.split('.')[0].strip() if s else ''; "
    "w=' | measured in a Kaggle notebook on '+datetime.date.today().isoformat(); "
    "f=[('python',platform.python_version()),('glibc',platform.libc_ver()[1] or 'none'),('arch',platform.machine()),"
    "('cuda',(t.version.cuda if t else '') or 'none'),('torch',t.__version__ if t else 'none'),('driver',v or 'none')]; "
    "print(chr(10).join('#@ '+k+': '+x+w for k,x in f)); "
    "print(chr(10).join(sorted(set(m.metadata['Name']+'=='+m.version for m in md.distributions() "
    "if m.metadata['Name']),key=str.lower)))\" > /kaggle/working/kaggle_image.txt"
)

_FACT = re.compile(r"#@\s*([a-z0-9_.]+)\s*:\s*(.*?)\s*(?:\|\s*(.*))?")


@dataclass(frozen=True)
class ImageFacts:
    """What ninefit takes for granted about Kaggle's image, each with its source.

    Attributes:
        python: The image's Python, ``X.Y.Z`` (or ``X.Y``).
        glibc: The glibc floor, ``(2, 35)``: no wheel needing a newer one is chosen.
        arch: The machine architecture (``x86_64``).
        cuda: The CUDA of the GPU image's torch (``12.8``), ``none`` where unknown.
        torch: The GPU image's torch build (``2.10.0+cu128``).
        driver: The NVIDIA driver's major version (``580``), ``none`` where unknown.
        min_gpu_capability: The lowest compute capability the image's torch has kernels for.
        retired_shapes: Machine shapes Kaggle's CLI calls retired (the server runs another).
        shapes: Target (``t4x2``...) -> Kaggle machine shape, None where Kaggle has none.
        sources: Key -> where the value comes from.
        path: The file read.
    """

    python: str
    glibc: tuple[int, int]
    arch: str
    cuda: str
    torch: str
    driver: str
    min_gpu_capability: tuple[int, int]
    retired_shapes: tuple[str, ...]
    shapes: Mapping[str, str | None] = field(repr=False)
    sources: Mapping[str, str] = field(repr=False)
    path: Path = KAGGLE_IMAGE_FILE

    @property
    def python_version(self) -> str:
        """``X.Y``: what wheels are resolved for."""
        return ".".join(self.python.split(".")[:2])

    @property
    def platform(self) -> str:
        """The newest manylinux tag the image accepts (``manylinux_2_35_x86_64``)."""
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"

    def machine_shape(self, target: str) -> str | None:
        """Kaggle's machine shape for a ninefit target; None where Kaggle has none (``cpu``).

        Raises:
            PackagingError: The file names no shape for ``target``.
        """
        key = target.strip().lower()
        if key not in self.shapes:
            raise PackagingError(
                f"{self.path} names no Kaggle machine shape for target {target!r}. Expected a "
                f"'#@ shape.{key}: NAME | source' line (or '{NO_SHAPE}' where Kaggle has none); "
                f"it has: {', '.join(sorted(self.shapes))}.")
        return self.shapes[key]

    def summary(self) -> str:
        """One line for the CLI."""
        return (f"Kaggle's image ({self.path.name}): Python {self.python}, glibc "
                f"{self.glibc[0]}.{self.glibc[1]} {self.arch}, CUDA {self.cuda}, torch {self.torch}, "
                f"driver {self.driver}")


def _version_pair(key: str, value: str, source: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", value)
    if not match:
        raise PackagingError(f"{source}: fact {key!r} is {value!r}. Expected 'X.Y' such as '2.35'.")
    return int(match.group(1)), int(match.group(2))


def parse_facts(lines: Iterable[str], source: str = "kaggle_image.txt") -> ImageFacts:
    """The facts of an image file's ``#@`` lines.

    Raises:
        PackagingError: A fact is malformed, unknown, given twice, or missing.
    """
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.startswith("#@"):
            continue
        match = _FACT.fullmatch(raw.strip())
        key = match.group(1) if match else ""
        known = key in MEASURED or key in _OTHER_KEYS or re.fullmatch(r"shape\.[a-z0-9]+", key)
        if not match or not match.group(2) or not known:
            raise PackagingError(
                f"{source}, line {number}: {raw.strip()!r} is not a fact ninefit knows. Expected "
                f"'#@ KEY: VALUE | SOURCE' with KEY one of {', '.join(MEASURED + _OTHER_KEYS)} or "
                "shape.<target>.")
        if key in values:
            raise PackagingError(f"{source}, line {number}: fact {key!r} is given twice.")
        values[key], sources[key] = match.group(2), (match.group(3) or "").strip()
    missing = [k for k in MEASURED + _OTHER_KEYS if k not in values]
    if missing:
        raise PackagingError(f"{source} lacks the fact(s) {', '.join(missing)}. Expected a "
                             "'#@ KEY: VALUE | SOURCE' line for each (see its header).")
    python = values["python"]
    if not re.fullmatch(r"3\.\d{1,2}(?:\.\d+)?", python):
        raise PackagingError(f"{source}: fact 'python' is {python!r}. Expected a CPython version "
                             "such as '3.12.13'.")
    shapes = {k.split(".", 1)[1]: (None if v == NO_SHAPE else v)
              for k, v in values.items() if k.startswith("shape.")}
    return ImageFacts(
        python=python, glibc=_version_pair("glibc", values["glibc"], source), arch=values["arch"],
        cuda=values["cuda"], torch=values["torch"], driver=values["driver"],
        min_gpu_capability=_version_pair("min_gpu_capability", values["min_gpu_capability"], source),
        retired_shapes=tuple(s.strip() for s in values["retired_shapes"].split(",") if s.strip()),
        shapes=shapes, sources=sources, path=Path(source))


@functools.lru_cache(maxsize=4)
def _cached(path: Path, mtime_ns: int) -> ImageFacts:
    return parse_facts(path.read_text(encoding="utf-8").splitlines(), source=str(path))


def image_facts(path: Path | None = None) -> ImageFacts:
    """The facts of ``path`` (default :data:`KAGGLE_IMAGE_FILE`), read once per file version.

    Raises:
        PackagingError: The file cannot be read or a fact is wrong.
    """
    path = Path(path) if path is not None else KAGGLE_IMAGE_FILE
    try:
        mtime = path.stat().st_mtime_ns
        return _cached(path, mtime)
    except OSError as exc:
        raise PackagingError(f"Cannot read Kaggle's image file {path}: {exc}. Expected the file "
                             "ninefit ships as packager/data/kaggle_image.txt.") from exc


def merge_snapshot(snapshot: str, current: str) -> str:
    """``current`` (an image file) with the measured facts and the package list of ``snapshot``.

    ``snapshot`` is what :data:`IMAGE_REFRESH_COMMAND` printed: ``#@`` lines for
    the :data:`MEASURED` keys, then ``name==version`` lines. The header's other
    facts and prose are kept; everything after :data:`LIST_MARKER` is replaced.

    Raises:
        PackagingError: Either text is not what it should be; the result is
            checked to parse before it is returned.
    """
    new_facts: dict[str, str] = {}
    packages = []
    for number, raw in enumerate(snapshot.splitlines(), 1):
        line = raw.strip()
        match = _FACT.fullmatch(line) if line.startswith("#@") else None
        if match and match.group(1) in MEASURED:
            new_facts[match.group(1)] = line
        elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+", line):
            packages.append(line)
        elif line:
            raise PackagingError(f"snapshot, line {number}: {line!r} is neither a measured fact nor "
                                 "'name==version'. Expected the output of the refresh command.")
    if set(new_facts) != set(MEASURED) or not packages:
        raise PackagingError(
            "The snapshot has " + (f"facts {', '.join(sorted(new_facts)) or 'none'}" if set(new_facts) != set(MEASURED)
                                   else "no package") + f". Expected all of {', '.join(MEASURED)} and the "
            "package list, as the refresh command prints them (was it cut short?).")
    lines = current.splitlines()
    if LIST_MARKER not in lines:
        raise PackagingError(f"The image file has no line {LIST_MARKER!r}. Expected the file ninefit ships.")
    head = lines[:lines.index(LIST_MARKER)]
    for i, raw in enumerate(head):
        match = _FACT.fullmatch(raw.strip()) if raw.startswith("#@") else None
        if match and match.group(1) in new_facts:
            head[i] = new_facts[match.group(1)]
    date = re.search(r"measured in a Kaggle notebook on (\S+)", new_facts["python"])
    text = "\n".join([*head, LIST_MARKER, f"# `pip` distributions measured in a Kaggle notebook on "
                      f"{date.group(1) if date else 'an unknown date'} (the refresh command above).",
                      *sorted(packages, key=str.lower)]) + "\n"
    parse_facts(text.splitlines(), source="the merged image file")
    return text


__all__ = [
    "IMAGE_REFRESH_COMMAND",
    "KAGGLE_IMAGE_FILE",
    "LIST_MARKER",
    "MEASURED",
    "NO_SHAPE",
    "ImageFacts",
    "image_facts",
    "merge_snapshot",
    "parse_facts",
]
