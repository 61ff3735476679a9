"""``ninefit package``: spec -> exported, verified, checksummed bundle folder.

The bundle is built in a temporary folder beside the destination and renamed
into place only when everything passed, so an interrupted or failed package
never leaves a half-written bundle (and never destroys the previous one).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import runtime
from packager.bundle_report import write_report
from packager.cpu_rungs import RungWork, package_rung, table_feeds
from packager.export import copy_onnx, export_model
from packager.fp16 import Fp16Result, convert_fp16
from packager.guard import GuardResult
from packager.hooks_check import check_features, check_imports, check_postprocess, in_user_files, stage_hooks
from packager.offline.dataset import METADATA_FILENAME
from packager.sources import prepare
from packager.sources.native import check_columns
from packager.sources.package import package_native
from packager.spec import ModelSpec, Spec, load_spec
from packager.spec.data import read_header
from packager.spec.types import NATIVE_SOURCES
from packager.tokenizer import package_tokenizer
from packager.torch_artifact import build_torch_artifact, image_torch_version, version_skew
from packager.torchload import load_torch_model
from packager.verify import VerifyResult, verify_file, verify_text
from runtime.bundle import checksum_tree
from runtime.data.testdata import open_test_data
from runtime.errors import BundleError, HookError, PackagingError, SpecError
from runtime.fileio import file_mode, folder_mode, process_gone, sweep_dead
from runtime.hooks import HOOKS_DIR
from runtime.manifest import MANIFEST_NAME, Manifest, Member, SubmissionSpec, Variant
from runtime.output.formats import match, width
from runtime.output.submission import read_sample
from runtime.profile import HookCost

#: What packaging says as it goes (the CLI shows it; ``logging`` to see it from Python).
LOG = logging.getLogger("ninefit.package")

#: Files of the bundle folder that the manifest does not checksum: the manifest
#: itself, and ``dataset-metadata.json``, which describes the upload to the
#: Kaggle CLI and is never uploaded (``kaggle datasets create`` skips it), so
#: listing it would fail the checksum check on Kaggle as a missing file.
UNCHECKED_FILES = (MANIFEST_NAME, METADATA_FILENAME)


@dataclass(frozen=True)
class PackageOptions:
    """How to package.

    Attributes:
        force: Replace an existing bundle folder.
        steps: Steps of packaging run on the staged bundle, in order, after the
            models are exported and verified (``packager.offline.wheelhouse_step``,
            ``packager.offline.dataset_step``, ``packager.estimate.measure.profile.profile_step``):
            each takes ``(stage, spec, manifest)`` and returns the manifest.
        target: The Kaggle accelerator the bundle is for (t4x2, p100, cpu...),
            recorded in the manifest: the runtime warns loudly when a GPU target runs
            on the CPU, and a torch newer than that image's is warned about. Empty: not
            recorded (no check). The CLI's default is t4x2.
    """

    force: bool = False
    steps: tuple[Callable[[Path, Spec, Manifest], Manifest], ...] = ()
    target: str = ""


@dataclass
class PackageResult:
    bundle: Path
    manifest: Manifest
    verification: list[VerifyResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def submission_spec(spec: Spec, width: int = 0) -> SubmissionSpec:
    """The manifest's submission spec; ``width``: the ensemble's (postprocess, where the mode does not fix it)."""
    s = spec.submission
    return SubmissionSpec(
        id_column=spec.data.id_column, columns=s.columns, mode=s.mode, classes=s.classes,
        sample=spec.sample_submission.name, width=width, **s.options,
    )


def _width(spec: Spec) -> int:
    """Values per row the submission format needs; 0: any (postprocess: the first member sets it)."""
    return width(submission_spec(spec))


_NEEDS = {"argmax": "one per class", "topk": "one per class", "multilabel": "one per class",
          "long": "one per target", "rle": "one per mask pixel", "postprocess": "as many as the other members give"}


def _draft_member(m: ModelSpec) -> Member:
    """A manifest member without files yet: enough for the data layer to build feeds."""
    return Member(name=m.name, weight=m.weight, inputs=m.inputs, output=m.output, variants=(), activation=m.activation,
                  missing=m.missing, fill_value=m.fill_value, batch_size=m.batch_size, text=m.text)


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
        member = _draft_member(m)
        n = min(test.n_rows, spec.verify_rows)
        bad = test.nonfinite(member)
        if bad is None or member.missing_policy(spec.data)[0] != "skip":
            return test.feed(member, 0, n), f"first {n} rows of {spec.test_path.name}"
        rows = np.flatnonzero(~bad)[:spec.verify_rows]  # the rows the member will predict, not those it skips
        if not len(rows):
            raise SpecError(f"model {m.name!r}: every row of {spec.test_path.name} has a non-finite input value, so "
                            "there is nothing to verify the export on; give sample_inputs, or missing = \"fill\"")
        parts = [test.feed(member, int(i), int(i) + 1) for i in rows]
        feed = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return feed, f"first {len(rows)} rows of {spec.test_path.name} with finite inputs"
    rng = np.random.default_rng(0)
    feed = {}
    for i in m.inputs:
        dims = [d for d in i.shape[1:]]
        if not all(isinstance(d, int) for d in dims):
            raise SpecError(f"model {m.name!r}: no sample data and input {i.name!r} has symbolic dims {i.shape}; give sample_inputs")
        feed[i.name] = rng.standard_normal((16, *(int(d) for d in dims))).astype(i.dtype)  # (ints: checked)
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


def _check_width(spec: Spec, m: ModelSpec, width: int) -> None:
    """The member's values per row against what the submission format reads (SpecError naming both)."""
    if _width(spec) and width != _width(spec):
        names = spec.submission.classes or spec.submission.options.get("targets") or spec.submission.columns
        what = _NEEDS.get(spec.submission.mode, "one per column")
        if spec.submission.mode == "rle":
            what += f": mask_shape {list(spec.submission.options['mask_shape'])}"
        elif spec.submission.mode != "postprocess":
            what += f": {', '.join(names)}"
        raise SpecError(
            f"model {m.name!r}: output {m.output!r} gives {width} value(s) per row, but the submission needs "
            f"{_width(spec)} ({what})"
        )


def _package_model(spec: Spec, m: ModelSpec, test, stage: Path
                   ) -> tuple[Member, list[VerifyResult], list[tuple[str, Fp16Result]], list[GuardResult]]:
    if m.text is not None and test is None:
        raise SpecError(f"model {m.name!r}: a text model is verified on the public test's texts, and "
                        f"{spec.test_path} is not here")
    if m.source in NATIVE_SOURCES:  # a tree or scikit-learn model: converted, checked against its library
        member, verified = package_native(m, test, stage, spec.verify_rows, spec.test_path.name)
        _check_width(spec, m, member.n_outputs)
        return member, verified, [], []
    feed, source = sample_inputs(spec, m, test)
    model = load_torch_model(m, spec.root)
    if m.init == "factory":
        LOG.info(f"{m.name}: init = \"factory\": the factory {m.factory} loads its own trained weights (no checkpoint)")
    if not m.trained:  # said on purpose in the spec (init = "random"), but nobody should forget it
        warnings.warn(f"model {m.name!r} is packaged with random initial weights (init = \"random\"): "
                      "it is untrained, and its parity check only compares two random models", stacklevel=2)
    folder = stage / "models" / m.name
    full = folder / "fp32.onnx"
    if model is None:
        assert m.path is not None, "no torch model: an onnx source, whose file the spec requires"
        exported = copy_onnx(m.path, full, m.name)
    else:
        exported = export_model(model, m, {k: v[:2] for k, v in feed.items()}, full)
    LOG.info(f"{m.name}: exported with the {exported.exporter} exporter" + (f" (dynamo failed: {exported.fallback_reason})" if exported.fallback_reason else ""))
    width = _output_width(full, m, feed)
    _check_width(spec, m, width)
    torch_art = build_torch_artifact(model, m, {k: v[:2] for k, v in feed.items()}, feed, source, folder)
    if torch_art.path is not None:
        LOG.info(f"{m.name}: torch program {torch_art.path.name} (torch {torch_art.torch_version}), parity ok for "
            + ", ".join(r.precision for r in torch_art.results))
    torch_file = torch_art.path.relative_to(stage).as_posix() if torch_art.path is not None else ""
    files = {"fp32": full}
    halves: dict[str, Fp16Result] = {}
    results: list[VerifyResult] = []
    variants = []
    work = _rung_work(spec, m, test, full, stage, feed, source)
    for v in m.variants:
        if v.guarded:  # int8, bf16, OpenVINO: measured against fp32 on the sample rows, or left out
            rung = package_rung(work, v)
            variants += [rung] if rung is not None else []
            continue
        if v.precision not in files:
            halves[v.precision] = convert_fp16(full, folder / f"{v.precision}.onnx", m.name,
                                               {k: x[:2] for k, x in feed.items()})
            files[v.precision] = halves[v.precision].path
            LOG.info(f"{m.name}/{v.name}: kept in fp32: {halves[v.precision].describe()}")
        path = files[v.precision]
        if model is not None and not any(r.file == path.name for r in results):
            if m.text is not None:
                n = min(test.n_rows, spec.verify_rows)
                result = verify_text(model, m, m.text, v.name, v.precision, path, test.text_rows(_draft_member(m)),
                                     n, f"first {n} rows of {spec.test_path.name}, at their real lengths")
            else:
                result = verify_file(model, m, v.name, v.precision, path, feed, source)
            if v.precision in halves:
                result = replace(result, kept_fp32=dict(sorted(halves[v.precision].kept_fp32.items())))
            results.append(result)
            worst = max(results[-1].checks, key=lambda c: c.max_abs)
            LOG.info(f"{m.name}/{v.name}: parity ok on {source} (max abs err {worst.max_abs:.2g})")
        variants.append(Variant(
            name=v.name, file=path.relative_to(stage).as_posix(), precision=v.precision, tta=v.tta,
            image_size=v.image_size, value_factor=v.value_factor, torch_file=torch_file,
        ))
    member = Member(
        name=m.name, weight=m.weight, inputs=m.inputs, output=m.output, variants=tuple(variants),
        activation=m.activation, score=m.score, batch_size=m.batch_size, exporter=exported.exporter, n_outputs=width,
        source=m.source, trained=m.trained, init=m.init,
        missing=m.missing, fill_value=m.fill_value,
        text=replace(m.text, tokenizer=Path(m.text.tokenizer).relative_to(stage.resolve()).as_posix()) if m.text else None,
        torch_version=torch_art.torch_version if torch_file else "", torch_skipped=torch_art.skipped,
    )
    return member, results + torch_art.results, [(m.name, h) for h in halves.values()], work.guards


def _rung_work(spec: Spec, m: ModelSpec, test, full: Path, stage: Path, feed: dict[str, np.ndarray],
               source: str) -> RungWork:
    """What the member's guarded rungs are measured on: the sample rows in its batches (a text member's windows
    of the first public rows, padded as the runtime pads them)."""
    if m.text is not None and any(v.guarded for v in m.variants):
        from packager.verify import text_batches

        n = min(test.n_rows, spec.verify_rows)
        feeds, source = text_batches(m, m.text, test.text_rows(_draft_member(m)), n), \
            f"windows of the first {n} rows of {spec.test_path.name}"
    else:
        feeds = table_feeds(feed, m.batch_size)
    return RungWork(model=m, fp32=full, stage=stage, feeds=feeds, samples=source, submission=submission_spec(spec))


def _vendor_runtime(stage: Path) -> None:
    src = Path(runtime.__file__).parent
    shutil.copytree(src, stage / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _check_data(spec: Spec, stage: Path | None = None):
    """The public test data (through the features hook in ``stage``), checked against the sample submission."""
    if not spec.test_path.is_file():
        return None
    test = open_test_data(spec.test_path, spec.data, assets=stage)
    sample = read_sample(spec.sample_submission, submission_spec(spec))
    match(submission_spec(spec), sample, test.ids, sample_name=spec.sample_submission.name)
    return test


def _set_modes(stage: Path) -> None:
    """Folders ``0777``, files ``0666``, less the umask (0755 / 0644 with umask 022).

    ``mkdtemp`` made the stage private (0700) and copied files keep their
    source's mode (a read-only site-packages); a bundle is meant to be shared
    and uploaded, so it gets the modes of a plainly created tree.
    """
    dirs, files = folder_mode(), file_mode()
    for dirpath, _dirnames, filenames in os.walk(stage):
        os.chmod(dirpath, dirs)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, files)


def _install(stage: Path, dest: Path, force: bool) -> None:
    """Move the staged bundle into place; an old bundle is removed only after the swap."""
    old = None
    if dest.exists():
        if not force:
            raise BundleError(f"{dest} already exists; pass --force to replace it")
        if not (dest / MANIFEST_NAME).is_file():
            raise BundleError(f"{dest} exists and is not a ninefit bundle; refusing to replace it")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-0")
        os.replace(dest, old)
    try:
        os.replace(stage, dest)
    except BaseException:
        if old is not None:  # put the previous bundle back rather than leave it hidden
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _user_files(spec: Spec, stage: Path) -> Iterator[None]:
    """A hook's failure names the user's own files, not the staging folder's copies (gone once packaging stops)."""
    try:
        yield
    except HookError as exc:
        raise HookError(in_user_files(str(exc), spec, stage)) from exc


def _sweep_leftovers(dest: Path) -> None:
    """Remove what a killed ``ninefit package`` of ``dest`` left beside it, and say so.

    A staging folder (``.NAME.tmp-PID-*``) of a process that is gone is removed;
    a previous bundle it had moved aside (``.NAME.old-PID-0``) is put back
    when ``dest`` is missing (it was killed mid-swap), else removed.
    """
    for old in sorted(dest.parent.glob(f".{glob.escape(dest.name)}.old-*-0")):
        pid = old.name.split("-")[-2]
        if not dest.exists() and (old / MANIFEST_NAME).is_file() and pid.isdigit() and process_gone(int(pid)):
            os.replace(old, dest)
            LOG.info(f"put back {dest}, which a killed `ninefit package` had moved aside to {old.name}")
    swept = sweep_dead(dest.parent, f".{dest.name}.tmp-") + sweep_dead(dest.parent, f".{dest.name}.old-")
    for folder, size in swept:
        LOG.info(f"removed {folder.name} ({size / 1e6:.1f} MB), left beside {dest.name} by a `ninefit package` that "
            "was killed before it finished")


def package(spec_path: str | os.PathLike, dest: str | os.PathLike, options: PackageOptions = PackageOptions()) -> PackageResult:
    """Export, verify and write the bundle for ``spec_path`` into ``dest``.

    The stages in order, all in a staging folder beside ``dest``: the tokenizers and the
    user's hooks in first (the test data is read through them), the test data checked, each
    model exported and verified, the fallback and the runtime copied in, the manifest made,
    the postprocess hook checked, ``report.md`` written, then :attr:`PackageOptions.steps`;
    finally the manifest with every file's checksum, and the folder renamed into place. What it does is
    logged to ``ninefit.package`` (:data:`LOG`), one line a step.
    """
    _check_target(options.target)
    spec = load_spec(spec_path)
    dest = Path(dest).resolve()
    if dest.exists() and not options.force:
        raise BundleError(f"{dest} already exists; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(dest)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        spec, test, hook_costs = _stage_inputs(spec, stage)
        members, results, halves, notes, guards = _package_models(spec, test, stage, options.target)
        fallback = _copy_fallback(spec, test, stage)
        _vendor_runtime(stage)
        manifest = _manifest(spec, members, fallback, options.target)
        if manifest.submission.mode == "postprocess" and test is not None:
            sample = read_sample(spec.sample_submission, manifest.submission)
            with _user_files(spec, stage):
                hook_costs["postprocess"] = check_postprocess(manifest, sample, test.ids, stage)
        write_report(stage, manifest, results, notes, halves, guards)
        manifest = _run_steps(stage, spec, manifest, options.steps, hook_costs)
        manifest = replace(manifest, files=checksum_tree(stage, exclude=UNCHECKED_FILES))
        (stage / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        _set_modes(stage)
        _install(stage, dest, options.force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return PackageResult(bundle=dest, manifest=manifest, verification=results, warnings=notes)


def _check_target(target: str) -> None:
    if target:
        from packager.estimate.price.hardware import TARGETS

        if target not in TARGETS or target == "local":
            raise PackagingError(f"unknown target {target!r}: expected the Kaggle accelerator the bundle is "
                                 f"for, one of {', '.join(t for t in TARGETS if t != 'local')}")


def _stage_inputs(spec: Spec, stage: Path) -> tuple[Spec, Any, dict[str, HookCost]]:
    """The tokenizers and the user's hooks into the stage, then the public test data read through them and
    checked against every model: the spec as staged, the test data (None without it), the features hook's cost."""
    # What each source decides about its inputs (a tree model's columns: its own feature names), first.
    spec = replace(spec, models=tuple(prepare(m) for m in spec.models))
    if not spec.data.features:  # with a features hook, the hook's columns are checked once it ran
        header = read_header(spec.test_path)
        for m in spec.models:
            if m.source in NATIVE_SOURCES:
                check_columns(m, header)
    # A text model's tokenizer goes into the bundle first: the test data is read through it.
    spec = replace(spec, models=tuple(
        replace(m, text=package_tokenizer(m, stage.resolve() / "models" / m.name)) if m.text else m
        for m in spec.models))
    hook_costs: dict[str, HookCost] = {}
    if stage_hooks(spec, stage) and spec.data.features:
        draft = tuple(_draft_member(m) for m in spec.models)
        with _user_files(spec, stage):
            data, hook_costs["features"] = check_features(spec, stage, draft)
        spec = replace(spec, data=data)
    test = _check_data(spec, stage)
    if test is not None:
        for m in spec.models:
            test.check(_draft_member(m))
            test.check_missing(_draft_member(m))
    return spec, test, hook_costs


def _package_models(spec: Spec, test, stage: Path, target: str
                    ) -> tuple[list[Member], list[VerifyResult], list[tuple[str, Fp16Result]], list[str],
                               list[GuardResult]]:
    """Every model exported and verified: the members, their parity results, their fp16 conversions, the
    warnings said on the way (a torch newer than the target image's among them), and the guarded rungs'
    measurements."""
    members, results, halves, guards = [], [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        for m in spec.models:
            member, verified, converted, guarded = _package_model(spec, m, test, stage)
            members.append(member)
            results.extend(verified)
            halves.extend(converted)
            guards.extend(guarded)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    exported_with = next((mem.torch_version for mem in members if mem.torch_version), "")
    if target and target != "local":
        skew = version_skew(exported_with, image_torch_version(), target)
        if skew:
            notes.append(skew)
    return members, results, halves, notes, guards


def _copy_fallback(spec: Spec, test, stage: Path) -> str:
    """The spec's fallback submission, checked against the test ids, as ``fallback.csv``; "" without one."""
    if spec.fallback is None:
        return ""
    fb = read_sample(spec.fallback, submission_spec(spec))
    if test is not None:
        match(submission_spec(spec), fb, test.ids, sample_name=spec.fallback.name)
    shutil.copyfile(spec.fallback, stage / "fallback.csv")
    return "fallback.csv"


def _manifest(spec: Spec, members: list[Member], fallback: str, target: str) -> Manifest:
    """The manifest of the packaged members (no files listed yet)."""
    widths = {mem.n_outputs for mem in members}
    if spec.submission.mode == "postprocess" and len(widths) > 1:
        raise SpecError(f"the members give {', '.join(f'{mem.name}: {mem.n_outputs}' for mem in members)} values "
                        "per row; the ensemble combines them row by row, so they must give the same number")
    return Manifest(
        name=spec.name, members=tuple(members), data=spec.data,
        submission=submission_spec(spec, members[0].n_outputs if spec.submission.mode == "postprocess" else 0),
        combiner=spec.combiner, fallback=fallback, target=target, serve=spec.serve,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), ninefit_version=runtime.__version__,
    )


def _run_steps(stage: Path, spec: Spec, manifest: Manifest, steps, hook_costs: dict[str, HookCost]) -> Manifest:
    """The steps of packaging on the staged bundle, then what the user's hooks import, said; the hooks' costs
    join a measured profile (the estimator's features and postprocess stages)."""
    for step in steps:
        manifest = step(stage, spec, manifest)
    if (stage / HOOKS_DIR).is_dir():
        for line in check_imports(stage):
            LOG.info(f"hook import: {line}")
    if hook_costs and manifest.profile.measured:
        manifest = replace(manifest, profile=replace(manifest.profile, hooks=hook_costs))
    return manifest


__all__ = ["UNCHECKED_FILES", "PackageOptions", "PackageResult", "package", "sample_inputs", "submission_spec"]
