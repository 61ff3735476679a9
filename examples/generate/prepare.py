"""A tiny causal language model that adds numbers, made offline in about a minute on CPU: the generative example.

The task is little-endian addition: ``"0321+6540="`` asks for 1230 + 456 with each number's digits written
least significant first and padded to the same width, and the model answers ``"[68610]"`` (01686, written the same
way) then its end-of-text token.
Written so, a carry travels left to right with the generation, which a two-layer transformer learns in a minute;
it is right on most short sums and wrong more often as the numbers grow, so more samples and a majority vote help,
and harder items need more of them.

Writes, under ``examples/generate/`` (or ``--out``):
- ``model/``: a GPT-2 ``save_pretrained`` folder (config.json, model.safetensors) with its tokenizer (a
  character-level WordLevel tokenizer trained here with ``tokenizers``, saved as a transformers fast tokenizer);
- ``data/test.csv`` (id, prompt, digits), ``data/sample_submission.csv`` (id, answer), ``data/answers.csv`` (the
  true answers, for ``score.py``).

Every step is seeded: the same model every run on the same torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHARS = "0123456789+=[]"
SPECIALS = ("<pad>", "<eos>", "<unk>")


def problem(rng: random.Random, digits: int) -> tuple[str, str]:
    """(prompt, answer) of a sum of two ``digits``-digit numbers (leading zeros allowed), both operands written with
    ``digits`` digits and the sum with ``digits + 1``, least significant first: the digits line up by position."""
    a, b = rng.randrange(0, 10 ** digits), rng.randrange(0, 10 ** digits)
    return f"{str(a).zfill(digits)[::-1]}+{str(b).zfill(digits)[::-1]}=", str(a + b).zfill(digits + 1)[::-1]


def make_tokenizer(folder: Path):
    """A character-level tokenizer, trained on the task's alphabet with ``tokenizers``, saved for transformers."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # characters back together, no spaces between them
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIALS), min_frequency=1)
    tok.train_from_iterator([CHARS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.model_max_length = 64
    fast.save_pretrained(str(folder))
    return fast


def build_model(out: Path, *, steps: int = 2500, seed: int = 0, max_digits: int = 4, log: bool = True,
                width: int = 64, layers: int = 2, batch: int = 64, threads: int | None = None, lr: float = 5e-3) -> Path:
    """Train the model and write ``out`` (a save_pretrained folder); returns ``out``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(out)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    vocab = tok.get_vocab()

    def encode(text: str) -> list[int]:  # the tokenizer's ids, looked up directly (its call costs more than the step)
        return [vocab[c] for c in text]
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=width, n_layer=layers, n_head=4, n_inner=2 * width,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=pad, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        seqs, labels = [], []
        for _ in range(batch):
            prompt, answer = problem(rng, rng.randint(1, max_digits))
            p = encode(prompt)
            a = encode(f"[{answer}]") + [eos]
            seqs.append(p + a)
            labels.append([-100] * len(p) + a)
        n = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs])
        lab = torch.tensor([s + [-100] * (n - len(s)) for s in labels])
        mask = (torch.arange(n)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and (step % 250 == 0 or step == steps - 1):
            print(f"step {step:>5}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    model.eval()
    model.save_pretrained(str(out))
    return out


def write_data(folder: Path, *, items: int = 40, seed: int = 1, digits: tuple[int, ...] = (1, 2, 3, 4)) -> Path:
    """``test.csv`` (id, prompt, digits), ``sample_submission.csv``, ``answers.csv``: ``items`` sums of mixed
    difficulty (the larger operand's digits cycling through ``digits``)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(items):
        d = digits[i % len(digits)]
        prompt, answer = problem(rng, d)
        rows.append((f"q{i:03d}", prompt, d, answer))
    with open(folder / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt", "digits"])
        w.writerows((i, p, d) for i, p, d, _ in rows)
    with open(folder / "sample_submission.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "answer"])
        w.writerows((i, 0) for i, *_ in rows)
    with open(folder / "answers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "answer"])
        w.writerows((i, a) for i, _, _, a in rows)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--items", type=int, default=40)
    args = ap.parse_args()
    t0 = time.perf_counter()
    build_model(args.out / "model", steps=args.steps)
    write_data(args.out / "data", items=args.items)
    print(json.dumps({"model": str(args.out / "model"), "data": str(args.out / "data"),
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
