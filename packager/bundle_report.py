"""The human-readable verification report written into every bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from packager.fp16 import Fp16Result
from packager.guard import GuardResult
from packager.verify import VerifyResult
from runtime.manifest import Manifest, Member

#: How the report names where a member's weights came from, by spec source.
_ORIGINS = {"factory": "trained (checkpoint)", "torchscript": "trained (TorchScript file)",
            "exported_program": "trained (exported program)", "onnx": "trained (ONNX file)",
            "lightgbm": "trained (LightGBM model file)", "xgboost": "trained (XGBoost model file)",
            "catboost": "trained (CatBoost model file)", "sklearn": "trained (scikit-learn pickle)",
            "transformers": "trained (transformers folder)", "timm": "trained (timm checkpoint)"}


def weights_origin(member: Member) -> str:
    """Whether a member carries trained weights, in the report's words."""
    if not member.trained:
        return "random init, untrained"
    if member.init == "factory":
        return "trained (loaded by the factory itself)"
    return _ORIGINS.get(member.source, "trained")


def render_report(manifest: Manifest, results: Sequence[VerifyResult], notes: Sequence[str],
                  halves: Sequence[tuple[str, Fp16Result]] = (), guards: Sequence[GuardResult] = ()) -> str:
    lines = [f"# ninefit bundle `{manifest.name}`", "", f"Created {manifest.created} by ninefit {manifest.ninefit_version}.", ""]
    lines += ["## Members", "", "| member | weight | exporter | variants | output | batch | weights | torch program |",
              "|---|---|---|---|---|---|---|---|"]
    for m in manifest.members:
        variants = ", ".join(f"{v.name} ({v.precision}{', ' + v.backend if v.backend else ''}, tta {'+'.join(v.tta)}"
                             + (f", value {v.value_factor:.3g}" if v.value_factor < 1 else "") + ")" for v in m.variants)
        program = next((v.torch_file for v in m.variants if v.torch_file), "")
        torch_col = f"{program} (torch {m.torch_version})" if program else f"none: {m.torch_skipped or '-'}".replace("|", "/")
        lines.append(f"| {m.name} | {m.weight:g} | {m.exporter} | {variants} | {m.output} ({m.activation}, {m.n_outputs}) "
                     f"| {m.batch_size} | {weights_origin(m)} | {torch_col} |")
    untrained = [m.name for m in manifest.members if not m.trained]
    if untrained:
        lines += ["", f"**Untrained:** {', '.join(untrained)} carr{'ies' if len(untrained) == 1 else 'y'} random initial "
                  'weights (init = "random" in the spec); every other member carries the trained weights it was given.']
    cpu = [m.name for m in manifest.members if m.device == "cpu"]
    if cpu:
        lines += ["", f"**CPU work:** {', '.join(cpu)} run{'s' if len(cpu) == 1 else ''} on the CPU whatever the target "
                  "(ONNX Runtime has no GPU kernels for their ai.onnx.ml operators): priced and run as CPU work."]
    native = [r for r in results if r.reference != "torch"]
    if native:
        lines += _native_section(native)
    torch_results = [r for r in results if r.reference == "torch"]
    if torch_results or not native:
        lines += ["", "## Verification against the torch model", "",
                  "| member | variant | file | output | batch | max abs err | max rel err | top-1 agreement | tolerance (atol, rtol) | result |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
    for r in torch_results:
        for c in r.checks:
            agree = f"{c.top1_agreement:.1%}" if c.top1_agreement is not None else "-"
            lines.append(
                f"| {r.model} | {r.variant} | {r.file} | {c.output} | {c.batch} | {c.max_abs:.3g} | {c.max_rel:.3g} | {agree} "
                f"| {c.atol:g}, {c.rtol:g} | {'pass' if c.ok else 'FAIL'} |"
            )
    if halves:
        lines += ["", "## fp16 conversion", "", "Inputs and outputs stay fp32; these ops stay fp32 inside the fp16 files "
                  "(the converter cannot type them in fp16, or does not convert them by default):", ""]
        lines += [f"- {name} ({h.path.name}): kept in fp32: {h.describe()}" for name, h in halves]
    if guards:
        lines += _guard_section(guards)
    sources = sorted({r.samples for r in results})
    lines += ["", f"Samples: {'; '.join(sources) or 'none (ONNX-only members are not compared)'}."]
    if notes:
        lines += ["", "## Warnings", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def _native_section(results: Sequence[VerifyResult]) -> list[str]:
    """Converted tree and scikit-learn members against their library's own predictions, per class."""
    lines = ["", "## Parity with the library's own predictions", "",
             "Each converted file against the library's predict on the same rows, per class; a row differs when its "
             "value is outside |onnx - library| <= atol + rtol*|library| (a float32 input can flip a split at a "
             "threshold).", "",
             "| member | variant | file | compared with | output | batch | rows | max abs err | rows differing | allowed "
             "| tolerance (atol, rtol) | result |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for c in r.checks:
            lines.append(f"| {r.model} | {r.variant} | {r.file} | {r.reference} | {c.output} | {c.batch} | {c.shape[0]} "
                         f"| {c.max_abs:.3g} | {c.rows_differing or 0:.2%} | {c.rows_tolerance or 0:.2%} "
                         f"| {c.atol:g}, {c.rtol:g} | {'pass' if c.ok else 'FAIL'} |")
    return lines


def _guard_section(guards: Sequence[GuardResult]) -> list[str]:
    """The low-precision rungs against fp32 on the sample rows (packager.guard), and how each file was made."""
    lines = ["", "## CPU rungs: accuracy guard against fp32", "",
             "Each int8, bf16 or OpenVINO rung predicted the sample rows on the backend it runs on, beside the fp32 "
             "file on onnxruntime: the share of rows whose answer agrees (by the submission mode) and the mean "
             "absolute difference of the probabilities. A rung outside either tolerance is left out of the bundle "
             "(see Warnings); one within has its agreement as its value factor unless the spec gives one.", "",
             "| member | variant | precision | backend | file | rows | agreement | mean abs diff | allowed "
             "(min agreement, max diff) | result |", "|---|---|---|---|---|---|---|---|---|---|"]
    for g in guards:
        lines.append(f"| {g.model} | {g.variant} | {g.precision} | {g.backend} | {g.file} | {g.rows} "
                     f"| {g.agreement:.2%} ({g.compared}) | {g.mean_abs_diff:.3g} | {g.min_agreement:.2%}, "
                     f"{g.max_mean_abs_diff:g} | {'pass' if g.passed else 'LEFT OUT: ' + g.reason()} |")
    made = {(g.model, g.file): g.how for g in guards if g.how}
    if made:
        lines += ["", "int8 files (onnxruntime quantization; which ops compute in int8 and which stay float):", ""]
        lines += [f"- {model} ({file}): {how}" for (model, file), how in made.items()]
    lines += ["", "Samples: " + "; ".join(sorted({g.samples for g in guards})) + "."]
    return lines


def write_report(stage: Path, manifest: Manifest, results: Sequence[VerifyResult], notes: Sequence[str],
                 halves: Sequence[tuple[str, Fp16Result]] = (), guards: Sequence[GuardResult] = ()) -> None:
    (stage / "report.md").write_text(render_report(manifest, results, notes, halves, guards), encoding="utf-8")
    (stage / "verification.json").write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")


__all__ = ["render_report", "weights_origin", "write_report"]
