"""Ids are sacred text: every id, however spelled, comes back byte for byte in the submission.

Each project of tests/fixtures/projects.py is packaged on its public data (plain
ids), then run through the CLI on the same rows under hostile ids (commas,
quotes, CR, LF, tab, the words pandas reads as missing, empty, leading zeros,
very long, unicode) in CSV and in Parquet, with and without hooks and in the
long, top-k and RLE formats. The submission is read back with a real CSV
parser and compared with the expected rows, ids renamed, computed apart from ninefit.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import projects

REPO = Path(__file__).resolve().parents[1]

HOSTILE = ["a,b", 'say "hi"', "cr\rret", "lf\nline", "crlf\r\nboth", "tab\tx", "NA", "null", "NaN", "None", "",
           "nan", "#N/A", "007", "0", "x" * 5000, "ünï©ødé ✓ 漢字", " lead", "trail ", "-1.#IND", "<NA>", "N/A",
           "TRUE", "1e5"]
KINDS = ("groupby", "topk", "long", "rle", "postprocess")


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)  # CRLF: every CR and LF inside a field is quoted


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path, str]]:
    from packager.build import package

    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(kind) / kind
        spec, expected = getattr(projects, f"make_{kind}")(folder)
        bundle = folder.parent / "bundle"
        package(spec, bundle)
        out[kind] = (folder, bundle, expected)
    return out


def _rename(folder: Path, dest: Path, expected: str, parquet: bool) -> tuple[Path, list[list[str]]]:
    """The project's test table and sample with hostile ids; returns (--data, the expected rows)."""
    import pandas as pd

    data = folder / "data"
    test = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False)
    id_col = test.columns[0]
    old = test[id_col].tolist()
    new = {o: (HOSTILE[n] if n < len(HOSTILE) else o) for n, o in enumerate(old)}
    test[id_col] = [new[o] for o in old]
    dest.mkdir()
    table = dest / ("test.parquet" if parquet else "test.csv")
    if parquet:  # the features as numbers where they are (the groupby's store column stays text)
        for col in test.columns[1:]:
            try:
                test[col] = pd.to_numeric(test[col])
            except ValueError:
                pass
        test.to_parquet(table, index=False)
    else:
        _write_csv(table, [list(test.columns), *test.values.tolist()])

    def renamed(rid: str) -> str:  # the long format's "<id>-<target>" ids
        if rid in new:
            return new[rid]
        base, _, target = rid.rpartition("-")
        return f"{new[base]}-{target}"

    sample = _rows((data / "sample_submission.csv").read_text())
    _write_csv(dest / "sample_submission.csv", [sample[0], *([renamed(r[0]), *r[1:]] for r in sample[1:])])
    want = _rows(expected)
    return table, [want[0], *([renamed(r[0]), *r[1:]] for r in want[1:])]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_ids_come_back_byte_for_byte(built, kind, fmt, tmp_path):
    folder, bundle, expected = built[kind]
    table, want = _rename(folder, tmp_path / "data", expected, fmt == "parquet")
    out = tmp_path / "submission.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(table), "--out", str(out), "--quiet"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = _rows(out.read_bytes().decode("utf-8"))
    assert len(got) == len(want)  # a CR or LF written bare would add rows
    assert got == want


def test_the_writer_quotes_every_field_a_reader_would_split(tmp_path):
    from runtime.output.submission import write_atomic

    rows = [[h, str(n)] for n, h in enumerate(HOSTILE)]
    write_atomic(tmp_path / "s.csv", ["id", "v"], rows)
    raw = (tmp_path / "s.csv").read_bytes()
    assert raw.count(b"\r") == sum(h.count("\r") for h in HOSTILE)  # no CR of its own: lines end in \n
    assert _rows(raw.decode()) == [["id", "v"], *rows]
    import pandas as pd

    back = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    assert back["id"].tolist() == HOSTILE


def test_a_sample_listing_an_id_twice_is_refused(built, tmp_path, capsys):
    from packager.cli import main
    from tests.cli_checks import fails_cleanly

    folder, bundle, _ = built["topk"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_bytes((folder / "data" / "test.csv").read_bytes())
    sample = _rows((folder / "data" / "sample_submission.csv").read_text())
    _write_csv(data / "sample_submission.csv", [*sample, sample[3]])  # q2 twice: 21 rows for 20 test rows
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(data), "--out", str(tmp_path / "s.csv")],
                  "sample_submission.csv lists 1 id(s) more than once", "'q2' (line 4 and line 22)")
    assert not (tmp_path / "s.csv").exists()


def test_a_null_parquet_id_is_refused_with_its_row(built, tmp_path, capsys):
    import pandas as pd

    from packager.cli import main
    from tests.cli_checks import fails_cleanly

    folder, bundle, _ = built["topk"]
    test = pd.read_csv(folder / "data" / "test.csv", dtype={"id": str})
    test["id"] = test["id"].astype(object)
    test.loc[5, "id"] = None
    data = tmp_path / "data"
    data.mkdir()
    test.to_parquet(data / "test.parquet", index=False)
    (data / "sample_submission.csv").write_bytes((folder / "data" / "sample_submission.csv").read_bytes())
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(data / "test.parquet"), "--out",
                                 str(tmp_path / "s.csv")], "1 id(s) in column 'id' are null (rows 5)")
