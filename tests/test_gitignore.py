"""What the README's walk-through and the examples write is ignored by git (a 266 MB ``bundle/`` showed as
untracked)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(30)


def _written_by_the_readme() -> set[str]:
    """Every path a ``ninefit`` command of the README's shell blocks writes, relative to the repository root."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line.split("#")[0] for block in re.findall(r"```sh\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.strip().startswith("ninefit ")]
    assert len(commands) >= 8, "the README's walk-through moved: update this test"
    paths: set[str] = set()
    for cmd in commands:
        words = cmd.split()
        for flag, value in zip(words, words[1:]):
            if flag in ("-o", "--out", "--chart", "--keep", "--report", "--work-dir"):
                paths.add(value)
        if words[1] == "run":  # the run's report and work folder sit beside its submission
            out = PurePosixPath(next(v for f, v in zip(words, words[1:]) if f in ("-o", "--out")))
            paths |= {str(out.with_name(f"{out.stem}.run_report.json")), f"{out.with_name(out.stem + '.ninefit-work')}/x"}
        if words[1] == "simulate" and "--keep" not in words:
            paths.add("ninefit-simulation/x")  # its default --keep
    return {p for p in paths if not p.startswith(("/", "~"))}


def _written_by_the_examples() -> set[str]:
    out = {"examples/digits/work/bundle/manifest.json"}  # make demo
    for prepare in ROOT.glob("examples/*/prepare.py"):
        source = prepare.read_text(encoding="utf-8")
        for folder in re.findall(r'HERE / "(\w+)"', source):
            out.add(f"{prepare.parent.relative_to(ROOT).as_posix()}/{folder}/x")
    assert {"examples/digits/data/x", "examples/text/tokenizer/x", "examples/models/checkpoints/x"} <= out
    return out


def test_generated_files_are_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = sorted(_written_by_the_readme() | _written_by_the_examples())
    assert "bundle" in paths and "text-bundle" in paths and "submission.csv" in paths
    done = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"], cwd=ROOT, capture_output=True,
                          text=True, input="\n".join(p.rstrip("/") + ("/x" if not Path(p).suffix and "/" not in p
                                                                        else "") for p in paths))
    unmatched = [line.split("\t")[-1] for line in done.stdout.splitlines() if line.startswith("::")]
    assert not unmatched, f"not in .gitignore: {unmatched}"
