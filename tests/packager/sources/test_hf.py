"""A transformers folder written by save_pretrained (a small BERT config, its tokenizer beside it) as a text
member through the CLI: offline, the class from the config, the tokenizer carried, parity, and the outputs of
the run equal to transformers' own forward; a folder without weights and one without the task's head refused."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly

transformers = pytest.importorskip("transformers")
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "big", "small", "red", "blue", "ran", "fast", "slow", "and"]
TEXTS = ["the cat sat on the mat", "a big red dog ran fast", "small blue cat", "the dog and the cat sat",
         "a slow red mat", "", "blue blue blue dog", "the big cat ran and the small dog sat on a red mat"]


def _folder(path, head: bool = True):
    """A tiny BERT (random weights, seeded) and its WordPiece tokenizer, saved with save_pretrained."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    path.mkdir(parents=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3)
    model = (BertForSequenceClassification if head else BertModel)(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


def _project(tmp_path, folder_line: str, task: str = "sequence-classification"):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows([[i, t] for i, t in enumerate(TEXTS)])
    (data / "sample_submission.csv").write_text("id,a,b,c\n" + "".join(f"{i},0,0,0\n" for i in range(len(TEXTS))))
    spec = tmp_path / "ninefit.toml"
    spec.write_text(f'[data]\ntest = "data/test.csv"\nid_column = "id"\nsample_submission = "data/sample_submission.csv"\n'
                    f'format = "text"\n\n[[model]]\nname = "bert"\n{folder_line}\ntask = "{task}"\nbatch_size = 4\n'
                    '  [model.text]\n  columns = ["text"]\n  max_length = 32\n')
    return spec


def test_a_save_pretrained_folder_packages_offline_and_runs(tmp_path, capsys, monkeypatch):
    import torch

    model, tokenizer = _folder(tmp_path / "bert")
    spec = _project(tmp_path, 'transformers = "bert"')
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://host.invalid")  # a download would fail loudly, not fetch
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile", "--target", "cpu"]) == 0
    assert "HF_HUB_OFFLINE" not in os.environ  # set while the folder is read, put back after
    member = Manifest.load(bundle).members[0]
    assert member.source == "transformers" and member.text.tokenizer == "models/bert/tokenizer.json"
    assert member.text.inputs == ("input_ids", "token_type_ids", "attention_mask")  # the tokenizer's own
    assert "trained (transformers folder)" in (bundle / "report.md").read_text()
    out = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path / "data"), "-o", str(out)]) == 0
    got = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    with torch.no_grad():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        want = model(**enc).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_folder_without_weights_or_without_the_head_is_refused(tmp_path, capsys):
    _folder(tmp_path / "bert")
    for weights in ("model.safetensors", "pytorch_model.bin"):
        (tmp_path / "bert" / weights).unlink(missing_ok=True)
    spec = _project(tmp_path, 'transformers = "bert"')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "has no weights: expected one of model.safetensors", "config.json")
    _folder(tmp_path / "bare")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (tmp_path / "bare" / f).unlink(missing_ok=True)
    spec.write_text(spec.read_text().replace('transformers = "bert"', 'transformers = "bare"'))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "has no tokenizer: expected one of tokenizer.json")
    spec.write_text(spec.read_text().replace('transformers = "bare"', 'transformers = "bert"'))
    _folder(tmp_path / "base", head=False)  # the encoder alone: a classifier head would be random
    spec.write_text(spec.read_text().replace('transformers = "bert"', 'transformers = "base"'))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "do not cover the BertForSequenceClassification", "missing classifier.")
    spec.write_text(spec.read_text().replace('"sequence-classification"', '"token-classification"'))
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  'task = "token-classification" cannot be packaged')


def test_feature_extraction_gives_the_mean_of_the_real_tokens(tmp_path, capsys):
    import torch
    from transformers import BertModel

    _folder(tmp_path / "base", head=False)
    spec = _project(tmp_path, 'transformers = "base"', task="feature-extraction")
    sample = tmp_path / "data" / "sample_submission.csv"
    sample.write_text("id," + ",".join(f"h{k}" for k in range(32)) + "\n"
                      + "".join(f"{i}," + ",".join("0" for _ in range(32)) + "\n" for i in range(len(TEXTS))))
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile", "--target", "cpu"]) == 0
    out = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path / "data"), "-o", str(out)]) == 0
    got = np.loadtxt(out, delimiter=",", skiprows=1, usecols=range(1, 33))
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(str(tmp_path / "base"))
    model = BertModel.from_pretrained(str(tmp_path / "base")).eval()
    with torch.no_grad():
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        want = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
