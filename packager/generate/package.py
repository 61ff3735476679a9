"""``ninefit package`` of a generative spec: the causal LM's folder carried whole and checksummed, verified by
loading it offline from the staged bundle and generating on the first test prompts.

The bundle: ``models/<name>/`` (every file of the save_pretrained folder: config, weights, tokenizer,
generation config), ``hooks/`` (the prompt and extractor hooks), the runtime, ``generate_profile.json`` (what
verification measured: prefill and decode per token here, the public prompts' lengths), ``report.md`` and the
manifest (``generate``; no ensemble members). Written in a staging folder and renamed into place only when
everything passed, as every bundle is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packager.build import UNCHECKED_FILES, _install, _set_modes, _sweep_leftovers, _vendor_runtime
from packager.generate.spec import GenerativeSpecIn, parse_generative
from packager.sources.hf import check_folder, check_tokenizer
from runtime.bundle import checksum_tree
from runtime.errors import BundleError, DataError, ModelLoadError
from runtime.generate import Extractor, GenCosts, load_engine
from runtime.generate.items import make_item, prompt_text, read_rows
from runtime.hooks import HOOKS_DIR, load_hook
from runtime.manifest import MANIFEST_NAME, Manifest, SubmissionSpec

LOG = logging.getLogger("ninefit.package")
#: What verification measured, beside the manifest (read by the estimate).
PROFILE_NAME = "generate_profile.json"
#: New tokens per verification sample at most (a reasoning model's 30k-token budget is no check's business).
VERIFY_TOKENS = 64


@dataclass
class GenerativePackageResult:
    bundle: Path
    manifest: Manifest
    profile: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def package_generative(spec_path: str | os.PathLike, dest: str | os.PathLike, *, force: bool = False,
                       target: str = "", steps: Sequence[Callable[[Path, Any, Manifest], Manifest]] = ()
                       ) -> GenerativePackageResult:
    """Package a generative spec into ``dest`` (see the module's docstring).

    ``steps``: further packaging steps on the staged bundle, after its report is written and before its files
    are checksummed (:func:`packager.offline.wheelhouse_step`: the wheels an engine the image lacks needs, such
    as vLLM's, when the user asks for them).

    Raises:
        SpecError, DataError, ModelLoadError, PackagingError: what is wrong, named; nothing is written.
    """
    spec = parse_generative(spec_path)
    check_folder(spec.generate.name, spec.folder)
    check_tokenizer(spec.generate.name, spec.folder, str(spec.folder))
    ids = _check_data(spec)
    dest = Path(dest).resolve()
    if dest.exists() and not force:
        raise BundleError(f"{dest} already exists; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(dest)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        shutil.copytree(spec.folder, stage / spec.generate.folder,
                        ignore=shutil.ignore_patterns(".*", "__pycache__", "checkpoint-*", "optimizer.pt"))
        for module in spec.hooks:
            (stage / HOOKS_DIR).mkdir(exist_ok=True)
            shutil.copy2(module, stage / HOOKS_DIR / module.name)
        _vendor_runtime(stage)
        LOG.info(f"{spec.generate.name}: {spec.folder} carried as {spec.generate.folder}/ "
                 f"({_bytes(stage / spec.generate.folder) / 1e6:.1f} MB); verifying on {spec.verify_prompts} prompt(s)")
        profile, warnings = verify_generation(spec, stage)
        (stage / PROFILE_NAME).write_text(json.dumps(profile, indent=2), encoding="utf-8")
        manifest = Manifest(name=spec.name, members=(), data=spec.data,
                            submission=SubmissionSpec(id_column=spec.data.id_column,
                                                      columns=(spec.generate.answer_column,), mode="values",
                                                      sample=spec.sample_submission.name),
                            generate=spec.generate, serve=spec.serve, target=target,
                            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (stage / "report.md").write_text(_report(spec, profile, warnings, len(ids)), encoding="utf-8")
        for step in steps:
            manifest = step(stage, spec, manifest)
        manifest = replace(manifest, files=checksum_tree(stage, exclude=UNCHECKED_FILES))
        (stage / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        _set_modes(stage)
        _install(stage, dest, force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return GenerativePackageResult(bundle=dest, manifest=manifest, profile=profile, warnings=warnings)


def _check_data(spec: GenerativeSpecIn) -> list[str]:
    """The test table's ids (the columns the template names present), the sample submission's the same ids."""
    import string

    g = spec.generate
    named = {f for _, f, _, _ in string.Formatter().parse(g.template) if f}
    needed = () if g.prompt_hook else tuple(sorted({g.prompt_column} | named - {"prompt"}))
    rows = read_rows(spec.test_path, spec.data.id_column, needed)
    ids = [r[spec.data.id_column] for r in rows]
    sample = read_rows(spec.sample_submission, spec.data.id_column, (g.answer_column,))
    if sorted(r[spec.data.id_column] for r in sample) != sorted(ids):
        raise DataError(f"sample submission {spec.sample_submission} does not hold the test table's ids "
                        f"({len(sample)} rows against {len(ids)})")
    return ids


def verify_generation(spec: GenerativeSpecIn, stage: Path) -> tuple[dict[str, Any], list[str]]:
    """Load the staged folder offline (transformers, on this machine), generate on the first prompts, measure.

    Raises:
        ModelLoadError: the folder does not load, or generates nothing.
    """
    g = spec.generate
    try:
        engine = load_engine("transformers", stage / g.folder, dtype=g.dtype)
    except Exception as exc:
        raise ModelLoadError(f"model {g.name!r}: {spec.folder} does not load as a causal LM offline "
                             f"({type(exc).__name__}: {exc})") from exc
    hooks = stage / HOOKS_DIR
    prompt_hook = load_hook(g.prompt_hook, hooks) if g.prompt_hook else None
    extract = Extractor(g.extractor, load_hook(g.extractor_hook, hooks) if g.extractor_hook else None, g.extractor_hook)
    rows = read_rows(spec.test_path, spec.data.id_column, ())
    context = g.context_length or engine.context_length
    lengths, refused, truncated = [], 0, 0
    for n, row in enumerate(rows):
        item = make_item(n, row[spec.data.id_column], engine.encode(prompt_text(g, row, prompt_hook)), g, context)
        lengths.append(len(item.prompt_ids) + item.truncated)
        refused += bool(item.refused)
        truncated += bool(item.truncated)
    costs, checks = GenCosts(), []
    for row in rows[:spec.verify_prompts]:
        ids = engine.encode(prompt_text(g, row, prompt_hook))[-max(1, context - g.max_new_tokens):] if context else []
        n = min(g.samples, 2)
        gen = engine.generate([ids], [n], min(g.max_new_tokens, VERIFY_TOKENS), temperature=g.temperature,
                              top_p=g.top_p, max_time_s=None, seed=g.seed)
        costs.observe(n, gen.prompt_tokens, gen.prefill_s, gen.steps, gen.decode_s)
        if not any(gen.new_tokens):
            raise ModelLoadError(f"model {g.name!r} generated no token for the prompt of {row[spec.data.id_column]!r}")
        checks.append({"id": row[spec.data.id_column], "texts": [t[:200] for t in gen.texts],
                       "answers": [extract(t) for t in gen.texts], "new_tokens": gen.new_tokens})
    warnings = []
    if not any(a is not None for c in checks for a in c["answers"]):
        warnings.append(f"the extractor found no answer in any verification sample (first {VERIFY_TOKENS} tokens at "
                        "most): every item would get the fallback answer unless longer generations end with one")
    if refused:
        warnings.append(f"{refused} of {len(rows)} public prompt(s) are longer than the context allows: refused "
                        "(they get the fallback answer; too_long = \"truncate\" keeps their end)")
    engine.close()
    weights = sum(p.stat().st_size for p in (stage / g.folder).glob("*.safetensors")) or _bytes(stage / g.folder)
    return {"model_bytes": weights, "context_length": context, "costs": costs.to_dict(), "verified": checks,
            "prompt_tokens": {"mean": statistics.fmean(lengths) if lengths else 0.0, "max": max(lengths, default=0),
                              "items": len(lengths), "refused": refused, "truncated": truncated},
            "host": _host()}, warnings


def _host() -> dict[str, Any]:
    from runtime.machine import describe_machine

    try:
        return dict(describe_machine())
    except Exception:  # a description is a nicety; packaging does not stop for it
        return {}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _report(spec: GenerativeSpecIn, profile: dict[str, Any], warnings: list[str], items: int) -> str:
    g, c = spec.generate, profile["costs"]
    lines = [f"# {spec.name}: generative bundle", "",
             f"- model `{g.name}`: {profile['model_bytes'] / 1e6:.1f} MB of weights, context "
             f"{profile['context_length']} tokens, from {spec.folder}",
             f"- {items} public item(s); prompt tokens mean {profile['prompt_tokens']['mean']:.1f}, max "
             f"{profile['prompt_tokens']['max']}; refused {profile['prompt_tokens']['refused']}, truncated "
             f"{profile['prompt_tokens']['truncated']} (too_long = {g.too_long})",
             f"- sampling: {g.samples} samples per item at most, agree {g.agree or g.samples // 2 + 1}, "
             f"temperature {g.temperature}, top_p {g.top_p}, max_new_tokens {g.max_new_tokens}, {g.aggregation} "
             f"(tie: {g.tie}), fallback answer {g.fallback_answer!r}",
             f"- measured here (transformers, CPU unless a GPU is here): prefill "
             f"{c['prefill_s_per_token'] * 1e3:.3g} ms/token, decode "
             + ", ".join(f"{r:,.0f} tokens/s at batch {b}" for b, r in c["decode_tokens_per_s"].items()),
             "", "## Verification (offline, from the staged bundle)", ""]
    for check in profile["verified"]:
        lines.append(f"- {check['id']}: answers {check['answers']}, texts {check['texts']}")
    lines += [""] + [f"WARNING: {w}" for w in warnings]
    if g.engine in ("auto", "vllm"):
        lines.append("vLLM (engine = auto on a GPU with vllm installed) is not verified here: packaging verifies "
                     "with transformers.")
    return "\n".join(lines) + "\n"


__all__ = ["PROFILE_NAME", "VERIFY_TOKENS", "GenerativePackageResult", "package_generative", "verify_generation"]
