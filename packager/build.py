"""``ninefit package``: spec -> exported, verified, checksummed bundle folder.

The bundle is built in a temporary folder beside the destination and renamed
into place only when everything passed, so an interrupted or failed package
never leaves a half-written bundle (and never destroys the previous one).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

import runtime
from packager.dataset import METADATA_FILENAME
from packager.export import copy_onnx, export_model, to_fp16
from packager.report import write_report
from packager.spec import ModelSpec, Spec, load_spec
from packager.torch_artifact import build_torch_artifact, image_torch_version, version_skew
from packager.torchload import load_torch_model
from packager.verify import VerifyResult, verify_file
from runtime.bundle import checksum_tree
from runtime.data import open_test_data
from runtime.errors import BundleError, SpecError
from runtime.manifest import MANIFEST_NAME, Manifest, Member, SubmissionSpec, Variant
from runtime.submission import match_ids, read_sample

#: Files of the bundle folder that the manifest does not checksum: the manifest
#: itself, and ``dataset-metadata.json``, which describes the upload to the
#: Kaggle CLI and is never uploaded (``kaggle datasets create`` skips it), so
#: listing it would fail the checksum check on Kaggle as a missing file.
UNCHECKED_FILES = (MANIFEST_NAME, METADATA_FILENAME)


@dataclass(frozen=True)
class PackageOptions:
    force: bool = False  # replace an existing bundle folder
    target: str = ""  # Kaggle accelerator the bundle is for (t4x2, cpu, ...): recorded; torch version skew checked against its image
    hooks: tuple[Callable[[Path, Spec, Manifest], Manifest], ...] = ()  # extra steps on the staged bundle


@dataclass
class PackageResult:
    bundle: Path
    manifest: Manifest
    verification: list[VerifyResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def submission_spec(spec: Spec) -> SubmissionSpec:
    s = spec.submission
    return SubmissionSpec(
        id_column=spec.data.id_column, columns=s.columns, mode=s.mode, classes=s.classes,
        sample=spec.sample_submission.name,
    )


def _width(spec: Spec) -> int:
    return len(spec.submission.classes) if spec.submission.mode == "argmax" else len(spec.submission.columns)


def _draft_member(m: ModelSpec) -> Member:
    """A manifest member without files yet: enough for the data layer to build feeds."""
    return Member(name=m.name, weight=m.weight, inputs=m.inputs, output=m.output, variants=(), activation=m.activation)


def sample_inputs(spec: Spec, m: ModelSpec, test) -> tuple[dict[str, np.ndarray], str]:
    """Real sample inputs for verification: the model's npz, else the first test rows, else random."""
    names = [i.name for i in m.inputs]
    if m.sample_inputs is not None:
        try:
            with np.load(m.sample_inputs) as z:
                feed = {n: np.asarray(z[n]).astype(i.dtype) for n, i in zip(names, m.inputs)}
        except (OSError, KeyError, ValueError) as exc:
            raise SpecError(f"model {m.name!r}: sample_inputs {m.sample_inputs} must be an .npz with arrays {names} ({exc})") from exc
        return feed, f"{m.sample_inputs.name} ({len(next(iter(feed.values())))} rows)"
    if test is not None:
        n = min(test.n_rows, spec.verify_rows)
        return test.feed(_draft_member(m), 0, n), f"first {n} rows of {spec.test_path.name}"
    rng = np.random.default_rng(0)
    feed = {}
    for i in m.inputs:
        dims = [d for d in i.shape[1:]]
        if not all(isinstance(d, int) for d in dims):
            raise SpecError(f"model {m.name!r}: no sample data and input {i.name!r} has symbolic dims {i.shape}; give sample_inputs")
        feed[i.name] = rng.standard_normal((16, *dims)).astype(i.dtype)
    msg = f"model {m.name!r}: no sample inputs and no test data; verifying on RANDOM inputs, which can hide real differences"
    warnings.warn(msg, stacklevel=2)
    return feed, "random normal inputs (16 rows)"


def _output_width(path: Path, m: ModelSpec, feed: dict[str, np.ndarray]) -> int:
    from runtime.backends import get
    from runtime.backends.base import BackendOptions

    with get("onnxruntime").load(path, m.name, BackendOptions(providers=("CPUExecutionProvider",))) as r:
        out = r.infer({k: v[:1] for k, v in feed.items()})
    if m.output not in out:
        raise SpecError(f"model {m.name!r}: output = {m.output!r}, but the ONNX model's outputs are {', '.join(out)}")
    v = out[m.output]
    return int(np.prod(v.shape[1:])) if v.ndim > 1 else 1


def _package_model(spec: Spec, m: ModelSpec, test, stage: Path, log: Callable[[str], None]) -> tuple[Member, list[VerifyResult]]:
    feed, source = sample_inputs(spec, m, test)
    model = load_torch_model(m, spec.root)
    folder = stage / "models" / m.name
    full = folder / "fp32.onnx"
    if model is None:
        exported = copy_onnx(m.path, full, m.name)
    else:
        exported = export_model(model, m, {k: v[:2] for k, v in feed.items()}, full)
    log(f"{m.name}: exported with the {exported.exporter} exporter" + (f" (dynamo failed: {exported.fallback_reason})" if exported.fallback_reason else ""))
    width = _output_width(full, m, feed)
    if width != _width(spec):
        raise SpecError(
            f"model {m.name!r}: output {m.output!r} gives {width} value(s) per row, but the submission needs {_width(spec)} "
            f"({'one per class' if spec.submission.mode == 'argmax' else 'one per column'}: {', '.join(spec.submission.classes or spec.submission.columns)})"
        )
    torch_art = build_torch_artifact(model, m, {k: v[:2] for k, v in feed.items()}, feed, source, folder)
    if torch_art.path is not None:
        log(f"{m.name}: torch program {torch_art.path.name} (torch {torch_art.torch_version}), parity ok for "
            + ", ".join(r.precision for r in torch_art.results))
    torch_file = torch_art.path.relative_to(stage).as_posix() if torch_art.path is not None else ""
    files = {"fp32": full}
    results = []
    variants = []
    for v in m.variants:
        if v.precision not in files:
            files[v.precision] = to_fp16(full, folder / f"{v.precision}.onnx", m.name)
        path = files[v.precision]
        if model is not None and not any(r.file == path.name for r in results):
            results.append(verify_file(model, m, v.name, v.precision, path, feed, source))
            worst = max(results[-1].checks, key=lambda c: c.max_abs)
            log(f"{m.name}/{v.name}: parity ok on {source} (max abs err {worst.max_abs:.2g})")
        variants.append(Variant(
            name=v.name, file=path.relative_to(stage).as_posix(), precision=v.precision, tta=v.tta,
            image_size=v.image_size, value_factor=v.value_factor, torch_file=torch_file,
        ))
    member = Member(
        name=m.name, weight=m.weight, inputs=m.inputs, output=m.output, variants=tuple(variants),
        activation=m.activation, score=m.score, batch_size=m.batch_size, exporter=exported.exporter, n_outputs=width,
        torch_version=torch_art.torch_version if torch_file else "", torch_skipped=torch_art.skipped,
    )
    return member, results + torch_art.results


def _vendor_runtime(stage: Path) -> None:
    src = Path(runtime.__file__).parent
    shutil.copytree(src, stage / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _check_data(spec: Spec):
    """The public test data, checked against the sample submission, if it is here."""
    if not spec.test_path.is_file():
        return None
    test = open_test_data(spec.test_path, spec.data)
    sample = read_sample(spec.sample_submission, submission_spec(spec))
    match_ids(sample, test.ids, sample_name=spec.sample_submission.name)
    return test


def _install(stage: Path, dest: Path, force: bool) -> None:
    """Move the staged bundle into place; an old bundle is removed only after the swap."""
    old = None
    if dest.exists():
        if not force:
            raise BundleError(f"{dest} already exists; pass --force to replace it")
        if not (dest / MANIFEST_NAME).is_file():
            raise BundleError(f"{dest} exists and is not a ninefit bundle; refusing to replace it")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    try:
        os.replace(stage, dest)
    except BaseException:
        if old is not None:  # put the previous bundle back rather than leave it hidden
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def package(spec_path: str | os.PathLike, dest: str | os.PathLike, options: PackageOptions = PackageOptions(),
            log: Callable[[str], None] = print) -> PackageResult:
    """Export, verify and write the bundle for ``spec_path`` into ``dest``."""
    spec = load_spec(spec_path)
    dest = Path(dest).resolve()
    if dest.exists() and not options.force:
        raise BundleError(f"{dest} already exists; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        test = _check_data(spec)
        if test is not None:
            for m in spec.models:
                test.check(_draft_member(m))
        members, results = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            for m in spec.models:
                member, verified = _package_model(spec, m, test, stage, log)
                members.append(member)
                results.extend(verified)
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        exported_with = next((mem.torch_version for mem in members if mem.torch_version), "")
        if options.target and options.target != "local":
            skew = version_skew(exported_with, image_torch_version(), options.target)
            if skew:
                notes.append(skew)
        fallback = ""
        if spec.fallback is not None:
            fb = read_sample(spec.fallback, submission_spec(spec))
            if test is not None:
                match_ids(fb, test.ids, sample_name=spec.fallback.name)
            shutil.copyfile(spec.fallback, stage / "fallback.csv")
            fallback = "fallback.csv"
        _vendor_runtime(stage)
        manifest = Manifest(
            name=spec.name, members=tuple(members), data=spec.data, submission=submission_spec(spec),
            combiner=spec.combiner, fallback=fallback, target=options.target,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), ninefit_version=runtime.__version__,
        )
        write_report(stage, manifest, results, notes)
        for hook in options.hooks:
            manifest = hook(stage, spec, manifest)
        manifest = replace(manifest, files=checksum_tree(stage, exclude=UNCHECKED_FILES))
        (stage / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        _install(stage, dest, options.force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return PackageResult(bundle=dest, manifest=manifest, verification=results, warnings=notes)


__all__ = ["UNCHECKED_FILES", "PackageOptions", "PackageResult", "package", "sample_inputs", "submission_spec"]
