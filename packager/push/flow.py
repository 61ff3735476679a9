"""``ninefit push``: from a verified bundle to a notebook version on Kaggle, and its submission.

:func:`push` runs, printing each step:

1. prepare: the bundle's ``dataset-metadata.json`` (written if missing), the
   notebook (``ninefit notebook``, written if missing), ``kernel-metadata.json``
   beside it, the accelerator of the bundle's target
   (:mod:`packager.push.shapes`);
2. check (:mod:`packager.push.checks`): everything named, and nothing sent
   when one fails (:class:`PackagingError`, exit 2);
3. with ``dry_run``: print the commands that would run, and stop;
4. else run the Kaggle CLI (:mod:`packager.push.kagglecli`): ``--version``,
   ``datasets status`` (create or new version?), ``datasets create`` or
   ``datasets version``, ``datasets status`` until the new version is ready
   (a notebook pushed before would attach the old one), ``kernels push``;
   then print the ``competitions submit`` command, or with ``submit`` wait
   until the notebook version has run (``kernels status``) and submit it.

A refused credential or a failed step raises :class:`KaggleError` (exit 1)
saying what was sent before it; nothing unsent is ever reported as sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from packager.offline.dataset import METADATA_FILENAME, upload_command
from packager.offline.image import image_facts
from packager.push import checks
from packager.push.kagglecli import (
    PINNED_CLI,
    KaggleCli,
    Result,
    check_submit,
    check_upload,
    cli_version,
    dataset_state,
    find_cli,
    kernel_status,
    pushed_version,
)
from packager.push.kernelmeta import KERNEL_METADATA, KernelMetadata, kernel_slug, title_of, write_kernel_metadata
from packager.push.shapes import accelerator
from runtime.errors import BundleError, KaggleError, PackagingError
from runtime.manifest import MANIFEST_NAME, Manifest

#: Every step of a push, and the Kaggle CLI's output as it comes (the CLI shows it).
LOG = logging.getLogger("ninefit.push")

#: The file the notebook writes, as ``kaggle competitions submit -f`` names it.
SUBMISSION_FILE = "submission.csv"
_KERNEL_DONE = {"complete"}
_KERNEL_FAILED = {"error", "cancel_requested", "cancel_acknowledged"}
_DATASET_FAILED = {"failed", "deleted"}


@dataclass(frozen=True)
class PushOptions:
    """What ``ninefit push`` does; every field is a flag of the command (see ``ninefit push --help``)."""

    bundle: Path
    notebook: Path = Path("submission.ipynb")
    competition: str | None = None
    kernel: str | None = None
    owner: str | None = None
    machine_shape: str | None = None
    docker_image: str | None = None
    model_sources: tuple[str, ...] = ()
    kernel_sources: tuple[str, ...] = ()
    time_limit: str = "9h"
    message: str = ""
    dry_run: bool = False
    submit: bool = False
    poll_s: float = 10.0
    dataset_timeout_s: float = 1800.0
    kernel_timeout_s: float = 12 * 3600.0
    kaggle_cli: str | None = None


@dataclass
class PushResult:
    """What was sent (each step that Kaggle accepted), and the submit command."""

    dataset: str
    kernel: str
    commands: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    dataset_version: int | None = None
    kernel_version: int | None = None
    submit_command: str = ""
    submitted: str = ""


def _target(manifest: Manifest) -> str:
    """The bundle's target; bundles from before it was recorded were made for t4x2 (as the notebook assumes)."""
    return manifest.target or "t4x2"


def _prepare(opts: PushOptions) -> tuple[Manifest, str, KernelMetadata, Path]:
    """dataset-metadata.json, the notebook and kernel-metadata.json; returns (manifest, dataset id, meta, folder)."""
    from packager.offline import add_dataset_metadata
    from packager.offline.notebook import write_notebook

    bundle = opts.bundle
    if not (bundle / MANIFEST_NAME).is_file():
        raise BundleError(f"{bundle} is not a ninefit bundle (no {MANIFEST_NAME}). Expected the folder "
                          "`ninefit package` wrote.")
    manifest = Manifest.load(bundle)
    if not (bundle / METADATA_FILENAME).is_file():
        if not opts.owner:  # never looked up in the CLI's credentials
            raise PackagingError(f"{bundle} has no {METADATA_FILENAME} (packaged without an owner). Expected "
                                 "--kaggle-owner NAME: push writes it for that Kaggle user.")
        written = add_dataset_metadata(bundle, owner=opts.owner)
        LOG.info(f"dataset: wrote {written.path} ({written.metadata.id})")
    dataset_id = checks.dataset_id(bundle)
    slug = dataset_id.split("/")[1]
    LOG.info(f"dataset: {dataset_id} ({bundle / METADATA_FILENAME}), private")
    target = _target(manifest)
    acc = accelerator(target, machine_shape=opts.machine_shape, docker_image=opts.docker_image)
    LOG.info(f"accelerator: bundle target {acc.line()}")
    for note in acc.notes:
        LOG.info(f"  note: {note}")
    folder = opts.notebook.parent
    if folder.resolve() == bundle.resolve() or bundle.resolve() in folder.resolve().parents:
        raise PackagingError(f"The notebook {opts.notebook} is inside the bundle {bundle}: it and "
                             f"{KERNEL_METADATA} would be uploaded with the dataset. Expected it outside.")
    if opts.notebook.is_file():
        LOG.info(f"notebook: {opts.notebook} (checked below)")
    else:
        write_notebook(bundle, opts.notebook, slug=slug, competition=opts.competition, target=target,
                       time_limit=opts.time_limit)
        competition = f" --competition {opts.competition}" if opts.competition else ""
        LOG.info(f"notebook: wrote {opts.notebook} (as `ninefit notebook {bundle} -o {opts.notebook}{competition} "
            f"--target {target} --time-limit {opts.time_limit}` writes it)")
    owner = dataset_id.split("/")[0]
    slug_k = kernel_slug(opts.kernel or f"{opts.competition or slug} ninefit")
    meta = KernelMetadata(
        owner=owner, slug=slug_k, title=title_of(slug_k), code_file=opts.notebook.name,
        dataset_sources=(dataset_id,), competition_sources=(opts.competition,) if opts.competition else (),
        model_sources=opts.model_sources, kernel_sources=opts.kernel_sources, machine_shape=acc.machine_shape,
        docker_image=opts.docker_image)
    path = write_kernel_metadata(meta, folder)
    LOG.info(f"kernel: wrote {path} ({meta.id}, {acc.machine_shape or 'CPU'}, internet off, private)")
    return manifest, dataset_id, meta, folder


def _check(opts: PushOptions, manifest: Manifest, dataset_id: str, folder: Path) -> None:
    facts = image_facts()
    LOG.info(f"checks ({facts.summary()}):")
    findings = [
        *checks.check_bundle_files(opts.bundle, manifest),
        *checks.check_notebook(opts.notebook, manifest, slug=dataset_id.split("/")[1], target=_target(manifest),
                               competition=opts.competition),
        *checks.check_kernel_file(folder / KERNEL_METADATA, dataset_id=dataset_id),
        *checks.check_wheels(opts.bundle, manifest, facts, _target(manifest)),
    ]
    for finding in findings:
        LOG.info(finding.line())
    bad = [f for f in findings if not f.ok]
    if bad:
        raise PackagingError(f"{len(bad)} check(s) failed, so nothing was sent to Kaggle: "
                             + "; ".join(f"[{f.check}] {f.message}" for f in bad))


def plan(opts: PushOptions, dataset_id: str, meta: KernelMetadata, folder: Path) -> list[tuple[str, str]]:
    """The Kaggle CLI commands a push runs, each with why: ``[(command, comment)]``."""
    message = opts.message or "ninefit push"
    create, version = upload_command(opts.bundle), upload_command(opts.bundle, new_version=message)
    status = ["datasets", "status", dataset_id, "--format", "json(status,current_version_number)"]
    steps = [
        (KaggleCli.shown(["--version"]), f"the CLI works and has credentials (tested with {PINNED_CLI})"),
        (KaggleCli.shown(status), "does the dataset exist (and at which version)?"),
        (KaggleCli.shown(create[1:]), "if it does not: create it (private)"),
        (KaggleCli.shown(version[1:]), "if it does: upload a new version"),
        (KaggleCli.shown(status), f"every {opts.poll_s:g} s until the new version is ready"),
        (KaggleCli.shown(["kernels", "push", "-p", str(folder)]), f"push the notebook as {meta.id}"),
    ]
    if opts.competition:
        if opts.submit:
            steps.append((KaggleCli.shown(["kernels", "status", f"{meta.id}/VERSION"]),
                          f"every {opts.poll_s:g} s until the version has run"))
        steps.append((submit_command(opts, meta, "VERSION"), "submit that version" + (
            "" if opts.submit else " (printed, not run: --submit runs it)")))
    return steps


def submit_command(opts: PushOptions, meta: KernelMetadata, version: int | str) -> str:
    return KaggleCli.shown(["competitions", "submit", "-c", str(opts.competition), "-k", meta.id, "-v", str(version),
                            "-f", SUBMISSION_FILE, "-m", opts.message or f"ninefit push, version {version}"])


def push(opts: PushOptions) -> PushResult:
    """Prepare, check, and (unless ``opts.dry_run``) upload the bundle and push its notebook.

    Raises:
        PackagingError: A check failed or an input is wrong: nothing was sent (exit 2).
        KaggleError: The Kaggle CLI refused or failed a step: the message says what was sent (exit 1).
    """
    if opts.submit and not opts.competition:
        raise PackagingError("--submit needs --competition SLUG (the code competition to submit to).")
    if not opts.poll_s > 0:
        raise PackagingError(f"--poll-interval {opts.poll_s}: expected a positive number of seconds.")
    manifest, dataset_id, meta, folder = _prepare(opts)
    _check(opts, manifest, dataset_id, folder)
    result = PushResult(dataset=dataset_id, kernel=meta.id)
    steps = plan(opts, dataset_id, meta, folder)
    if opts.dry_run:
        LOG.info("dry run: nothing is sent; the push would run:")
        for command, why in steps:
            LOG.info(f"  $ {command}    # {why}")
            result.commands.append(command)
        return result
    _run(opts, find_cli(opts.kaggle_cli), dataset_id, meta, folder, result)
    return result


def _step(cli: KaggleCli, args: list[str], result: PushResult) -> Result:
    command = KaggleCli.shown(args)
    LOG.info(f"$ {command}")
    result.commands.append(command)
    return cli.run(args, LOG.info)


def _run(opts: PushOptions, cli: KaggleCli, dataset_id: str, meta: KernelMetadata, folder: Path,
         result: PushResult) -> None:
    LOG.info(f"kaggle CLI: {cli.where}")
    version = cli_version(_step(cli, ["--version"], result))
    if version != PINNED_CLI:
        LOG.info(f"  note: Kaggle CLI {version}; ninefit is tested with {PINNED_CLI} (pip install \"ninefit[kaggle]\")")
    status_args = ["datasets", "status", dataset_id, "--format", "json(status,current_version_number)"]
    before = dataset_state(_step(cli, status_args, result))
    new = before is None
    old = 0 if before is None else before[1]
    message = opts.message or "ninefit push"
    args = list(upload_command(opts.bundle) if new else upload_command(opts.bundle, new_version=message))[1:]
    LOG.info(f"dataset: {'creating' if new else 'uploading a new version of'} {dataset_id} "
        f"({'new' if new else f'now at version {old}'})")
    url = check_upload(_step(cli, args, result), new=new, ref=dataset_id)
    result.sent.append(f"dataset {dataset_id}: {'created' if new else 'new version uploaded'} ({url})")
    start = time.monotonic()
    while True:
        state = dataset_state(_step(cli, status_args, result))
        waited = time.monotonic() - start
        if state is not None and state[0] == "ready" and state[1] > old:
            result.dataset_version = state[1]
            LOG.info(f"dataset: version {state[1]} is ready ({waited:.0f} s)")
            break
        if state is not None and state[0] in _DATASET_FAILED:
            raise KaggleError(f"Kaggle could not process the upload of {dataset_id} (status {state[0]}). Sent: "
                              f"{'; '.join(result.sent)}. The notebook was not pushed.")
        if waited > opts.dataset_timeout_s:
            raise KaggleError(f"The new version of {dataset_id} was not ready after {waited:.0f} s (status "
                              f"{state[0] if state else 'not found'}). Sent: {'; '.join(result.sent)}. The notebook was "
                              f"not pushed: it would attach the previous version. Push again once it is ready.")
        LOG.info(f"dataset: {state[0] if state else 'not visible yet'}"
            f"{f', version {state[1]}' if state else ''}; waiting for version {old + 1} ({waited:.0f} s)")
        time.sleep(opts.poll_s)
    kernel_version = pushed_version(_step(cli, ["kernels", "push", "-p", str(folder)], result), meta.id)
    result.kernel_version = kernel_version
    result.sent.append(f"notebook {meta.id} version {kernel_version}")
    result.submit_command = submit_command(opts, meta, kernel_version) if opts.competition else ""
    if not opts.competition:
        LOG.info("sent: " + "; ".join(result.sent) + ". No --competition: nothing to submit.")
        return
    if not opts.submit:
        LOG.info("sent: " + "; ".join(result.sent) + ". Once that version has run (`" + KaggleCli.shown(
            ["kernels", "status", f"{meta.id}/{kernel_version}"]) + "` says complete), submit it with:")
        LOG.info(f"  {result.submit_command}")
        return
    _wait_kernel(opts, cli, meta, kernel_version, result)
    args = ["competitions", "submit", "-c", str(opts.competition), "-k", meta.id, "-v", str(kernel_version),
            "-f", SUBMISSION_FILE, "-m", opts.message or f"ninefit push, version {kernel_version}"]
    answer = check_submit(_step(cli, args, result), str(opts.competition))
    result.submitted = answer
    result.sent.append(f"submission of {meta.id} version {kernel_version} to {opts.competition} ({answer})")
    LOG.info("sent: " + "; ".join(result.sent))


def _wait_kernel(opts: PushOptions, cli: KaggleCli, meta: KernelMetadata, version: int, result: PushResult,
                 ) -> None:
    start = time.monotonic()
    while True:
        status, failure = kernel_status(_step(cli, ["kernels", "status", f"{meta.id}/{version}"], result))
        waited = time.monotonic() - start
        if status in _KERNEL_DONE:
            LOG.info(f"notebook: version {version} ran to completion ({waited:.0f} s)")
            return
        if status in _KERNEL_FAILED:
            raise KaggleError(f"Notebook {meta.id} version {version} ended {status} on Kaggle"
                              f"{': ' + failure if failure else ''}. Sent: {'; '.join(result.sent)}. Not submitted: "
                              f"read its log (`kaggle kernels logs {meta.id}/{version}`), fix, push again.")
        if waited > opts.kernel_timeout_s:
            raise KaggleError(f"Notebook {meta.id} version {version} still {status} after {waited:.0f} s. Sent: "
                              f"{'; '.join(result.sent)}. Not submitted: once it is complete, run "
                              f"{submit_command(opts, meta, version)}")
        LOG.info(f"notebook: version {version} {status} ({waited:.0f} s)")
        time.sleep(opts.poll_s)


__all__ = ["SUBMISSION_FILE", "PushOptions", "PushResult", "plan", "push", "submit_command"]
