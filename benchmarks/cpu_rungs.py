"""CPU rungs side by side: each backend and precision against onnxruntime fp32, with arg-max agreement on real rows.

Three models, exported to ONNX by torch and quantized by ninefit's own code (``packager.quantize``), every rung
run by the runtime's own backends (``runtime.backends``) on the same rows, interleaved in rounds:

* **CNN**: a ResNet-ish network (a stem, three stages of two basic blocks each, 32-64-128 channels, global
  pooling) in plain torch: torchvision is not installable beside the CPU torch here (PyPI's torchvision wheels
  want a CUDA torch), so no torchvision model. Trained a few epochs on scikit-learn's digits (real handwritten
  8x8 digits, upsampled to 3x32x32); the rows are the held-out digits.
* **encoder**: ``transformers.BertModel`` (``BertConfig``: 4 layers, hidden 256, 4 heads, 128 tokens) mean-pooled
  over the real tokens, with a linear head, fine-tuned end to end (one epoch, AdamW with weight decay) on 1,536
  real texts from examples/text's generator (Faker sentences in five languages, each word hashed to an id) to
  tell their language; the rows measured are 512 other texts. A trained model, so its margins are a real
  model's: agreement figures mean what they would on a competitor's encoder.
* **MLP**: 64 -> 1024 -> 1024 -> 10, trained on the digits' pixels; rows: the held-out digits.

Rungs: onnxruntime fp32 (the reference), onnxruntime int8 dynamic, onnxruntime int8 static QDQ (calibrated on
128 training rows: never the rows measured), OpenVINO fp32, OpenVINO bf16 (where the CPU has native bf16),
OpenVINO int8 (the static QDQ file). Each figure is the median throughput over rounds at batch 64, on every core.
Agreement: share of rows whose arg-max equals onnxruntime fp32's; mean |diff| of the softmax probabilities.
"Best guarded": the fastest rung with agreement >= 0.99 and mean |diff| <= 0.01 (ninefit's default guard).

    python benchmarks/cpu_rungs.py [--rounds 5] [--rows 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.models import train_classifier  # noqa: E402

GOALS = {"cnn": 1.3, "encoder": 1.8, "mlp": 1.8}


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    return x[order], d.target[order]


def make_cnn(rows: int):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        Block(32, 32, 1), Block(32, 32, 1), Block(32, 64, 2), Block(64, 64, 1), Block(64, 128, 2), Block(128, 128, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    x, y = _digits()
    img = torch.nn.functional.interpolate(torch.from_numpy(x.reshape(-1, 1, 8, 8)), size=32, mode="bilinear")
    img = img.repeat(1, 3, 1, 1).numpy()
    n_train = len(x) - rows
    train_classifier(net, img[:n_train], y[:n_train], epochs=2, lr=2e-3)
    return net, {"x": img[:1]}, {"x": img[n_train:]}, {"x": img[:128]}


def make_mlp(rows: int):
    from torch import nn

    net = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    x, y = _digits()
    n_train = len(x) - rows
    train_classifier(net, x[:n_train], y[:n_train], epochs=8, lr=2e-3)
    return net, {"x": x[:1]}, {"x": x[n_train:]}, {"x": x[:128]}


def make_encoder(rows: int, length: int = 128, train_rows: int = 1536):
    import torch
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(REPO / "examples" / "text"))
    from prepare import make_texts  # examples/text's generator (Faker: offline word lists)

    texts = make_texts(rows + train_rows, seed=3)
    langs = sorted({lang for _, lang in texts})
    vocab = 8000

    def ids(text: str) -> list[int]:
        words = [zlib.crc32(w.lower().encode()) % (vocab - 3) + 3 for w in text.split()][:length - 1]
        return [1, *words] + [0] * (length - 1 - len(words))

    tok = np.array([ids(t) for t, _ in texts], dtype=np.int64)
    mask = (tok != 0).astype(np.int64)
    labels = np.array([langs.index(lang) for _, lang in texts])
    config = BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=length, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)

    class Encoder(torch.nn.Module):
        """BERT, mean-pooled over the real tokens, and a linear head: the whole of it fine-tuned."""

        def __init__(self):
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=False)
            self.head = torch.nn.Linear(256, len(langs))

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))

    # Fine-tuned end to end on the first train_rows texts (never the measured ones): the language of each text.
    # Weight decay regularizes; one epoch leaves some texts near the boundary, as a real model's are.
    model = Encoder()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    t_ids, t_mask, t_y = (torch.from_numpy(a[:train_rows]) for a in (tok, mask, labels.astype(np.int64)))
    model.train()
    for i in range(0, train_rows, 32):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(t_ids[i:i + 32], t_mask[i:i + 32]), t_y[i:i + 32])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        held = model(torch.from_numpy(tok[train_rows:]), torch.from_numpy(mask[train_rows:])).argmax(1).numpy()
    print(f"  encoder: fine-tuned on {train_rows} texts, last batch loss {loss.item():.3f}; accuracy on the "
          f"{rows} measured texts {np.mean(held == labels[train_rows:]):.3f}")
    feed = {"input_ids": tok[train_rows:], "attention_mask": mask[train_rows:]}
    calib = {"input_ids": tok[:128], "attention_mask": mask[:128]}
    return model, {k: v[:1] for k, v in feed.items()}, feed, calib


def export(model, example: dict, path: Path) -> Path:
    import torch

    names = list(example)
    torch.onnx.export(model, tuple(torch.from_numpy(example[n]) for n in names), str(path), input_names=names,
                      output_names=["output"], dynamic_axes={**{n: {0: "batch"} for n in names}, "output": {0: "batch"}},
                      dynamo=False)
    return path


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(runner, feed: dict, batch: int) -> np.ndarray:
    n = len(next(iter(feed.values())))
    return np.concatenate([runner.infer({k: v[a:a + batch] for k, v in feed.items()})["output"]
                           for a in range(0, n, batch)])


def rungs(fp32: Path, folder: Path, calib: dict) -> list[tuple[str, str, Path, str]]:
    """(label, backend, file, precision) of every rung to compare; quantized files made here."""
    from packager.quantize import calibration_feeds, quantize_int8
    from runtime.backends import available
    from runtime.backends.openvino import native_bf16

    out = [("onnxruntime fp32", "onnxruntime", fp32, "fp32")]
    dyn = quantize_int8(fp32, folder / "int8-dynamic.onnx", "bench", "dynamic", None)
    out.append(("onnxruntime int8 dynamic", "onnxruntime", dyn.path, "int8"))
    try:
        static = quantize_int8(fp32, folder / "int8-static.onnx", "bench", "static", None,
                               feeds=calibration_feeds(calib))
        out.append(("onnxruntime int8 static QDQ", "onnxruntime", static.path, "int8"))
    except Exception as exc:  # said, not hidden
        print(f"  static int8 failed: {exc}")
        static = None
    if "openvino" in available():
        out.append(("openvino fp32", "openvino", fp32, "fp32"))
        ok, where = native_bf16()
        if ok:
            out.append(("openvino bf16", "openvino", fp32, "bf16"))
        else:
            print(f"  openvino bf16 not run: {where}")
        if static is not None:
            out.append(("openvino int8 (QDQ file)", "openvino", static.path, "int8"))
    else:
        print("  openvino is not installed: its rungs are not measured (pip install openvino)")
    return out


def bench(name: str, built, rounds: int, batch: int) -> list[dict]:
    from runtime.backends import BackendOptions, get

    model, example, feed, calib = built
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export(model, example, Path(tmp) / "fp32.onnx")
        runners = []
        for label, backend, path, precision in rungs(fp32, Path(tmp), calib):
            opts = BackendOptions(precision=precision, providers=("CPUExecutionProvider",) if backend == "onnxruntime" else None)
            r = get(backend).load(path, f"{name}/{label}", opts)
            r.activate()
            _run(r, {k: v[:batch] for k, v in feed.items()}, batch)  # warm-up
            runners.append((label, r))
        n = len(next(iter(feed.values())))
        times: dict[str, list[float]] = {label: [] for label, _ in runners}
        outs: dict[str, np.ndarray] = {}
        for _ in range(rounds):
            for label, r in runners:
                t0 = time.perf_counter()
                outs[label] = _run(r, feed, batch)
                times[label].append(time.perf_counter() - t0)
        for _, r in runners:
            r.deactivate()
    ref_label = runners[0][0]
    ref = outs[ref_label]
    base = statistics.median(times[ref_label])
    rows = []
    for label, _ in runners:
        got = outs[label]
        rows.append({
            "model": name, "rung": label, "rows_per_s": n / statistics.median(times[label]),
            "speedup": base / statistics.median(times[label]),
            "agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
            "mean_abs_diff": float(np.mean(np.abs(_softmax(ref) - _softmax(got)))),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=512, help="rows measured per model (held out of training)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--models", default="cnn,encoder,mlp", help="which models, comma-separated (default: all three)")
    args = ap.parse_args(argv)
    import torch

    from runtime.execute.lanes import usable_cores

    torch.manual_seed(0)
    from runtime.backends.openvino import cpu_flags
    from runtime.machine import cpu_model

    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    makers = {"cnn": make_cnn, "encoder": make_encoder, "mlp": make_mlp}
    if not wanted or any(m not in makers for m in wanted):
        ap.error(f"--models {args.models!r}: expected a comma-separated choice of {', '.join(makers)}")
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx_vnni", "avx2", "fma")))
    print(f"CPU: {cpu_model()}, {usable_cores()} core(s); flags: {' '.join(flags) or 'unknown'}")
    print(f"batch {args.batch}, {args.rounds} rounds, {args.rows} rows")
    table = []
    for name in wanted:
        make = makers[name]
        print(f"{name}: building and quantizing ...", flush=True)
        table += bench(name, make(args.rows), args.rounds, args.batch)
    print("\n| model | rung | rows/s | x onnxruntime fp32 | arg-max agreement | mean abs diff (probs) | guard |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        ok = r["agreement"] >= 0.99 and r["mean_abs_diff"] <= 0.01
        print(f"| {r['model']} | {r['rung']} | {r['rows_per_s']:.0f} | {r['speedup']:.2f}x | {r['agreement']:.4f} "
              f"| {r['mean_abs_diff']:.4f} | {'pass' if ok else 'FAIL'} |")
    print()
    met = True
    for name, goal in GOALS.items():
        if name not in wanted:
            continue
        guarded = [r for r in table if r["model"] == name and r["agreement"] >= 0.99 and r["mean_abs_diff"] <= 0.01]
        best = max(guarded, key=lambda r: r["speedup"])
        ok = best["speedup"] >= goal
        met &= ok
        print(f"{name}: best guarded rung {best['rung']} at {best['speedup']:.2f}x (agreement {best['agreement']:.4f}); "
              f"goal >= {goal}x: {'met' if ok else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
