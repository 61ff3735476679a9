"""Write the benchmark models' checkpoints and synthetic test data.

    python prepare.py                      # checkpoints/ and a small public test set in data/
    python prepare.py --rows 5000 --out D  # a "hidden" test set of 5000 rows for both models in D

Layout of a data folder (``conv.toml`` and ``encoder.toml`` point at data/):
  conv/test.csv, conv/sample_submission.csv, conv/images/*.png   3x32x32 RGB images
  encoder/test.csv, encoder/sample_submission.csv                64 token ids per row
Deterministic (fixed seeds); images are random noise, tokens uniform ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOKENS, VOCAB, SIDE, DISTINCT_IMAGES = 64, 1000, 32, 256


def write_conv(folder: Path, rows: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    distinct = min(rows, DISTINCT_IMAGES)  # reused files keep big sets quick to write; each is decoded anyway
    for k in range(distinct):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(images / f"{k}.png")
    ids = [f"c{i:07d}" for i in range(rows)]
    with open(folder / "test.csv", "w") as f:
        f.write("id,path\n" + "".join(f"{i},{n % distinct}.png\n" for n, i in enumerate(ids)))
    with open(folder / "sample_submission.csv", "w") as f:
        f.write("id,label\n" + "".join(f"{i},0\n" for i in ids))


def write_encoder(folder: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = rng.integers(0, VOCAB, (rows, TOKENS))
    ids = [f"e{i:07d}" for i in range(rows)]
    with open(folder / "test.csv", "w") as f:
        f.write(",".join(["id", *(f"tok{k}" for k in range(TOKENS))]) + "\n")
        for i, row in zip(ids, tokens):
            f.write(i + "," + ",".join(map(str, row)) + "\n")
    with open(folder / "sample_submission.csv", "w") as f:
        f.write("id,target\n" + "".join(f"{i},0\n" for i in ids))


def write_data(out: Path, rows: int, seed: int = 0) -> Path:
    write_conv(out / "conv", rows, seed)
    write_encoder(out / "encoder", rows, seed + 1)
    return out


def write_checkpoints(folder: Path) -> None:
    import torch
    from models import make_convnet, make_encoder

    folder.mkdir(exist_ok=True)
    torch.save(make_convnet().state_dict(), folder / "convnet.pt")
    torch.save(make_encoder().state_dict(), folder / "encoder.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64, help="test rows to write (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE / "data", help="data folder (default: data/ here)")
    args = ap.parse_args()
    write_data(args.out, args.rows)
    if args.out == HERE / "data":
        write_checkpoints(HERE / "checkpoints")
    print(f"wrote {args.rows} rows per model to {args.out}")


if __name__ == "__main__":
    main()
