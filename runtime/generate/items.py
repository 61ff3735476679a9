"""A generative run's items: the test table's prompts (template or hook, tokenised, checked against the context),
the journal of answered items (what a killed run resumes from), and the submission written from them."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import DataError, HookError
from runtime.fileio import atomic_write, guarded
from runtime.manifest import GenerateSpec


@dataclass
class Item:
    """One test row: its id, its prompt's tokens (after truncation), and why it is refused ("" when it is not)."""

    index: int
    id: str
    prompt_ids: list[int]
    refused: str = ""
    truncated: int = 0


def read_rows(path: Path, id_column: str, needed: tuple[str, ...]) -> list[dict[str, str]]:
    """Every row of the test CSV as text, checked for the id column and ``needed`` columns, ids unique.

    Raises:
        DataError: the file is missing or unreadable, a column is missing, or an id repeats.
    """
    if not path.is_file():
        raise DataError(f"test table {path} not found (expected the [data] test file in the data folder)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in (id_column, *needed) if c not in header]
            if missing:
                raise DataError(f"test table {path} has no column(s) {', '.join(missing)}; its columns: "
                                f"{', '.join(header) or 'none'}")
            rows = [{k: v or "" for k, v in r.items() if k is not None} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"test table {path} cannot be read as a UTF-8 CSV ({exc})") from exc
    seen: set[str] = set()
    for n, row in enumerate(rows):
        if row[id_column] in seen:
            raise DataError(f"test table {path}: id {row[id_column]!r} repeats (row {n + 1}); ids must be unique")
        seen.add(row[id_column])
    return rows


def prompt_text(spec: GenerateSpec, row: dict[str, str], hook: Callable[[dict[str, str]], Any] | None) -> str:
    """The prompt of a row: the hook's text, else the template filled with the row's columns.

    Raises:
        DataError: the template names a column the table lacks.
        HookError: the hook raised or returned something other than text.
    """
    if hook is not None:
        try:
            text = hook(dict(row))
        except Exception as exc:
            raise HookError(f"prompt hook {spec.prompt_hook!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(text, str):
            raise HookError(f"prompt hook {spec.prompt_hook!r} returned a {type(text).__name__}; expected the prompt "
                            "as text")
        return text
    try:
        return spec.template.format_map({"prompt": row.get(spec.prompt_column, ""), **row})
    except KeyError as exc:
        raise DataError(f"template {spec.template!r} names {exc}, which is no column of the test table") from None
    except (ValueError, IndexError) as exc:
        raise DataError(f"template {spec.template!r} is not a valid format string ({exc}); write a literal brace "
                        "as {{ or }}") from None


def make_item(index: int, item_id: str, ids: list[int], spec: GenerateSpec, context: int) -> Item:
    """The item of a tokenised prompt, checked against the context: a prompt over ``context - max_new_tokens``
    tokens is refused (too_long = "refuse": the fallback answer), or keeps its last tokens ("truncate")."""
    room = context - spec.max_new_tokens if context else 0
    if not context or len(ids) <= room:
        return Item(index, item_id, ids)
    if room < 1:
        return Item(index, item_id, ids, refused=f"the context ({context} tokens) leaves no room for a prompt beside "
                                                 f"max_new_tokens = {spec.max_new_tokens}")
    if spec.too_long == "truncate":
        return Item(index, item_id, ids[len(ids) - room:], truncated=len(ids) - room)
    return Item(index, item_id, ids, refused=f"prompt of {len(ids)} tokens over the {room} the context allows "
                                             f"({context} less max_new_tokens {spec.max_new_tokens}; too_long = refuse)")


class Journal:
    """Answered items, one JSON line each, appended and flushed to disk before the next item starts: a run killed
    at any moment resumes from every item whose line is whole (a torn last line is dropped)."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the line being written when the run was killed
                if isinstance(entry, dict) and "id" in entry and "answer" in entry:
                    self.done[str(entry["id"])] = entry

    def add(self, entry: dict[str, Any]) -> None:
        remedy = "Give --work-dir a folder on a disk with room."
        with guarded(self.path, "the generation journal", remedy):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.done[str(entry["id"])] = entry


def write_submission(path: Path, id_column: str, answer_column: str, ids: list[str], answers: dict[str, str],
                     fallback: str) -> None:
    """The submission, every test id in order, atomically: an item not answered yet holds the fallback answer."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([id_column, answer_column])
    for i in ids:
        writer.writerow([i, answers.get(i, fallback)])
    atomic_write(path, buf.getvalue(), what="the submission", remedy="Free some space there, or write to another folder.")


def data_key(parts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def check_hook_ref(ref: str, what: str) -> None:
    if ref and ":" not in ref:
        raise HookError(f"{what} {ref!r}: expected \"module:function\"")


__all__ = ["Item", "Journal", "check_hook_ref", "data_key", "make_item", "prompt_text", "read_rows", "write_submission"]
