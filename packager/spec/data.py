"""``[data]`` and ``[submission]``: where the test data is and how rows are identified (the features hook
among them), and how the ensemble's output becomes the submission's columns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packager.spec.tables import (
    _TOP,
    _bad,
    _check_keys,
    _err,
    _get,
    _is_number,
    _is_size,
    _missing,
    _path,
    _show,
    _strings,
)
from packager.spec.types import HooksIn, SubmissionSpecIn
from runtime.errors import SpecError
from runtime.manifest import RLE_ORDERS, SUBMISSION_MODES, DataSpec

#: [submission] keys each mode takes beyond ``mode``.
_MODE_KEYS = {
    "values": (), "argmax": ("classes",), "topk": ("classes", "k", "separator"),
    "multilabel": ("classes", "thresholds", "separator", "empty"), "long": ("targets", "id_format"),
    "rle": ("mask_shape", "rle_order", "threshold", "empty"), "postprocess": ("postprocess",),
}
_HOOK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*")
_HOOK_EXPECTED = '"module:function", the module a .py file next to the spec, e.g. "features:make_features"'


def parse_submission(s: dict, out_cols: list[str], root: Path) -> SubmissionSpecIn:
    """[submission]: the mode, its keys (and no other mode's), checked against the sample's columns."""
    where = "[submission]"
    post = _get(s, "postprocess", where, str, "", valid=lambda v: bool(_HOOK.fullmatch(v)),
                expected='"module:function", the module a .py file next to the spec, e.g. "post:to_submission"')
    mode = _get(s, "mode", where, str, "postprocess" if post else "values", SUBMISSION_MODES)
    if mode == "postprocess" and not post:
        raise _err(where, 'mode = "postprocess" needs postprocess = "module:function", the hook that writes the rows')
    for key in s:
        if key != "mode" and key not in _MODE_KEYS[mode]:
            users = [m for m, keys in _MODE_KEYS.items() if key in keys]
            raise _err(where, f"{key} applies only with mode = {' or '.join(_show(m) for m in users)}; "
                              f"this spec's mode is {_show(mode)}")
    if mode in ("argmax", "topk", "multilabel", "long", "rle") and len(out_cols) != 1:
        raise _err(where, f"mode = \"{mode}\" writes one column after the id, but the sample submission has "
                          f"{len(out_cols)}: {out_cols}")
    opts: dict[str, Any] = {}
    classes: tuple[str, ...] = ()
    if mode in ("argmax", "topk", "multilabel"):
        labels = 'a non-empty array of labels (strings or integers), one per output index, e.g. ["cat", "dog"]'
        values = _get(s, "classes", where, list, expected=labels)
        if not values or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in values):
            raise _bad("classes", where, values, labels)
        classes = tuple(str(c) for c in values)
        if len(set(classes)) != len(classes):
            raise _bad("classes", where, values, "labels that are all different")
    if mode in ("topk", "multilabel"):
        opts["separator"] = _get(s, "separator", where, str, " ", valid=bool, expected='a non-empty string, e.g. " "')
        if any(opts["separator"] in c for c in classes):
            raise _err(where, f"separator = {_show(opts['separator'])} occurs inside a label; the labels could not be "
                              "told apart in the written cell")
    if mode == "topk":
        opts["k"] = _get(s, "k", where, int, valid=lambda k: 1 <= k <= len(classes),
                         expected=f"a whole number of labels per row, 1 to {len(classes)} (the number of classes)")
    if mode == "multilabel":
        expected = f"a number, or an array of {len(classes)} numbers (one per class)"
        thr = _get(s, "thresholds", where, (float, list), 0.5, expected=expected)
        thr = [thr] if isinstance(thr, float) else thr
        if len(thr) not in (1, len(classes)) or not all(_is_number(x) for x in thr):
            raise _bad("thresholds", where, s["thresholds"], expected)
        opts["thresholds"] = tuple(float(x) for x in thr)
    if mode in ("multilabel", "rle"):
        opts["empty"] = _get(s, "empty", where, str, "")
    if mode == "long":
        expected = 'a non-empty array of target names, one per output index, e.g. ["A", "B"]'
        targets = _strings(s, "targets", where, ..., expected)
        if len(set(targets)) != len(targets):
            raise _bad("targets", where, list(targets), "target names that are all different")
        opts["targets"] = targets
        opts["id_format"] = _get(s, "id_format", where, str, "{id}_{target}",
                                 valid=lambda f: "{id}" in f and "{target}" in f,
                                 expected='a string holding {id} and {target}, e.g. "{id}_{target}"')
    if mode == "rle":
        expected = "[height, width] of the mask (positive integers), e.g. [64, 64]"
        shape = _get(s, "mask_shape", where, list, expected=expected)
        if len(shape) != 2 or not all(_is_size(d) for d in shape):
            raise _bad("mask_shape", where, shape, expected)
        opts["mask_shape"] = tuple(shape)
        opts["rle_order"] = _get(s, "rle_order", where, str, "column", RLE_ORDERS)
        opts["threshold"] = _get(s, "threshold", where, float, 0.5)
    path = None
    if post:
        opts["postprocess"] = post
        path = root / f"{post.split(':')[0]}.py"
        if not path.is_file():
            raise _err(where, f"postprocess = {_show(post)}: module file {path} not found (the hook's module is a .py "
                              "file next to the spec)")
    return SubmissionSpecIn(mode=mode, columns=tuple(out_cols), classes=classes, options=opts, postprocess_path=path)


def read_header(path: Path) -> list[str] | None:
    """Column names of the test table, when it is here (CSV header / Parquet schema)."""
    if not path.is_file():
        return None
    import csv

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, ValueError, csv.Error) as exc:  # pyarrow's errors are OSError / ValueError subclasses
        raise SpecError(f"{path} cannot be read for its column names ({type(exc).__name__}: {exc}); "
                        "expected a UTF-8 CSV file or a Parquet file") from exc


def parse_data(raw: dict, root: Path) -> tuple[DataSpec, Path, Path, HooksIn]:
    d = _get(raw, "data", _TOP, dict, expected="a table, written [data]")
    _check_keys(d, "[data]", "data")
    fmt = _get(d, "format", "[data]", str, "table", ("table", "images", "text"))
    if fmt != "images":
        for key in ("image_column", "image_dir"):
            if key in d:
                raise _err("[data]", f'{key} applies only with format = "images"; this spec reads {fmt} (format = "{fmt}")')
    test_path = _path(root, _get(d, "test", "[data]", str, valid=bool, expected="the path of the test table"))
    missing, fill = _missing(d, "[data]", "")
    features = _get(d, "features", "[data]", str, "", valid=lambda v: bool(_HOOK.fullmatch(v)), expected=_HOOK_EXPECTED)
    if not features:
        for key in ("features_files", "features_group"):
            if key in d:
                raise _err("[data]", f"{key} applies only with a features hook (features = {_HOOK_EXPECTED})")
    elif fmt != "table":
        raise _err("[data]", f'features applies to table data only (format = "table"); this spec reads {fmt}')
    files_expected = "an array of paths relative to the spec's folder, inside it (e.g. [\"lookup.csv\"])"
    files = _strings(d, "features_files", "[data]", [], files_expected) if "features_files" in d else ()
    for f in files or ():
        rel = Path(f)
        if rel.is_absolute() or ".." in rel.parts:
            raise _bad("features_files", "[data]", list(files), files_expected)
        if not (root / rel).is_file():
            raise _err("[data]", f"features_files: {f!r} not found (looked for {root / rel}); each side file the "
                                 "hook reads must be a file in the spec's folder or below it")
    hooks = HooksIn()
    if features:
        module = root / f"{features.split(':')[0]}.py"
        if not module.is_file():
            raise _err("[data]", f"features = {_show(features)}: module file {module} not found (the hook's module "
                                 "is a .py file next to the spec)")
        hooks = HooksIn(module=module, files=tuple(Path(f) for f in files or ()))
    data = DataSpec(
        format=fmt, test=test_path.name, id_column=_get(d, "id_column", "[data]", str, valid=bool, expected="a column name"),
        image_column=_get(d, "image_column", "[data]", str, ... if fmt == "images" else "", valid=bool, expected="a column name"),
        image_dir=_get(d, "image_dir", "[data]", str, ""),
        missing=missing or "skip", fill_value=0.0 if fill is None else fill,
        features=features, features_files=tuple(files or ()),
        features_group=_get(d, "features_group", "[data]", str, "", valid=bool, expected="a column name"),
    )
    sample_path = _path(root, _get(d, "sample_submission", "[data]", str, valid=bool, expected="the path of the sample submission"))
    return data, test_path, sample_path, hooks


__all__ = ["parse_data", "parse_submission", "read_header"]
