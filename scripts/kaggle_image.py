"""Refresh packager/data/kaggle_image.txt from Kaggle's image itself.

    python scripts/kaggle_image.py command        # the one line to run in a Kaggle notebook
    python scripts/kaggle_image.py merge FILE     # fold the kaggle_image.txt it wrote into ours
    python scripts/kaggle_image.py show           # the facts ninefit reads now

`merge` replaces the measured facts (python, glibc, arch, cuda, torch,
driver) and the whole package list, keeps everything else (the machine shapes,
the prose), and checks the result parses before writing it (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packager.offline.image import IMAGE_REFRESH_COMMAND, KAGGLE_IMAGE_FILE, image_facts, merge_snapshot  # noqa: E402
from runtime.errors import NinefitError  # noqa: E402
from runtime.fileio import atomic_write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("command", help="print the line to run in a Kaggle notebook")
    merge = sub.add_parser("merge", help="fold a kaggle_image.txt written in a notebook into the image file")
    merge.add_argument("snapshot", type=Path)
    merge.add_argument("--into", type=Path, default=KAGGLE_IMAGE_FILE, help="image file (default: %(default)s)")
    sub.add_parser("show", help="print the facts ninefit reads")
    args = parser.parse_args(argv)
    try:
        if args.what == "command":
            print("# In a Kaggle notebook (accelerator GPU T4 x2, environment 'latest'), run in a cell:")
            print(IMAGE_REFRESH_COMMAND)
            print("# then download /kaggle/working/kaggle_image.txt and run:")
            print("#   python scripts/kaggle_image.py merge kaggle_image.txt")
        elif args.what == "merge":
            text = merge_snapshot(args.snapshot.read_text(encoding="utf-8"), args.into.read_text(encoding="utf-8"))
            atomic_write(args.into, text)
            facts = image_facts(args.into)
            print(f"{args.into}: {facts.summary()}; {sum(1 for ln in text.splitlines() if '==' in ln and not ln.startswith('#'))} packages")
        else:
            facts = image_facts()
            print(facts.summary())
            for key, source in facts.sources.items():
                print(f"  {key}: {source}")
    except (NinefitError, OSError) as exc:
        print(f"kaggle_image.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
