"""packager.tokenizer and the spec's [model.text]: tokenizer into the bundle (or converted), text keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.spec import load_spec
from packager.tokenizer import package_tokenizer
from runtime.errors import SpecError

pytest.importorskip("tokenizers")

WORDS = "alpha beta gamma delta epsilon".split()

SPEC = """
name = "t"
[data]
format = "text"
test = "test.csv"
id_column = "id"
sample_submission = "sample.csv"
[[model]]
name = "m"
onnx = "m.onnx"
output = "logits"
  [model.text]
  columns = ["text"]
  tokenizer = "tok/tokenizer.json"
{extra}
"""


@pytest.fixture()
def project(tmp_path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    (tmp_path / "tok").mkdir()
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    (tmp_path / "test.csv").write_text("id,text\na,alpha beta\n", encoding="utf-8")
    (tmp_path / "sample.csv").write_text("id,y\na,0\n", encoding="utf-8")
    return tmp_path


def write_spec(project: Path, extra: str = "") -> Path:
    path = project / "ninefit.toml"
    path.write_text(SPEC.format(extra=extra), encoding="utf-8")
    return path


def test_text_keys_and_derived_inputs(project):
    spec = load_spec(write_spec(project, 'inputs = ["input_ids", "token_type_ids", "attention_mask"]\n'
                                         'max_length = 64\nstride = 16\nreduce = "max"\nmax_tokens = 4096'))
    m = spec.models[0]
    assert [(i.name, i.dtype, i.shape) for i in m.inputs] == [
        ("input_ids", "int64", ("batch", "sequence")), ("token_type_ids", "int64", ("batch", "sequence")),
        ("attention_mask", "int64", ("batch", "sequence"))]
    t = m.text
    assert (t.columns, t.max_length, t.stride, t.reduce, t.max_tokens, t.truncation) == (("text",), 64, 16, "max", 4096, "windows")
    assert Path(t.tokenizer) == project / "tok" / "tokenizer.json"


@pytest.mark.parametrize(("extra", "needle"), [
    ('columns = ["a", "b", "c"]', "expected one text column, or two for a pair"),
    ('columns = ["body"]', "columns ['body'] are not in the test data"),
    ('inputs = ["attention_mask"]', "with input_ids among them"),
    ('inputs = ["input_ids", "position_ids"]', "each one of input_ids, attention_mask, token_type_ids"),
    ("max_length = 1", "`max_length` in [model.text] of model 'm' is 1 (an integer); expected a whole number >= 2"),
    ("max_length = 64\nstride = 40", "stride = 40; windows share stride tokens"),
    ('truncation = "middle"', 'expected one of: "windows", "head", "error"'),
    ('reduce = "median"', 'expected one of: "mean", "max"'),
    ("max_tokens = -1", "is -1 (an integer); expected a whole number >= 0"),
    ("max_lenght = 64", "`max_lenght` in [model.text] of model 'm': unknown key; did you mean `max_length`?"),
    ("pad_id = -2", "pad_id = -2; expected a token id >= 0"),
])
def test_bad_text_keys_name_the_problem(project, extra, needle):
    text = SPEC.format(extra="").replace('  columns = ["text"]\n', "") + extra + "\n"
    if "columns" not in extra:
        text += 'columns = ["text"]\n'
    (project / "ninefit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(project / "ninefit.toml")
    assert needle in str(info.value) and "[model.text] of model 'm'" in str(info.value)


def test_text_model_without_text_format_or_with_inputs(project):
    path = write_spec(project)
    path.write_text(path.read_text().replace('format = "text"\n', ""), encoding="utf-8")
    with pytest.raises(SpecError, match='needs \\[data\\] format = "text"'):
        load_spec(path)
    path = write_spec(project, '[[model.input]]\nname = "x"\nshape = ["batch", 3]')
    with pytest.raises(SpecError, match="leave out \\[\\[model.input\\]\\]"):
        load_spec(path)


def test_the_tokenizer_goes_into_the_bundle_with_its_pad_id(project, tmp_path):
    m = load_spec(write_spec(project)).models[0]
    text = package_tokenizer(m, tmp_path / "bundle" / "models" / "m")
    saved = tmp_path / "bundle" / "models" / "m" / "tokenizer.json"
    assert Path(text.tokenizer) == saved.resolve() and saved.is_file()
    assert text.pad_id == 1  # the vocabulary's [PAD]
    assert json.loads(saved.read_text())["truncation"] is None


def test_a_transformers_folder_without_tokenizer_json_is_converted(project, tmp_path):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"{t}\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    folder = tmp_path / "hf"
    BertTokenizer(str(vocab)).save_pretrained(str(folder))
    (folder / "tokenizer.json").unlink()  # a folder with only a vocabulary: converted at packaging time
    shutil.copy(vocab, folder / "vocab.txt")
    path = write_spec(project)
    path.write_text(path.read_text().replace("tok/tokenizer.json", str(folder)), encoding="utf-8")
    text = package_tokenizer(load_spec(path).models[0], tmp_path / "out")
    tok = Tokenizer.from_file(text.tokenizer)
    assert tok.encode("Alpha gamma").ids == [2, 5, 7, 3]  # [CLS] alpha gamma [SEP], lower-cased as BERT's
    assert text.pad_id == 0


@pytest.mark.parametrize("content", ["not json", '{"model": {"type": "Nope"}}'])
def test_a_tokenizer_that_does_not_load_is_a_spec_error(project, tmp_path, content):
    (project / "tok" / "tokenizer.json").write_text(content, encoding="utf-8")
    with pytest.raises(SpecError, match=r"model 'm': tokenizer .*tokenizer.json does not load"):
        package_tokenizer(load_spec(write_spec(project)).models[0], tmp_path / "out")


def test_a_missing_tokenizer_is_a_spec_error(project, tmp_path):
    shutil.rmtree(project / "tok")
    with pytest.raises(SpecError, match="not found"):
        package_tokenizer(load_spec(write_spec(project)).models[0], tmp_path / "out")
