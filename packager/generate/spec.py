"""A generative spec: ``[[model]]`` with ``causal_lm = "folder"`` (docs/spec.md, "Generative models"), parsed and
checked into a :class:`GenerativeSpecIn` (the manifest's :class:`runtime.manifest.GenerateSpec` and the paths)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from packager.spec.data import parse_data, read_header
from packager.spec.serve import parse_serve
from packager.spec.tables import _err, _get, _path
from runtime.errors import SpecError
from runtime.manifest import (
    GENERATE_AGGREGATIONS,
    GENERATE_ENGINES,
    GENERATE_TIES,
    GENERATE_TOO_LONG,
    DataSpec,
    GenerateSpec,
    ServeSpec,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The top-level keys of a generative spec.
TOP_KEYS = ("name", "data", "model", "verify_prompts", "serve")
_HOOK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class GenerativeSpecIn:
    name: str
    root: Path
    data: DataSpec
    test_path: Path
    sample_submission: Path
    folder: Path  # the save_pretrained folder, as the user has it
    generate: GenerateSpec  # folder relative to the bundle: models/<name>
    hooks: tuple[Path, ...]  # the hook modules to carry (prompt_hook, extractor_hook)
    verify_prompts: int = 2
    serve: ServeSpec | None = None  # [serve]: one item (or a batch of rows) per predict call; None: a file run


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec file {path} cannot be read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid TOML: {exc}") from exc


def is_generative_spec(path: str | os.PathLike) -> bool:
    """Whether the spec's ``[[model]]`` tables give a ``causal_lm`` (unreadable: False, the ordinary parse says why)."""
    try:
        raw = _read(Path(path))
    except SpecError:
        return False
    models = raw.get("model")
    return isinstance(models, list) and any(isinstance(t, dict) and "causal_lm" in t for t in models)


def _number(t: dict, key: str, where: str, kind: type, default, low: float, what: str):
    return _get(t, key, where, kind, default, valid=lambda x: x >= low, expected=what)


def parse_generative(path: str | os.PathLike) -> GenerativeSpecIn:
    """Parse and check a generative spec (one ``[[model]]`` with ``causal_lm``).

    Raises:
        SpecError: an unknown or bad key, a missing file, more than one model (each named with what was expected).
    """
    path = Path(path)
    raw = _read(path)
    root = path.parent.resolve()
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(unknown)} at the top level of a generative spec; expected "
                        f"{', '.join(TOP_KEYS)}")
    name = _get(raw, "name", "the top level", str, path.stem, valid=bool, expected="a non-empty string")
    data, test_path, sample_path, _hooks = parse_data(raw, root)
    if data.format != "table" or data.features:
        raise SpecError('[data] of a generative spec: format = "table" (a CSV of prompts) and no features hook')
    models = raw.get("model")
    if not isinstance(models, list) or len(models) != 1:
        raise SpecError("a generative spec has exactly one [[model]] (the causal LM); ensembles of generative models "
                        "are not supported")
    t = models[0]
    where = f"[[model]] {t.get('name', '#1')!r}"
    keys = {f.name for f in fields(GenerateSpec)} - {"folder"} | {"causal_lm"}
    unknown = sorted(set(t) - keys)
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(unknown)} in {where}; a causal_lm model takes "
                        f"{', '.join(sorted(keys))}")
    spec = _generate_spec(t, where)
    folder = _path(root, _get(t, "causal_lm", where, str, valid=bool,
                              expected="the path of a causal LM's save_pretrained folder"))
    hooks = []
    for key in ("prompt_hook", "extractor_hook"):
        ref = getattr(spec, key)
        if ref:
            module = root / f"{ref.split(':')[0]}.py"
            if not module.is_file():
                raise _err(where, f"{key} = {ref!r}: module file {module} not found (a .py file next to the spec)")
            hooks.append(module)
    verify = _get(raw, "verify_prompts", "the top level", int, 2, valid=lambda n: n >= 1,
                  expected="a whole number of prompts, at least 1")
    # [serve]: the evaluation-API shape, its answer the sample submission's answer column (one value per row)
    serve = parse_serve(raw, root, data, test_path, read_header(test_path), "values", (spec.answer_column,))
    if serve is not None and serve.fallback:
        raise _err("[serve.fallback]", f"a generative model answers {where}'s fallback_answer "
                                       f"({spec.fallback_answer!r}) where it finds nothing: leave [serve.fallback] out")
    return GenerativeSpecIn(name=name, root=root, data=data, test_path=test_path, sample_submission=sample_path,
                            folder=folder, generate=spec, hooks=tuple(hooks), verify_prompts=verify, serve=serve)


def _generate_spec(t: dict, where: str) -> GenerateSpec:
    d = GenerateSpec(name="", folder="")
    name = _get(t, "name", where, str, valid=lambda s: bool(_NAME.fullmatch(s)),
                expected="a name of letters, digits, '_', '.' or '-'")
    hook = 'a "module:function" in a .py file next to the spec'
    extractor = _get(t, "extractor", where, str, "")
    if extractor:
        try:
            re.compile(extractor)
        except re.error as exc:
            raise _err(where, f"extractor = {extractor!r} is not a valid regular expression ({exc})") from None
    if extractor and "extractor_hook" in t:
        raise _err(where, "give extractor (a regex) or extractor_hook, not both")
    if "template" in t and "prompt_hook" in t:
        raise _err(where, "give template or prompt_hook, not both")
    samples = _number(t, "samples", where, int, d.samples, 1, "a whole number of samples per item, at least 1")
    spec = GenerateSpec(
        name=name, folder=f"models/{name}",
        prompt_column=_get(t, "prompt_column", where, str, d.prompt_column, valid=bool, expected="a column name"),
        answer_column=_get(t, "answer_column", where, str, d.answer_column, valid=bool, expected="a column name"),
        template=_get(t, "template", where, str, d.template, valid=bool, expected='a format string, e.g. "{prompt}"'),
        prompt_hook=_get(t, "prompt_hook", where, str, "", valid=lambda s: bool(_HOOK.fullmatch(s)), expected=hook),
        max_new_tokens=_number(t, "max_new_tokens", where, int, d.max_new_tokens, 1, "a whole number, at least 1"),
        temperature=_number(t, "temperature", where, float, d.temperature, 0.0, "a number >= 0 (0: greedy)"),
        top_p=_get(t, "top_p", where, float, d.top_p, valid=lambda x: 0 < x <= 1, expected="a number in (0, 1]"),
        samples=samples,
        round_samples=_number(t, "round_samples", where, int, 0, 0, "a whole number >= 0 (0: as many as fit)"),
        agree=_number(t, "agree", where, int, 0, 0, "a whole number >= 0 (0: a majority of samples)"),
        extractor=extractor,
        extractor_hook=_get(t, "extractor_hook", where, str, "", valid=lambda s: bool(_HOOK.fullmatch(s)),
                            expected=hook),
        aggregation=_get(t, "aggregation", where, str, d.aggregation, GENERATE_AGGREGATIONS),
        tie=_get(t, "tie", where, str, d.tie, GENERATE_TIES),
        fallback_answer=str(_get(t, "fallback_answer", where, (str, int), d.fallback_answer)),
        context_length=_number(t, "context_length", where, int, 0, 0, "a whole number of tokens >= 0 (0: the model's)"),
        too_long=_get(t, "too_long", where, str, d.too_long, GENERATE_TOO_LONG),
        cap=_number(t, "cap", where, float, d.cap, 1.0, "a number >= 1 (times an item's share)"),
        floor=_get(t, "floor", where, float, d.floor, valid=lambda x: 0 <= x <= 1, expected="a number in [0, 1]"),
        probe_items=_number(t, "probe_items", where, int, d.probe_items, 0, "a whole number >= 0"),
        batch_items=_number(t, "batch_items", where, int, d.batch_items, 1,
                            "a whole number of items answered together, at least 1"),
        engine=_get(t, "engine", where, str, d.engine, GENERATE_ENGINES),
        dtype=_get(t, "dtype", where, str, d.dtype, ("auto", "float32", "float16", "bfloat16")),
        seed=_number(t, "seed", where, int, 0, 0, "a whole number >= 0"),
    )
    if spec.agree > spec.samples:
        raise _err(where, f"agree = {spec.agree} is more than samples = {spec.samples}: the vote could never stop early")
    return spec


__all__ = ["TOP_KEYS", "GenerativeSpecIn", "is_generative_spec", "parse_generative"]
