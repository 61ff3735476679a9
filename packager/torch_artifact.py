"""The torch artifact: each member's ``torch.export`` program, saved and verified.

Beside its ONNX file a member carries ``program.pt2`` (``torch.export.save``,
batch dimension dynamic), which the runtime's torch backend runs with the
Kaggle image's own torch: the one GPU path with no wheel to match against
Kaggle's CUDA. The program is verified against the source model like the ONNX
file (:func:`packager.verify.verify_program`, every precision the member's
ladder uses, the fp16 rung under autocast).

By default a member whose program does not export or verify carries ONNX only,
the reason in ``report.md``; with ``artifacts = ["onnx", "torch"]`` in its spec
the failure is an error instead. A program exported by a newer torch than the
target image's may not load there (the runtime then falls back to ONNX):
:func:`version_skew` says so at packaging time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from packager.export import _first_line, _quiet
from packager.spec import ModelSpec
from packager.verify import VerifyResult, verify_program
from runtime.errors import ExportError, ParityError

PROGRAM_NAME = "program.pt2"


@dataclass
class TorchArtifact:
    """Outcome for one member: the program (or why there is none) and its parity results."""

    path: Path | None = None
    torch_version: str = ""
    skipped: str = ""
    results: list[VerifyResult] = field(default_factory=list)


def export_program(model, spec: ModelSpec, example: dict[str, np.ndarray], dest: Path) -> Path:
    """``torch.export`` ``model`` with a dynamic batch and save it to ``dest``.

    Raises:
        ExportError: torch.export could not trace the model (TorchScript
            modules, data-dependent control flow, ...), with torch's first line.
    """
    import torch

    args = tuple(torch.from_numpy(np.ascontiguousarray(example[i.name])) for i in spec.inputs)
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet():
            program = torch.export.export(model, args, dynamic_shapes=tuple({0: batch} for _ in args), strict=False)
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(dest))
    except Exception as exc:
        dest.unlink(missing_ok=True)
        raise ExportError(f"model {spec.name!r}: torch.export failed ({type(exc).__name__}: {_first_line(str(exc))})") from exc
    return dest


def build_torch_artifact(model, spec: ModelSpec, example: dict[str, np.ndarray], samples: dict[str, np.ndarray],
                         source: str, folder: Path) -> TorchArtifact:
    """Export and verify one member's program, per precision of its ladder.

    Returns a :class:`TorchArtifact` with ``skipped`` set (and a UserWarning,
    which the package report lists) where the spec left artifacts at their
    default and the program failed; raises where the spec asked for it.
    """
    import torch

    wanted = spec.artifacts is None or "torch" in spec.artifacts
    if not wanted:
        return TorchArtifact(skipped="not asked for (artifacts = [\"onnx\"])")
    if model is None:
        return TorchArtifact(skipped="the model is given as an ONNX file: there is no torch model to export")
    dest = folder / PROGRAM_NAME
    art = TorchArtifact(path=dest, torch_version=torch.__version__)
    try:
        export_program(model, spec, example, dest)
        # The torch program runs the fp32 and fp16 rungs; int8, bf16 and OpenVINO rungs are ONNX files only.
        for precision in dict.fromkeys(v.precision for v in spec.variants if not v.guarded):
            name = next(v.name for v in spec.variants if v.precision == precision)
            art.results.append(verify_program(model, spec, name, precision, dest, samples, source))
    except (ExportError, ParityError) as exc:
        dest.unlink(missing_ok=True)
        if spec.artifacts is not None:  # asked for by name: a missing program is an error, not a note
            raise
        warnings.warn(f"model {spec.name!r} carries ONNX only (no torch program): {exc}", UserWarning, stacklevel=2)
        return TorchArtifact(skipped=str(exc)[:400])
    return art


def _base(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return Version(Version(version).base_version)
    except InvalidVersion:
        return None


def version_skew(exported: str, image: str | None, target: str) -> str:
    """A warning when ``exported`` (torch that wrote the programs) is newer than the image's torch; "" otherwise."""
    if not exported or not image:
        return ""
    a, b = _base(exported), _base(image)
    if a is None or b is None or a <= b:
        return ""
    return (f"the torch programs were exported with torch {exported}, newer than the torch {image} of Kaggle's image "
            f"for --target {target} (packager/data/kaggle_image.txt): torch.export programs are not guaranteed to "
            "load in an older torch. Where one does not, the runtime logs why and runs that member's ONNX file "
            f"instead. To use the torch backend there, package with torch <= {b}.")


def image_torch_version() -> str | None:
    """The torch version Kaggle's image has, from packager/data/kaggle_image.txt (None where not listed)."""
    from packager.offline.wheelmeta import load_provided

    return load_provided().get("torch")


__all__ = ["PROGRAM_NAME", "TorchArtifact", "build_torch_artifact", "export_program", "image_torch_version", "version_skew"]
