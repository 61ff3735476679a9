"""The text example end to end: package, run through the CLI, and bad text input.

The example (examples/text) is prepared small (a few hundred rows, one short
epoch) in a temporary copy, packaged once, then run by ``ninefit run``. Its
accuracy must equal the torch model's on the same rows, tokenised the same way
(independently here, with ``tokenizers`` itself: overflowing windows, each run
alone at its real length, softmax averaged over a row's windows).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_checks import fails_cleanly

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")
pytest.importorskip("faker")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
LANGUAGES = ("en_US", "de_DE", "it_IT", "nl_BE", "pl_PL")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("text") / "text"
    shutil.copytree(REPO / "examples" / "text", dest,
                    ignore=shutil.ignore_patterns("data", "checkpoints", "tokenizer", "__pycache__"))
    subprocess.run([sys.executable, "prepare.py", "--train", "600", "--test", "160", "--epochs", "4"], cwd=dest,
                   check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def text_bundle(text_dir, tmp_path_factory) -> Path:
    from packager.build import package

    out = tmp_path_factory.mktemp("bundles") / "text"
    package(text_dir / "ninefit.toml", out)
    return out


def run_cli(bundle: Path, data: Path, out: Path, *extra: str) -> int:
    from runtime.cli import main

    return main(["run", str(bundle), "--data", str(data), "--out", str(out), *extra])  # the whole table: its text lines are checked


def read_column(path: Path, column: str) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["id"]: r[column] for r in csv.DictReader(f)}


def torch_labels(text_dir: Path, bundle: Path) -> dict[str, str]:
    """The torch model's labels: the bundle's tokenizer used directly, every window at its real length."""
    import torch
    from tokenizers import Tokenizer

    from tests.fixtures.modules import load_module

    make_model = load_module(text_dir, "models").make_model
    manifest = json.loads((bundle / "manifest.json").read_text())
    text = manifest["members"][0]["text"]
    tok = Tokenizer.from_file(str(bundle / text["tokenizer"]))
    tok.enable_truncation(text["max_length"], stride=text["stride"])
    model = make_model()
    model.load_state_dict(torch.load(text_dir / "checkpoints" / "bert.pt"))
    model.eval()
    out = {}
    with torch.no_grad():
        for rid, body in read_column(text_dir / "data" / "test.csv", "text").items():
            enc = tok.encode(body)
            probs = []
            for w in [enc, *enc.overflowing]:
                ids = torch.tensor([w.ids])
                probs.append(torch.softmax(model(ids, torch.ones_like(ids)), dim=1).numpy()[0])
            out[rid] = LANGUAGES[int(np.argmax(np.mean(probs, axis=0)))]
    return out


def test_run_accuracy_equals_the_torch_models(text_dir, text_bundle, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    assert run_cli(text_bundle, text_dir / "data", out) == 0
    printed = capsys.readouterr().out
    got = read_column(out, "language")
    truth = read_column(text_dir / "data" / "test_labels.csv", "language")
    expected = torch_labels(text_dir, text_bundle)
    assert got == expected  # row by row, so the accuracies are equal too
    accuracy = np.mean([got[i] == y for i, y in truth.items()])
    assert accuracy == np.mean([expected[i] == y for i, y in truth.items()])
    assert len(set(expected.values())) >= 3  # not a constant model: the equality says something
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    text = report["members"][0]["text"]
    assert text["lengths"]["rows"] == 160 and text["lengths"]["rows_with_windows"] > 0
    assert text["lengths"]["windows"] > 160 and sum(text["lengths"]["histogram"].values()) == 160
    assert 1.0 <= text["padding_waste"] < 1.5  # length-sorted: little padding
    assert text["real_tokens"] == text["lengths"]["tokens"]
    assert "padding waste" in printed and "row(s) split" in printed


@pytest.fixture(scope="module")
def text_profile(text_bundle, text_dir) -> dict:
    from packager.estimate.measure.profile import ProfileOptions, profile_bundle

    return profile_bundle(text_bundle, text_dir / "data", ProfileOptions(seconds_per_member=0.5, check_run=False,
                                                                         startup=False)).to_dict()  # its JSON


def test_the_profile_costs_text_per_token(text_profile):
    rec = text_profile["members"]["bert"]["fp32"]
    text = rec["text"]
    assert text["s_per_token"] > 0 and len(text["points"]) >= 2
    assert text["points"][-1]["length"] > text["points"][0]["length"]
    lengths = text["lengths"]  # of the rows profiled (the public test, tiled)
    expected = (text["s_per_token"] * text["padded_tokens"] + text["s_per_window"] * lengths["windows"]) / lengths["rows"]
    assert rec["s_per_row"] == pytest.approx(expected)
    assert "public test's token-length distribution" in text["assumption"]


def test_the_planner_gets_per_row_costs_of_this_tests_lengths(text_dir, text_bundle, text_profile, tmp_path,
                                                              monkeypatch):
    """A hidden test of longer texts than the public one is planned as dearer per row."""
    import pandas as pd

    import runtime.execute.executor
    from packager.estimate.measure.profile import store_profile

    bundle = tmp_path / "bundle"
    shutil.copytree(text_bundle, bundle)
    store_profile(bundle, text_profile)
    public = pd.read_csv(text_dir / "data" / "test.csv", dtype=str, keep_default_na=False)
    data = tmp_path / "data"
    data.mkdir()
    longer = public.assign(text=[(t + " ") * 4 for t in public["text"]])  # every text four times as long
    longer.to_csv(data / "test.csv", index=False)
    longer[["id"]].assign(language="en_US").to_csv(data / "sample_submission.csv", index=False)
    seen = {}
    real = runtime.execute.executor.Executor.__init__

    def spy(self, work, *args, **kwargs):
        seen.update(work.profile["bert"]["fp32"])
        real(self, work, *args, **kwargs)

    monkeypatch.setattr(runtime.execute.executor.Executor, "__init__", spy)
    assert run_cli(bundle, data, tmp_path / "submission.csv", "--time-limit", "10m") == 0
    public_cost = text_profile["members"]["bert"]["fp32"]["s_per_row"]
    assert seen["s_per_row"] > 2.5 * public_cost  # about 4x the tokens per row


def test_an_empty_string_is_a_row_like_any_other(text_dir, text_bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_text('id,text\na,""\nb,Hallo Welt\nc,\n', encoding="utf-8")
    (data / "sample_submission.csv").write_text("id,language\na,x\nb,x\nc,x\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    assert run_cli(text_bundle, data, out) == 0
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["covered_rows"] == 3
    assert set(read_column(out, "language").values()) <= set(LANGUAGES)


def test_a_missing_text_column(text_dir, text_bundle, tmp_path, capsys):
    from runtime.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_text("id,body\na,Hallo\n", encoding="utf-8")
    (data / "sample_submission.csv").write_text("id,language\na,x\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, ["run", str(text_bundle), "--data", str(data), "--out", str(out)],
                  "no text column(s) 'text'", "its columns: id, body")
    assert not out.exists()


@pytest.mark.parametrize(("values", "needle"), [(["Hallo", None], "holds a missing value in row 1 (id 'b')"),
                                                ([5, 7], "holds a non-string value of type int (5) in row 0 (id 'a')")])
def test_a_non_string_value(text_dir, text_bundle, tmp_path, capsys, values, needle):
    import pandas as pd

    from runtime.cli import main

    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"id": ["a", "b"], "text": values}).to_parquet(data / "test.parquet")
    (data / "sample_submission.csv").write_text("id,language\na,x\nb,x\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, ["run", str(text_bundle), "--data", str(data / "test.parquet"), "--out", str(out)],
                  needle, "every value must be a string")
    assert not out.exists()


def test_a_text_longer_than_the_window_settings_allow(text_dir, text_bundle, tmp_path, capsys):
    from runtime.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(text_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())  # not checksummed: a user could set this
    manifest["members"][0]["text"]["max_windows"] = 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    data = tmp_path / "data"
    data.mkdir()
    long = " ".join(["Haus Baum Licht Stadt"] * 200)
    (data / "test.csv").write_text(f"id,text\na,Hallo\nb,{long}\n", encoding="utf-8")
    (data / "sample_submission.csv").write_text("id,language\na,x\nb,x\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(data), "--out", str(out)],
                  "row 'b' needs", "more than max_windows = 2")
    assert not out.exists()


def test_a_tokenizer_that_does_not_load(text_dir, tmp_path, capsys):
    from packager.cli import main

    spec = tmp_path / "spec"
    shutil.copytree(text_dir, spec, ignore=shutil.ignore_patterns("__pycache__"))
    (spec / "tokenizer" / "tokenizer.json").write_text('{"model": {"type": "NoSuchModel"}}', encoding="utf-8")
    out = tmp_path / "bundle"
    fails_cleanly(capsys, main, ["package", str(spec / "ninefit.toml"), "-o", str(out), "--no-profile", "--no-wheels"],
                  "model 'bert': tokenizer", "does not load", "expected a Hugging Face tokenizers tokenizer.json")
    assert not out.exists() and not list(tmp_path.glob(".bundle*"))  # nothing half-written


def test_a_non_finite_output_costs_only_its_row(text_dir, tmp_path):
    """A window whose output is NaN loses its row alone, for this member; the run goes on."""
    from tokenizers import Tokenizer

    from packager.build import package

    work = tmp_path / "nan"
    shutil.copytree(text_dir, work, ignore=shutil.ignore_patterns("data"))
    unk = Tokenizer.from_file(str(work / "tokenizer" / "tokenizer.json")).token_to_id("[UNK]")
    (work / "nanmodel.py").write_text(  # the project's model, NaN on a window holding the unknown token
        "from models import make_model\n"
        "from tests.fixtures.models import nan_on_token\n\n"
        "def make():\n"
        f"    return nan_on_token(make_model(), token={unk})\n", encoding="utf-8")
    import torch

    state = torch.load(work / "checkpoints" / "bert.pt")
    torch.save({f"inner.{k}": v for k, v in state.items()}, work / "checkpoints" / "nan.pt")
    spec = work / "ninefit.toml"
    spec.write_text(spec.read_text().replace('factory = "models:make_model"', 'factory = "nanmodel:make"')
                    .replace("bert.pt", "nan.pt").replace('test = "data/test.csv"', 'test = "../data/test.csv"')
                    .replace('"data/sample_submission.csv"', '"../data/sample_submission.csv"'), encoding="utf-8")
    shutil.copytree(text_dir / "data", tmp_path / "data")
    bundle = tmp_path / "bundle"
    package(spec, bundle)

    data = tmp_path / "rows"
    data.mkdir()
    long = " ".join(["Hallo Welt, wie geht es dir heute"] * 80)  # several windows, one of them poisoned
    (data / "test.csv").write_text(f'id,text\na,Hallo Welt\nb,\u2603\u2603\u2603\nc,Buongiorno\nd,"{long} \u2603"\n',
                                   encoding="utf-8")
    (data / "sample_submission.csv").write_text("id,language\na,x\nb,x\nc,x\nd,x\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    assert run_cli(bundle, data, out) == 0
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    member = report["members"][0]
    assert (member["status"], member["rows"], member["rows_nonfinite_output"]) == ("done", 2, 2), member
    assert report["covered_rows"] == 2
    labels = read_column(out, "language")
    assert labels["b"] == labels["d"] == "x"  # the fallback stands for the lost rows
    assert {labels["a"], labels["c"]} <= set(LANGUAGES)


def test_an_int8_rung_of_the_text_member_is_guarded_and_agrees_with_fp32(text_dir, tmp_path, capsys):
    """The text member's int8 CPU rung: made by dynamic quantisation (a BERT is MatMul, not Conv), kept by the
    accuracy guard with its agreement as its value, and on the test texts its labels agree with the fp32 graph's."""
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from packager.cli import main
    from runtime.manifest import Manifest

    spec = text_dir / "int8.toml"
    spec.write_text((text_dir / "ninefit.toml").read_text() + '\n  [[model.variant]]\n  name = "int8"\n'
                    '  precision = "int8"\n')
    out = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile", "--force"]) == 0, \
        capsys.readouterr().err
    variants = {v.name: v for v in Manifest.load(out).members[0].variants}
    int8 = variants["int8"]
    assert int8.precision == "int8" and int8.file.endswith("int8-dynamic.onnx") and 0.99 <= int8.value_factor <= 1.0
    assert "| bert | int8 | int8 | onnxruntime | int8-dynamic.onnx |" in (out / "report.md").read_text()
    ops = {n.op_type for n in onnx.load(str(out / int8.file)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops, ops
    text = json.loads((out / "manifest.json").read_text())["members"][0]["text"]
    tok = Tokenizer.from_file(str(out / text["tokenizer"]))
    tok.enable_truncation(64)  # each text's first 64 tokens: its start says its language
    tok.enable_padding(length=64)
    rows = list(read_column(text_dir / "data" / "test.csv", "text").values())
    encoded = tok.encode_batch(rows)
    feed = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
    labels = {}
    for name in ("fp32", "int8"):
        session = ort.InferenceSession(str(out / variants[name].file), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        labels[name] = session.run(None, {k: feed[k] for k in names})[0].argmax(1)
    assert len(set(labels["fp32"].tolist())) >= 3  # not a constant model
    assert np.mean(labels["int8"] == labels["fp32"]) >= 0.97
