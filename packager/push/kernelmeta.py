"""``kernel-metadata.json``: the notebook as ``kaggle kernels push`` uploads it.

The Kaggle CLI reads this file from the folder it pushes (format:
Kaggle/kaggle-cli ``docs/kernels_metadata.md``; fields as ``kernels_push`` in
``kaggle/api/kaggle_api_extended.py`` reads them). :class:`KernelMetadata`
writes a code-competition notebook's: private, internet off (a notebook saved
with internet on cannot be submitted), ``enable_gpu`` with an explicit
``machine_shape`` (alone it has given users a P100), the bundle's dataset and
the competition attached. :func:`check_kernel_metadata` reads a written file
back field by field, so what the CLI will send is checked, not what was meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.offline.dataset import slugify
from runtime.errors import PackagingError
from runtime.fileio import atomic_write

KERNEL_METADATA = "kernel-metadata.json"
KERNEL_SLUG_MIN, KERNEL_SLUG_MAX = 5, 50
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_FIELDS = ("id", "title", "code_file", "language", "kernel_type", "is_private", "enable_gpu", "enable_tpu",
           "enable_internet", "machine_shape", "dataset_sources", "competition_sources", "kernel_sources",
           "model_sources", "docker_image")


@dataclass(frozen=True)
class KernelMetadata:
    """A code-competition notebook's ``kernel-metadata.json``.

    Attributes:
        owner: Kaggle user owning the notebook.
        slug: The notebook's slug (``kaggle.com/code/OWNER/SLUG``).
        title: Its title; must slugify to ``slug`` (the CLI warns otherwise).
        code_file: The ``.ipynb`` file, relative to the folder pushed.
        dataset_sources: ``owner/slug`` of attached datasets (the bundle's first).
        competition_sources: Competition slugs attached (the competition's data).
        model_sources: ``owner/model/framework/variation/version`` of attached models.
        kernel_sources: ``owner/slug`` of attached notebooks (their output).
        machine_shape: Kaggle's accelerator; None: a CPU notebook (``enable_gpu`` false).
        docker_image: A pinned image; None: the latest.
    """

    owner: str
    slug: str
    title: str
    code_file: str
    dataset_sources: tuple[str, ...]
    competition_sources: tuple[str, ...] = ()
    model_sources: tuple[str, ...] = ()
    kernel_sources: tuple[str, ...] = ()
    machine_shape: str | None = None
    docker_image: str | None = None

    @property
    def id(self) -> str:
        return f"{self.owner}/{self.slug}"

    def to_json(self) -> dict[str, Any]:
        """The JSON object the Kaggle CLI reads."""
        data: dict[str, Any] = {
            "id": self.id, "title": self.title, "code_file": self.code_file, "language": "python",
            "kernel_type": "notebook", "is_private": True, "enable_gpu": self.machine_shape is not None,
            "enable_tpu": False, "enable_internet": False,
        }
        if self.machine_shape is not None:
            data["machine_shape"] = self.machine_shape
        data.update(dataset_sources=list(self.dataset_sources), competition_sources=list(self.competition_sources),
                    kernel_sources=list(self.kernel_sources), model_sources=list(self.model_sources))
        if self.docker_image:
            data["docker_image"] = self.docker_image
        return data


def title_of(slug: str) -> str:
    """A title that slugifies back to ``slug`` (``digits-submission`` -> ``digits submission``)."""
    return slug.replace("-", " ")


def kernel_slug(text: str) -> str:
    """A notebook slug from any text, checked against Kaggle's rules.

    Raises:
        PackagingError: Nothing usable is left, or it is too short or long.
    """
    slug = slugify(text)
    if not KERNEL_SLUG_MIN <= len(slug) <= KERNEL_SLUG_MAX or not _SLUG.fullmatch(slug):
        raise PackagingError(f"Notebook slug {slug!r} (from {text!r}) is not usable. Expected "
                             f"{KERNEL_SLUG_MIN} to {KERNEL_SLUG_MAX} lowercase letters, digits and single "
                             "hyphens; pass --kernel SLUG.")
    return slug


def write_kernel_metadata(meta: KernelMetadata, folder: Path) -> Path:
    """Writes ``folder/kernel-metadata.json`` (atomically) and returns its path."""
    return atomic_write(Path(folder) / KERNEL_METADATA, json.dumps(meta.to_json(), indent=2) + "\n")


def _strings(data: Mapping[str, Any], key: str, problems: list[str], pattern: re.Pattern[str] | None,
             form: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key} is {value!r}; expected a list of {form}")
        return []
    bad = [v for v in value if pattern is not None and not pattern.fullmatch(v)]
    if bad:
        problems.append(f"{key} has {', '.join(map(repr, bad))}; expected {form}")
    return value


def check_kernel_metadata(path: Path) -> list[str]:
    """Reads a ``kernel-metadata.json`` back and names every field that would cost a submission.

    Returns:
        One sentence per problem (empty when the file is right): unreadable
        JSON, an unknown field, a missing or malformed id, title or code file,
        a language or kernel type other than python notebook, a public
        notebook, internet on, a GPU without a machine shape (or a shape
        without the GPU), a TPU, no dataset attached, malformed sources.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path} is not readable JSON ({exc})"]
    if not isinstance(data, dict):
        return [f"{path} holds {type(data).__name__}, expected a JSON object"]
    problems = [f"unknown field {k!r} (a typo? the CLI ignores it)" for k in data if k not in _FIELDS]
    ident = data.get("id")
    owner, _, slug = ident.partition("/") if isinstance(ident, str) else ("", "", "")
    if not (_OWNER.fullmatch(owner) and _SLUG.fullmatch(slug) and KERNEL_SLUG_MIN <= len(slug) <= KERNEL_SLUG_MAX):
        problems.append(f"id is {ident!r}; expected 'owner/notebook-slug' ({KERNEL_SLUG_MIN}-{KERNEL_SLUG_MAX} "
                        "lowercase letters, digits, hyphens)")
    title = data.get("title")
    if not isinstance(title, str) or len(title) < 5 or slugify(title) != slug:
        problems.append(f"title is {title!r}; expected at least 5 characters that slugify to the id's slug "
                        f"{slug!r} (else Kaggle may make another notebook)")
    code = data.get("code_file")
    if not isinstance(code, str) or not code.endswith(".ipynb") or not (path.parent / code).is_file():
        problems.append(f"code_file is {code!r}; expected a .ipynb file next to {path.name}")
    for key, want in (("language", "python"), ("kernel_type", "notebook")):
        if data.get(key) != want:
            problems.append(f"{key} is {data.get(key)!r}; expected {want!r}")
    if data.get("is_private") is not True:
        problems.append(f"is_private is {data.get('is_private')!r}; expected true (a public notebook shows "
                        "your solution to everyone)")
    if data.get("enable_internet") is not False:
        problems.append(f"enable_internet is {data.get('enable_internet')!r}; expected false (a notebook saved "
                        "with internet on cannot be submitted to a code competition)")
    if data.get("enable_tpu", False) is not False:
        problems.append(f"enable_tpu is {data.get('enable_tpu')!r}; expected false (ninefit targets GPUs and CPUs)")
    gpu, shape = data.get("enable_gpu"), data.get("machine_shape")
    if not isinstance(gpu, bool):
        problems.append(f"enable_gpu is {gpu!r}; expected true or false")
    elif gpu and not (isinstance(shape, str) and shape):
        problems.append("enable_gpu is true without a machine_shape; expected an explicit shape such as "
                        "NvidiaTeslaT4 (enable_gpu alone has given users a P100)")
    elif not gpu and shape:
        problems.append(f"machine_shape is {shape!r} with enable_gpu false; expected both or neither")
    if not _strings(data, "dataset_sources", problems, re.compile(r"[^/\s]+/[^/\s]+"), "'owner/dataset-slug'"):
        problems.append("dataset_sources is empty; expected the bundle's dataset (the notebook reads it)")
    _strings(data, "competition_sources", problems, re.compile(r"[a-z0-9][a-z0-9-]*"), "competition slugs")
    _strings(data, "kernel_sources", problems, re.compile(r"[^/\s]+/[^/\s]+"), "'owner/notebook-slug'")
    _strings(data, "model_sources", problems, re.compile(r"[^/\s]+(?:/[^/\s]+){4}"),
             "'owner/model/framework/variation/version'")
    return problems


__all__ = ["KERNEL_METADATA", "KernelMetadata", "check_kernel_metadata", "kernel_slug", "title_of",
           "write_kernel_metadata"]
