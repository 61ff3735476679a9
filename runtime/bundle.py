"""Opening a bundle: read the manifest, then prove every file is intact.

Nothing runs before :func:`open_bundle` has checked the schema version and the
sha256 of every file the manifest lists. :func:`check_files` says which files
are missing or modified and what each takes out of a run (a
:class:`BundleDamage`):

* a file of the vendored ``runtime/`` - the whole run: it is fatal;
* a member's base model (its first variant's ONNX and external data) or any
  other file in its model folder - that member;
* a file only cheaper rungs use (``fp16.onnx``) - those rungs;
* the declared fallback - the fallback (the sample submission's values are
  used instead);
* a file under ``hooks/`` - the user's code, which must not run modified: the
  features hook's module or declared side files take out that hook and every
  member its columns feed; the postprocess hook's module takes out the
  formatting of every row (every member: the submission is the fallback's);
  any other file there (a helper module, undeclared data) may be read by
  either hook, so it takes out both;
* anything else (``report.md``, ``wheels/``) - nothing the run reads.

By default :func:`open_bundle` raises :class:`~runtime.errors.ChecksumError`
on any damage; the run opens with ``allow_damage=True`` so one bad file costs
only what it belongs to (a Kaggle rerun must not be lost to one bad file).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from runtime.errors import BundleError, ChecksumError
from runtime.hooks import HOOKS_DIR
from runtime.manifest import MANIFEST_NAME, DataSpec, Manifest, Member

_CHUNK = 1 << 20
#: Where the bundle's own copy of the runtime lives; a damaged file there stops the run.
RUNTIME_FOLDER = "runtime"
#: How the reason of a member removed for a damaged file starts (in the run report).
DAMAGED_REASON = "damaged bundle file"
MISSING = "missing"
MODIFIED = "modified (sha256 differs from the manifest)"
_ADVICE = "Re-upload the bundle exactly as `ninefit package` wrote it (or re-package)."


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_tree(root: str | os.PathLike, *, exclude: tuple[str, ...] = (MANIFEST_NAME,)) -> dict[str, str]:
    """sha256 of every regular file below ``root``, keyed by POSIX relative path."""
    root = Path(root)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        out[rel] = sha256_file(path)
    return out


@dataclass(frozen=True)
class DamagedFile:
    """One missing or modified bundle file and what it takes out of a run.

    Attributes:
        path: POSIX path relative to the bundle root.
        problem: :data:`MISSING` or :data:`MODIFIED`.
        runtime: A file of the vendored runtime: the bundle cannot run.
        fallback: The declared fallback submission.
        members: Members it removes (their base model or model folder, or the hook that feeds or writes them).
        variants: ``(member, variant)`` rungs it removes from members that still run.
        features: The features hook's code or data: the hook is not run.
        postprocess: The postprocess hook's code or data: no member's rows can be written.
    """

    path: str
    problem: str
    runtime: bool = False
    fallback: bool = False
    members: tuple[str, ...] = ()
    variants: tuple[tuple[str, str], ...] = ()
    features: bool = False
    postprocess: bool = False

    @property
    def effect(self) -> str:
        """What a run loses to this file, in words."""
        parts = []
        if self.runtime:
            parts.append("the runtime itself: the bundle cannot run")
        if self.features:
            parts.append("the features hook (your code or its data must not run modified: it is not run, and "
                         "every member its columns feed is removed)")
        if self.postprocess:
            parts.append("the postprocess hook, which writes every row (it is not run: no member's predictions "
                         "can be written, so the submission is the fallback's)")
        parts += [f"member {m!r} (removed from the run)" for m in self.members]
        parts += [f"variant {v!r} of member {m!r} (that rung is removed)" for m, v in self.variants]
        if self.fallback:
            parts.append("the fallback (rows no member covers get the sample submission's values)")
        return "; ".join(parts) or "nothing the run reads (still a damaged upload)"

    def describe(self) -> str:
        return f"{self.path}: {self.problem} -> {self.effect}"


@dataclass(frozen=True)
class BundleDamage:
    """Every damaged file of a bundle; empty when the bundle is intact."""

    files: tuple[DamagedFile, ...] = ()
    checked: int = 0  # files the manifest lists

    def __bool__(self) -> bool:
        return bool(self.files)

    @property
    def fatal(self) -> tuple[DamagedFile, ...]:
        return tuple(f for f in self.files if f.runtime)

    @property
    def removed_members(self) -> dict[str, str]:
        """Member -> why it is removed (the damaged files, named)."""
        out: dict[str, list[str]] = {}
        for f in self.files:
            for m in f.members:
                out.setdefault(m, []).append(f"{f.path} {f.problem.split(' (')[0]}")
        return {m: f"{DAMAGED_REASON}: {', '.join(paths)}" for m, paths in out.items()}

    @property
    def removed_variants(self) -> dict[str, tuple[str, ...]]:
        """Member -> its removed rungs, for members that still run."""
        gone = self.removed_members
        out: dict[str, list[str]] = {}
        for f in self.files:
            for m, v in f.variants:
                if m not in gone and v not in out.setdefault(m, []):
                    out[m].append(v)
        return {m: tuple(vs) for m, vs in out.items()}

    @property
    def fallback(self) -> bool:
        return any(f.fallback for f in self.files)

    @property
    def features(self) -> bool:
        """The features hook is damaged: it must not run."""
        return any(f.features for f in self.files)

    @property
    def postprocess(self) -> bool:
        """The postprocess hook is damaged: it must not run."""
        return any(f.postprocess for f in self.files)

    def usable(self, manifest: Manifest) -> Manifest:
        """The manifest a run can trust: removed rungs dropped, a damaged fallback unset, a damaged features hook unset.

        Removed members stay in it (the run reports them as failed, and their
        weight counts in the share delivered); the caller must not run them,
        nor a damaged postprocess hook (:attr:`postprocess`).
        """
        rungs = self.removed_variants
        members = tuple(replace(m, variants=tuple(v for v in m.variants if v.name not in rungs[m.name]))
                        if m.name in rungs else m for m in manifest.members)
        data = manifest.data
        if self.features:
            data = replace(data, features="", features_files=(), features_group="", features_columns=())
        return replace(manifest, members=members, data=data, fallback="" if self.fallback else manifest.fallback)

    def lines(self) -> list[str]:
        """One line per damaged file: path, problem, what it removes."""
        return [f.describe() for f in self.files]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk; ``damage`` lists what failed its check (empty unless opened with ``allow_damage``)."""

    root: Path
    manifest: Manifest
    damage: BundleDamage = field(default_factory=BundleDamage)

    def path(self, rel: str) -> Path:
        return self.root / rel


def member_files(member: Member) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """A member's files: its base model's, each variant's, and the folders its models live in."""
    base = {member.variants[0].file, *member.variants[0].data_files} if member.variants else set()
    per_variant = {v.name: {v.file, *v.data_files} for v in member.variants}
    folders = {str(PurePosixPath(v.file).parent) for v in member.variants} - {"."}
    return base, per_variant, folders


def fed_by_features(data: DataSpec, member: Member) -> bool:
    """Whether one of the member's inputs takes a column the features hook makes."""
    made = {c for c, _ in data.features_columns}
    return any(made & set(inp.columns) for inp in member.inputs)


def _hook_damage(manifest: Manifest, rel: str, problem: str) -> DamagedFile:
    """A damaged file under hooks/: which hook it belongs to (both, when it cannot be told) and what it removes."""
    inside = PurePosixPath(rel).relative_to(HOOKS_DIR).as_posix()

    def module(ref: str) -> str:
        return f"{ref.split(':', 1)[0]}.py" if ref else ""

    data, sub = manifest.data, manifest.submission
    features = bool(data.features) and inside in (module(data.features), *data.features_files)
    post = bool(sub.postprocess) and inside == module(sub.postprocess)
    if not features and not post:  # a helper module or undeclared data: either hook may read it
        features, post = bool(data.features), bool(sub.postprocess)
    removed = [m.name for m in manifest.members if post or (features and fed_by_features(data, m))]
    return DamagedFile(rel, problem, features=features, postprocess=post, members=tuple(removed))


def _classify(manifest: Manifest, rel: str, problem: str) -> DamagedFile:
    if PurePosixPath(rel).parts[:1] == (RUNTIME_FOLDER,):
        return DamagedFile(rel, problem, runtime=True)
    if PurePosixPath(rel).parts[:1] == (HOOKS_DIR,):
        return _hook_damage(manifest, rel, problem)
    members, variants = [], []
    for m in manifest.members:
        base, per_variant, folders = member_files(m)
        hit = [v for v, files in per_variant.items() if rel in files]
        if rel in base or (not hit and any(PurePosixPath(rel).is_relative_to(d) for d in folders)):
            members.append(m.name)
        else:
            variants += [(m.name, v) for v in hit]
    return DamagedFile(rel, problem, fallback=bool(manifest.fallback) and rel == manifest.fallback,
                       members=tuple(members), variants=tuple(variants))


def _check_listed(root: Path, manifest: Manifest) -> None:
    """Raise unless the manifest lists files and checksums every file a member or the fallback needs."""
    where = root / MANIFEST_NAME
    if not manifest.files:
        raise BundleError(f"{where} lists no files; the bundle is damaged or was not written by ninefit")
    needed = {rel: f"member {m.name!r}" for m in manifest.members for v in m.variants for rel in (v.file, *v.data_files)}
    if manifest.fallback:
        needed[manifest.fallback] = "the fallback"
    unlisted = [f"{rel} ({who})" for rel, who in sorted(needed.items()) if rel not in manifest.files]
    if unlisted:
        raise BundleError(f"{where} has no checksum for {', '.join(unlisted)}: the manifest was edited or is damaged, "
                          f"so those files cannot be trusted. {_ADVICE}")


def check_files(root: str | os.PathLike, manifest: Manifest) -> BundleDamage:
    """Check the sha256 of every file the manifest lists; say which are damaged and what each affects.

    Raises:
        BundleError: The manifest itself cannot be trusted (no files listed, or
            a member's model without a checksum).
    """
    root = Path(root)
    _check_listed(root, manifest)
    damaged = []
    for rel, expected in sorted(manifest.files.items()):
        p = root / rel
        if not p.is_file():
            damaged.append(_classify(manifest, rel, MISSING))
        elif sha256_file(p) != expected:
            damaged.append(_classify(manifest, rel, MODIFIED))
    return BundleDamage(files=tuple(damaged), checked=len(manifest.files))


def _damage_error(root: Path, files: tuple[DamagedFile, ...]) -> ChecksumError:
    parts = []
    for problem, label in ((MISSING, "missing"), (MODIFIED, MODIFIED)):
        named = [f.path for f in files if f.problem == problem]
        if named:
            parts.append(f"{label}: {', '.join(named)}")
    return ChecksumError(f"bundle {root} failed its checksum check - {'; '.join(parts)}. {_ADVICE}")


def open_bundle(bundle_dir: str | os.PathLike, *, verify: bool = True, allow_damage: bool = False) -> Bundle:
    """Load the manifest of ``bundle_dir`` and (by default) verify every checksum.

    Args:
        verify: Check every file's sha256 (False: trust the files).
        allow_damage: Return a bundle with damaged members, rungs or other
            files listed in ``Bundle.damage`` instead of raising; damage to the
            vendored runtime still raises.

    Raises:
        BundleError: No bundle there, or its manifest cannot be read or trusted.
        ChecksumError: A damaged file (with ``allow_damage``, a runtime file only).
    """
    root = Path(bundle_dir)
    manifest = Manifest.load(root)  # no folder there: the error says what is (a spec?) and how to make one
    if not verify:
        return Bundle(root=root, manifest=manifest)
    damage = check_files(root, manifest)
    if damage and not allow_damage:
        raise _damage_error(root, damage.files)
    if damage.fatal:
        raise ChecksumError(
            f"bundle {root}: its vendored runtime is damaged ({'; '.join(f'{f.path} {f.problem}' for f in damage.fatal)}), "
            f"so nothing in it can run. {_ADVICE}")
    return Bundle(root=root, manifest=manifest, damage=damage)


__all__ = [
    "DAMAGED_REASON", "MISSING", "MODIFIED", "RUNTIME_FOLDER", "Bundle", "BundleDamage", "DamagedFile", "check_files",
    "checksum_tree", "fed_by_features", "member_files", "open_bundle", "sha256_file",
]
