"""The human-readable verification report written into every bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from packager.verify import VerifyResult
from runtime.manifest import Manifest


def render_report(manifest: Manifest, results: Sequence[VerifyResult], notes: Sequence[str]) -> str:
    lines = [f"# ninefit bundle `{manifest.name}`", "", f"Created {manifest.created} by ninefit {manifest.ninefit_version}.", ""]
    lines += ["## Members", "", "| member | weight | exporter | variants | output | batch | torch program |",
              "|---|---|---|---|---|---|---|"]
    for m in manifest.members:
        variants = ", ".join(f"{v.name} ({v.precision}, tta {'+'.join(v.tta)})" for v in m.variants)
        program = next((v.torch_file for v in m.variants if v.torch_file), "")
        torch_col = f"{program} (torch {m.torch_version})" if program else f"none: {m.torch_skipped or '-'}".replace("|", "/")
        lines.append(f"| {m.name} | {m.weight:g} | {m.exporter} | {variants} | {m.output} ({m.activation}, {m.n_outputs}) "
                     f"| {m.batch_size} | {torch_col} |")
    lines += ["", "## Verification against the torch model", "",
              "| member | variant | file | output | batch | max abs err | max rel err | top-1 agreement | tolerance (atol, rtol) | result |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for c in r.checks:
            agree = f"{c.top1_agreement:.1%}" if c.top1_agreement is not None else "-"
            lines.append(
                f"| {r.model} | {r.variant} | {r.file} | {c.output} | {c.batch} | {c.max_abs:.3g} | {c.max_rel:.3g} | {agree} "
                f"| {c.atol:g}, {c.rtol:g} | {'pass' if c.ok else 'FAIL'} |"
            )
    sources = sorted({r.samples for r in results})
    lines += ["", f"Samples: {'; '.join(sources) or 'none (ONNX-only members are not compared)'}."]
    if notes:
        lines += ["", "## Warnings", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_report(stage: Path, manifest: Manifest, results: Sequence[VerifyResult], notes: Sequence[str]) -> None:
    (stage / "report.md").write_text(render_report(manifest, results, notes), encoding="utf-8")
    (stage / "verification.json").write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")


__all__ = ["render_report", "write_report"]
