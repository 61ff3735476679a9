"""Small, exact projects for the hooks and submission formats, one per concern.

Each ``make_*`` writes a spec folder (test table, sample submission, a model
checkpoint whose weights make the outputs exact in float32, hook modules) and
returns ``(spec_path, expected)``, where ``expected`` is the submission's exact
text, computed here independently of ninefit (numpy and pandas alone).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

MODELS = '''
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self, n_in=2, n_out=1):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.fc(x)


class Seg(nn.Module):
    """A 1x1 convolution: a 'segmentation model' whose mask is its input image, scaled."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return self.conv(x)


def make_linear(n_in=2, n_out=1):
    return Linear(n_in, n_out)


def make_seg():
    return Seg()
'''


def _linear_checkpoint(path: Path, weight: np.ndarray) -> None:
    import torch

    w = torch.tensor(np.asarray(weight, dtype=np.float32))
    torch.save({"fc.weight": w, "fc.bias": torch.zeros(w.shape[0])}, path)


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    lines = [",".join(header)] + [",".join(str(c) for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _g(x: float) -> str:
    return "%.9g" % float(np.float32(x))


def _write(folder: Path, spec: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "hook_models.py").write_text(MODELS)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    (folder / "ninefit.toml").write_text(textwrap.dedent(spec))
    return folder / "ninefit.toml"


# -- a tabular model whose features need a groupby-aggregate (and a side table) ------------------

FEATURES = '''
from pathlib import Path

import pandas as pd

# A side table bundled with the hook (features_files), read next to this file.
WEIGHTS = pd.read_csv(Path(__file__).parent / "lookup" / "stores.csv").set_index("store")["weight"]


def make_features(df):
    sales = df.groupby("store")["sales"]
    return pd.DataFrame({
        "store_mean": sales.transform("mean"),
        "store_max": sales.transform("max").astype("float64"),
        "store_weight": df["store"].map(WEIGHTS).astype("float64"),
    })
'''

STORES = {"A": 8, "B": 8, "C": 4, "D": 2, "E": 1, "F": 1}  # group sizes of powers of two: exact means


POST_ROUND = '''
def to_submission(values, ids):
    return [[i, "%.2f" % v] for i, v in zip(ids, values[:, 0])]
'''


def store_rows(seed: int = 0, repeat: int = 1) -> list[tuple[str, str, int]]:
    """Rows of the STORES groups (each repeated ``repeat`` times: group sizes stay powers of two when it is one)."""
    rng = np.random.default_rng(seed)
    stores = [f"{s}{k}" if k else s for k in range(repeat) for s, n in STORES.items() for _ in range(n)]
    rng.shuffle(stores)
    return [(f"r{i}", s, int(rng.integers(1, 50))) for i, s in enumerate(stores)]


def write_store_data(folder: Path, rows: list[tuple[str, str, int]]) -> None:
    _csv(folder / "test.csv", ["id", "store", "sales"], [list(r) for r in rows])
    _csv(folder / "sample_submission.csv", ["id", "target"], [[r[0], 0] for r in rows])


def make_groupby(folder: Path, *, group: bool = True, extra_data: str = "", hook: str = FEATURES,
                 post: str = "", repeat: int = 1) -> tuple[Path, str]:
    """target = mean(sales of the row's store) + the store's weight from the side table.

    ``post``: a postprocess hook module (post.py) writing the rows; ``repeat``
    makes a larger table (more stores); the expected text is then not exact.
    """
    rows = store_rows(repeat=repeat)
    spec = f'''
    name = "stores"
    [data]
    test = "data/test.csv"
    id_column = "id"
    sample_submission = "data/sample_submission.csv"
    features = "features:make_features"
    features_files = ["lookup/stores.csv"]
    {'features_group = "store"' if group else ''}
    {extra_data}
    {'[submission]' + chr(10) + 'postprocess = "post:to_submission"' if post else ''}

    [[model]]
    name = "lin"
    factory = "hook_models:make_linear"
    factory_kwargs = {{ n_in = 3, n_out = 1 }}
    checkpoint = "lin.pt"
    batch_size = 4
      [[model.input]]
      name = "x"
      shape = ["batch", 3]
      columns = ["store_mean", "store_weight", "sales"]
    '''
    weights = {s: 0.25 * (k + 1) for k, s in enumerate(sorted({r[1] for r in rows}))}
    files = {"features.py": hook,
             "lookup/stores.csv": "store,weight\n" + "".join(f"{s},{w}\n" for s, w in weights.items())}
    if post:
        files["post.py"] = post
    path = _write(folder, spec, files)
    write_store_data(folder / "data", rows)
    _linear_checkpoint(folder / "lin.pt", [[1.0, 1.0, 0.0]])
    means = {s: np.mean([r[2] for r in rows if r[1] == s]) for s in weights}
    value = {s: float(np.float32(means[s]) + np.float32(weights[s])) for s in weights}
    cell = (lambda v: "%.2f" % v) if post else _g
    expected = "id,target\n" + "".join(f"{i},{cell(value[s])}\n" for i, s, _ in rows)
    return path, expected


# -- classification rows: top-3 (MAP@3), multi-label, long, postprocess --------------------------

CLASSES = ["cat", "dog", "fox", "owl", "yak"]


def _scores(n: int = 20, seed: int = 1) -> np.ndarray:
    """Distinct multiples of 1/64 per row: no ties, exact in float32."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(np.arange(-40, 40))[:len(CLASSES)] / 16.0 for _ in range(n)])


def _scores_project(folder: Path, submission: str, sample_header: list[str], sample_rows: list[list],
                    files: dict[str, str] | None = None, n_out: int = len(CLASSES), activation: str = "none",
                    scores: np.ndarray | None = None) -> Path:
    x = _scores() if scores is None else scores
    cols = [f"s{k}" for k in range(x.shape[1])]
    spec = f'''
    name = "scores"
    [data]
    test = "data/test.csv"
    id_column = "id"
    sample_submission = "data/sample_submission.csv"

    {submission}

    [[model]]
    name = "lin"
    factory = "hook_models:make_linear"
    factory_kwargs = {{ n_in = {x.shape[1]}, n_out = {n_out} }}
    checkpoint = "lin.pt"
    activation = "{activation}"
    batch_size = 8
      [[model.input]]
      name = "x"
      shape = ["batch", {x.shape[1]}]
      columns = "s*"
    '''
    path = _write(folder, spec, files or {})
    _csv(folder / "data" / "test.csv", ["id", *cols], [[f"q{i}", *row.tolist()] for i, row in enumerate(x)])
    _csv(folder / "data" / "sample_submission.csv", sample_header, sample_rows)
    _linear_checkpoint(folder / "lin.pt", np.eye(n_out, x.shape[1]))
    return path


def make_topk(folder: Path) -> tuple[Path, str]:
    """Top-3 labels for a MAP@3 metric: the three highest scores, best first."""
    x = _scores()
    ids = [f"q{i}" for i in range(len(x))]
    path = _scores_project(folder, f'[submission]\nmode = "topk"\nk = 3\nclasses = {CLASSES}'.replace("'", '"'),
                           ["id", "label"], [[i, "cat dog fox"] for i in ids])
    best = np.argsort(-x, axis=1)[:, :3]
    expected = "id,label\n" + "".join(f"{i},{' '.join(CLASSES[k] for k in b)}\n" for i, b in zip(ids, best))
    return path, expected


def make_multilabel(folder: Path) -> tuple[Path, str]:
    """Sigmoid outputs; a class is written when its probability reaches its threshold; "none" when no class does."""
    x = _scores()
    x[3] = -2.0  # one row with no label at all
    thresholds = [0.5, 0.6, 0.7, 0.8, 0.9]
    ids = [f"q{i}" for i in range(len(x))]
    sub = (f'[submission]\nmode = "multilabel"\nclasses = {CLASSES}\nthresholds = {thresholds}\n'
           f'separator = ";"\nempty = "none"').replace("'", '"')
    path = _scores_project(folder, sub, ["id", "labels"], [[i, "none"] for i in ids], activation="sigmoid", scores=x)
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float32).astype(np.float64)))
    cells = [";".join(c for c, v, t in zip(CLASSES, row, thresholds) if v >= t) or "none" for row in p]
    return path, "id,labels\n" + "".join(f"{i},{c}\n" for i, c in zip(ids, cells))


def make_long(folder: Path) -> tuple[Path, str]:
    """One row per test id and target, ids "<id>-<target>" as the sample shows."""
    x = _scores()[:, :2]
    targets = ["open", "close"]
    ids = [f"q{i}" for i in range(len(x))]
    sub = f'[submission]\nmode = "long"\ntargets = {targets}\nid_format = "{{id}}-{{target}}"'.replace("'", '"')
    rows = [[f"{i}-{t}", 0] for i in ids for t in targets]
    path = _scores_project(folder, sub, ["id", "value"], rows, n_out=2, scores=x)
    expected = "id,value\n" + "".join(f"{i}-{t},{_g(x[n, k])}\n" for n, i in enumerate(ids) for k, t in enumerate(targets))
    return path, expected


POST = '''
import numpy as np


def to_submission(values, ids):
    """Clip to [0, 1] and write three decimals: a calibration a built-in format does not offer."""
    clipped = np.clip(values[:, 0], 0.0, 1.0)
    return [[i, f"{v:.3f}"] for i, v in zip(ids, clipped)]
'''


def make_postprocess(folder: Path, hook: str = POST) -> tuple[Path, str]:
    x = _scores()[:, :1] / 4.0
    ids = [f"q{i}" for i in range(len(x))]
    path = _scores_project(folder, '[submission]\npostprocess = "post:to_submission"', ["id", "p"],
                           [[i, "0.5"] for i in ids], files={"post.py": hook}, n_out=1, scores=x)
    expected = "id,p\n" + "".join(f"{i},{min(max(float(np.float32(v)), 0.0), 1.0):.3f}\n" for i, v in zip(ids, x[:, 0]))
    return path, expected


# -- a tiny segmentation model written as RLE ---------------------------------------------------------


def rle_reference(mask: np.ndarray) -> str:
    """Column-major RLE by a plain loop, independent of ninefit's vectorised encoder."""
    flat = [bool(v) for v in mask.T.reshape(-1)]
    out, k = [], 0
    while k < len(flat):
        if flat[k]:
            start = k
            while k < len(flat) and flat[k]:
                k += 1
            out += [start + 1, k - start]
        else:
            k += 1
    return " ".join(map(str, out))


def make_rle(folder: Path, h: int = 4, w: int = 6) -> tuple[Path, str]:
    rng = np.random.default_rng(2)
    masks = (rng.random((12, h, w)) > 0.55).astype(np.float32)
    masks[0] = 0.0  # an empty mask
    masks[1] = 1.0  # a full one
    cols = [f"px{k}" for k in range(h * w)]
    spec = f'''
    name = "seg"
    [data]
    test = "data/test.csv"
    id_column = "ImageId"
    sample_submission = "data/sample_submission.csv"

    [submission]
    mode = "rle"
    mask_shape = [{h}, {w}]
    rle_order = "column"
    threshold = 0.5

    [[model]]
    name = "seg"
    factory = "hook_models:make_seg"
    checkpoint = "seg.pt"
    activation = "sigmoid"
    batch_size = 4
      [[model.input]]
      name = "image"
      shape = ["batch", 1, {h}, {w}]
      columns = "px*"
    '''
    path = _write(folder, spec, {})
    # pixels +-3 around 0: sigmoid >= 0.5 exactly where the mask is on
    pixels = (masks * 6.0 - 3.0).reshape(len(masks), -1)
    ids = [f"img{k}" for k in range(len(masks))]
    _csv(folder / "data" / "test.csv", ["ImageId", *cols], [[i, *p.tolist()] for i, p in zip(ids, pixels)])
    _csv(folder / "data" / "sample_submission.csv", ["ImageId", "EncodedPixels"], [[i, "1 1"] for i in ids])
    import torch

    torch.save({"conv.weight": torch.ones(1, 1, 1, 1), "conv.bias": torch.zeros(1)}, folder / "seg.pt")
    expected = "ImageId,EncodedPixels\n" + "".join(f"{i},{rle_reference(m)}\n" for i, m in zip(ids, masks))
    return path, expected


__all__ = ["CLASSES", "FEATURES", "POST", "POST_ROUND", "write_store_data", "make_groupby", "make_long", "make_multilabel", "make_postprocess",
           "make_rle", "make_topk", "rle_reference", "store_rows"]
