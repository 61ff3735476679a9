"""Tiny hand-made wheels for offline wheelhouse and notebook tests (no pip, no network)."""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER = "3.10" if HERE != "3.10" else "3.12"
A, B, C = "ninefit-demo-a", "ninefit-demo-b", "ninefit-demo-c"


def make_wheel(folder: Path, name: str, version: str = "1.0", requires: tuple[str, ...] = (), code: str = "",
               tag: str = "py3-none-any", *, module: str | None = None, top_level: bool = False) -> Path:
    """Write a minimal installable wheel.

    Its module is ``module`` (default: ``name`` with '_' for '-') holding
    ``code`` (default ``VALUE = name``); ``top_level`` adds top_level.txt.
    """
    dist = name.replace("-", "_")
    module = module or dist
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": code or f"VALUE = {name!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    if top_level:
        files[f"{info}/top_level.txt"] = f"{module}\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel
