"""``ninefit verify BUNDLE_DIR``: check a bundle before uploading it (or after downloading it)."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Exit status of a damaged bundle (a damaged manifest included); 0 is intact, 2 a usage error.
DAMAGED_EXIT = 1


def register(sub) -> None:
    p = sub.add_parser("verify", help="check a bundle's manifest and every file's checksum",
                       description="Read the bundle's manifest (its schema), check the sha256 of every file it lists, "
                       "and say which files are missing or modified and what each takes out of a run: a member's "
                       "model removes that member, a cheaper rung's model that rung, a file of runtime/ stops the "
                       "run. Run it before uploading a bundle to Kaggle.",
                       epilog=f"Exit status: 0 when the bundle is intact; {DAMAGED_EXIT} when any file is missing or "
                       "modified, or the manifest cannot be read or trusted; 2 when there is no bundle there (no "
                       "folder, no manifest.json) or its manifest is from a newer ninefit.")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.set_defaults(func=run)


def _consequences(damage) -> list[str]:
    """What a run of this bundle would do, given the damage."""
    if damage.fatal:
        return ["a run would stop before anything runs (exit 2): its vendored runtime is damaged"]
    out = [f"a run would leave out member {m!r}" for m in damage.removed_members]
    out += [f"a run would run member {m!r} without its rung(s) {', '.join(vs)}" for m, vs in damage.removed_variants.items()]
    if damage.fallback:
        out.append("rows no member covers would get the sample submission's values, not the fallback's")
    return out or ["a run would not read the damaged files, but the upload is not the bundle that was packaged"]


def run(args: argparse.Namespace) -> int:
    from runtime.bundle import check_files
    from runtime.errors import BundleError, SchemaVersionError
    from runtime.manifest import MANIFEST_NAME, Manifest, not_a_bundle_folder

    root: Path = args.bundle
    if not root.is_dir():
        raise not_a_bundle_folder(root)
    if not (root / MANIFEST_NAME).is_file():
        raise BundleError(f"{root / MANIFEST_NAME} not found: {root} is not a ninefit bundle "
                          "(expected a manifest.json at its root)")
    advice = "Re-upload the bundle exactly as `ninefit package` wrote it (or re-package)."
    try:
        manifest = Manifest.load(root)
        damage = check_files(root, manifest)
    except SchemaVersionError:
        raise  # not damage: a newer ninefit wrote it (exit 2, with what to do)
    except BundleError as exc:
        print(f"bundle {root}: DAMAGED - its manifest cannot be trusted, so no file can be checked:\n  {exc}")
        return DAMAGED_EXIT
    head = (f"bundle {root}: manifest schema {manifest.schema_version} ({manifest.name!r}, "
            f"{len(manifest.members)} member(s), {damage.checked} files listed)")
    if not damage:
        print(f"{head}\nintact: every file matches its sha256")
        return 0
    print(f"{head}\nDAMAGED: {len(damage.files)} of {damage.checked} file(s) fail their checksum")
    for line in damage.lines():
        print(f"  {line}")
    for line in _consequences(damage):
        print(line)
    print(advice)
    return DAMAGED_EXIT
