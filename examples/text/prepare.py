"""Prepare the text example: generate texts in five languages, train a tokenizer and a tiny BERT.

Everything is made offline: Faker ships its word lists, so each text is
sentences of one locale's words, from a few words to several hundred tokens
(log-uniform), some in several paragraphs; the label is the text's language.
Writes, next to this file:
  data/train.csv, data/test.csv        id, text (train also label); quotes and newlines inside
  data/sample_submission.csv           id, language (all en_US), in test order
  data/test_labels.csv                 id, language (to score the submission)
  tokenizer/tokenizer.json             WordPiece (`tokenizers`), its vocabulary the training text's words
  checkpoints/bert.pt                  state_dict of models.make_model()

Runs in well under a minute on a CPU. Deterministic (fixed seeds, a vocabulary chosen by count).
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from models import LANGUAGES, MAX_LENGTH, VOCAB_SIZE, make_model

HERE = Path(__file__).resolve().parent
#: Tokens of each text trained on: its start says its language, and short batches train fast.
TRAIN_LENGTH = 48
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_texts(n: int, seed: int, max_words: int = 250) -> list[tuple[str, str]]:
    """``n`` (text, language) pairs: log-uniform word counts from 3 to ``max_words``."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for k, lang in enumerate(LANGUAGES):
        fakers[lang] = Faker(lang)
        fakers[lang].seed_instance(seed * 100 + k)
    out = []
    for _ in range(n):
        lang = rng.choice(LANGUAGES)
        fake = fakers[lang]
        words = int(math.exp(rng.uniform(math.log(3), math.log(max_words))))
        sentences, count = [], 0
        while count < words:
            k = min(words - count, rng.randint(4, 14))
            sentences.append(fake.sentence(nb_words=k, variable_nb_words=False))
            count += k
        text = " ".join(sentences)
        if len(sentences) > 6 and rng.random() < 0.5:  # paragraphs, and a quote: CSV must be parsed for real
            cut = len(sentences) // 2
            text = " ".join(sentences[:cut]) + '\n\n"' + " ".join(sentences[cut:]) + '"'
        out.append((text, lang))
    return out


def train_tokenizer(texts: list[str]):
    """A WordPiece tokenizer whose vocabulary is built from the training text's counts.

    Not ``tokenizers``' WordPieceTrainer: it breaks ties between equal counts in
    hash-map order, which changes from one process to the next (huggingface/tokenizers
    issue 1794), so two runs of this script trained different vocabularies, then models
    (test accuracy 0.936 to 0.964). Here, every choice is by count, ties alphabetical:
    the special tokens, every character seen (alone and as a ``##`` continuation, so any
    word can be spelled), the most frequent words (a fifth of the rest), then the most
    frequent word starts and ``##`` continuations of 2 to 4 characters, up to ``VOCAB_SIZE``.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    pieces: Counter[str] = Counter()
    for word, n in words.items():
        for k in (2, 3, 4):
            if len(word) > k:
                pieces[word[:k]] += n
            for i in range(1, len(word) - k + 1):
                pieces["##" + word[i:i + k]] += n
    chars = sorted({c for word in words for c in word})
    vocab = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    by_count = lambda counts: [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]  # noqa: E731
    known = set(vocab)
    vocab += [w for w in by_count(words) if w not in known][:(VOCAB_SIZE - len(vocab)) // 5]
    known = set(vocab)
    vocab += [p for p in by_count(pieces) if p not in known][:VOCAB_SIZE - len(vocab)]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def encode(tok, texts: list[str], length: int = MAX_LENGTH) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``length`` tokens of each text, padded to the longest."""
    tok.enable_truncation(length)
    enc = tok.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), width), dtype=np.int64)
    for i, e in enumerate(enc):
        ids[i, :len(e.ids)] = e.ids
    ids_t = torch.from_numpy(ids)
    return ids_t, (ids_t != 0).long()


def train(model: torch.nn.Module, tok, texts: list[str], labels: np.ndarray, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths together: less padding
    batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for k in torch.randperm(len(batches)).tolist():
            idx = batches[k]
            ids, mask = encode(tok, [texts[i] for i in idx], TRAIN_LENGTH)
            loss = torch.nn.functional.cross_entropy(model(ids, mask), torch.from_numpy(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return loss.item()


def write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1500)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    train_rows = make_texts(args.train, seed=1)
    test_rows = make_texts(args.test, seed=2)
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    ids_te = [f"t{i:05d}" for i in range(len(test_rows))]
    write_csv(data / "train.csv", ["id", "text", "language"],
              [(f"r{i:05d}", t, lang) for i, (t, lang) in enumerate(train_rows)])
    write_csv(data / "test.csv", ["id", "text"], [(i, t) for i, (t, _) in zip(ids_te, test_rows)])
    write_csv(data / "sample_submission.csv", ["id", "language"], [(i, LANGUAGES[0]) for i in ids_te])
    write_csv(data / "test_labels.csv", ["id", "language"], [(i, lang) for i, (_, lang) in zip(ids_te, test_rows)])
    texts = [t for t, _ in train_rows]
    tok = train_tokenizer(texts)
    (HERE / "tokenizer").mkdir(exist_ok=True)
    tok.save(str(HERE / "tokenizer" / "tokenizer.json"))
    print(f"data and tokenizer ({tok.get_vocab_size()} tokens) in {time.perf_counter() - t0:.1f}s")
    t = time.perf_counter()
    torch.manual_seed(0)  # the random init too: the same accuracy on every run
    model = make_model()
    labels = np.array([LANGUAGES.index(lang) for _, lang in train_rows])
    train(model, tok, texts, labels, args.epochs, seed=0)
    truth = np.array([LANGUAGES.index(lang) for _, lang in test_rows])
    with torch.no_grad():
        ids, mask = encode(tok, [t for t, _ in test_rows])
        acc = float((model(ids, mask).argmax(1).numpy() == truth).mean())
    (HERE / "checkpoints").mkdir(exist_ok=True)
    torch.save(model.state_dict(), HERE / "checkpoints" / "bert.pt")
    tok.no_truncation()
    print(f"trained bert: test accuracy {acc:.4f} (first {MAX_LENGTH} tokens of each text) "
          f"in {time.perf_counter() - t:.1f}s")
    print(f"wrote {len(train_rows)} train and {len(test_rows)} test rows to {data}")


if __name__ == "__main__":
    main()
