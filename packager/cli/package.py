"""``ninefit package SPEC -o BUNDLE_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("package", help="export, verify and bundle the models of a spec",
                       description="Export each model of SPEC to ONNX, verify it against the torch model on real sample "
                       "data, and write a self-contained, checksummed bundle folder (atomically).")
    p.add_argument("spec", type=Path, help="ensemble spec (TOML); see docs/spec.md")
    p.add_argument("-o", "--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--no-profile", action="store_true",
                   help="do not measure the members here (the profile `ninefit estimate` and the runtime's planner use)")
    p.add_argument("--profile-seconds", type=float, default=3.0, metavar="S",
                   help="measuring time per member when profiling (default: %(default)s)")
    off = p.add_argument_group("offline install on Kaggle (wheels/, dataset-metadata.json)")
    off.add_argument("--no-wheels", action="store_true", help="do not collect the wheelhouse")
    off.add_argument("--target", default="t4x2",
                     help="Kaggle accelerator the bundle is for: cpu, or a GPU target such as t4x2 (default: %(default)s). "
                     "It picks the wheels and is recorded in the manifest: a GPU target whose models end up on the CPU "
                     "is a loud warning in the run log, the run report and `ninefit simulate`'s verdict; a torch newer "
                     "than that image's (packager/data/kaggle_image.txt) is warned about")
    off.add_argument("--requirement", action="append", default=None, metavar="REQ",
                     help="wheel requirement to collect instead of the default (repeatable; default: onnxruntime-gpu, "
                     "or onnxruntime for --target cpu; a language model's bundle collects only these, e.g. vllm==VERSION)")
    off.add_argument("--kaggle-python", default=None, metavar="X.Y",
                     help=f"Python version of Kaggle's image (default: {_image_python()}, the 'python' fact of "
                     "packager/data/kaggle_image.txt; never this machine's)")
    off.add_argument("--find-links", action="append", type=Path, default=[], metavar="DIR", help="also resolve wheels from DIR (repeatable)")
    off.add_argument("--no-index", action="store_true", help="resolve from --find-links folders only, not from PyPI")
    off.add_argument("--no-install-check", action="store_true", help="skip the offline install check of the wheelhouse")
    off.add_argument("--kaggle-owner", default=None, metavar="NAME",
                     help="Kaggle user owning the dataset (default: KAGGLE_USERNAME or ~/.kaggle/kaggle.json)")
    off.add_argument("--dataset-title", default=None, help="dataset title (default: the spec's name)")
    off.add_argument("--dataset-slug", default=None, help="dataset slug (default: from the title)")
    p.set_defaults(func=run)


def _image_python() -> str:
    """The image file's Python (``X.Y``), for the help text; a broken file is reported when packaging."""
    from packager.offline.image import image_facts
    from runtime.errors import PackagingError

    try:
        return image_facts().python_version
    except PackagingError:
        return "unreadable: see the error when packaging"


def run(args: argparse.Namespace) -> int:
    from packager.build import PackageOptions, package
    from packager.generate import is_generative_spec
    from packager.offline.image import image_facts

    if is_generative_spec(args.spec):  # [[model]] causal_lm: the generative bundle (packager.generate)
        return _generative(args)

    steps = []
    if not args.no_profile:
        from packager.estimate.measure.profile import ProfileOptions, profile_step

        if not args.profile_seconds > 0:
            from runtime.errors import SpecError

            raise SpecError(f"--profile-seconds {args.profile_seconds}: expected a positive number of seconds")
        steps.append(profile_step(ProfileOptions(seconds_per_member=args.profile_seconds)))
    from packager.offline import dataset_step, offline_summary, wheelhouse_step

    if not args.no_wheels:  # before the dataset step, so its size check includes the wheels
        steps.append(wheelhouse_step(
            args.requirement, target=args.target, python_version=args.kaggle_python or image_facts().python_version,
            find_links=args.find_links,
            index=not args.no_index, verify=not args.no_install_check,
        ))
    steps.append(dataset_step(
        args.dataset_title, owner=args.kaggle_owner, slug=args.dataset_slug,
        owner_hint="pass --kaggle-owner NAME or set KAGGLE_USERNAME, then package again",
    ))
    result = package(args.spec, args.out, PackageOptions(force=args.force, steps=tuple(steps), target=args.target))
    for w in result.warnings:
        print(f"warning: {w}")
    from packager.push.shapes import unsupported_gpu

    if args.target in image_facts().shapes and unsupported_gpu(args.target):
        print(f"warning: {unsupported_gpu(args.target)}: the notebook would fail at its first CUDA operation, and "
              "`ninefit push` refuses it unless the notebook pins an older image (--docker-image)")
    from packager.offline.dataset import check_bundle

    # Counted as report.md counts them (every file uploaded, the manifest included), so the two agree.
    _, count, _ = check_bundle(result.bundle)
    print(f"bundle written to {result.bundle} ({len(result.manifest.members)} member(s), {count} files); "
          f"report: {result.bundle / 'report.md'}")
    for line in offline_summary(result.bundle):
        print(line)
    return 0


def _generative(args: argparse.Namespace) -> int:
    """A causal LM's bundle: its folder carried and verified; no ONNX export, profile or wheelhouse (said)."""
    from packager.generate import package_generative

    steps = []
    if args.requirement and not args.no_wheels:  # asked for (vLLM's wheels, say): collected and checked as usual
        from packager.offline import wheelhouse_step
        from packager.offline.image import image_facts

        steps.append(wheelhouse_step(
            args.requirement, target=args.target, python_version=args.kaggle_python or image_facts().python_version,
            find_links=args.find_links, index=not args.no_index, verify=not args.no_install_check))
    result = package_generative(args.spec, args.out, force=args.force, target=args.target, steps=steps)
    for w in result.warnings:
        print(f"warning: {w}")
    rates = result.profile["costs"]["decode_tokens_per_s"]
    print(f"bundle written to {result.bundle} (generative: {result.manifest.generate.name if result.manifest.generate else ''}, "
          f"{len(result.manifest.files)} files; decode {', '.join(f'{r:,.0f} tokens/s at batch {b}' for b, r in rates.items())} "
          f"here); report: {result.bundle / 'report.md'}")
    if steps:
        from packager.offline import offline_summary

        for line in offline_summary(result.bundle):
            print(line)
    elif not args.no_wheels:
        print("note: no wheelhouse for a generative bundle unless asked: it runs on the image's transformers and "
              "torch; for vLLM, which Kaggle's image lacks, pass --requirement vllm==VERSION (its wheels are "
              "collected for Kaggle's Python and installed offline by the notebook)")
    return 0
