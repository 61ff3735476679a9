"""``[serve]``: the evaluation-API shape of a competition (its server, ``predict``'s arguments, the deadlines, the batches).

A spec without ``[serve]`` packages a bundle that writes a submission file.
With it, the bundle also serves Kaggle's gateway batch by batch
(:mod:`runtime.serve`), the notebook wraps the predictor in the competition's
inference server, and ``ninefit simulate`` rehearses the gateway on the public
test. Every key is documented in docs/spec.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from packager.spec.tables import _bad, _check_keys, _count, _err, _get, _path, _positive, _show, _strings
from runtime.manifest import SERVE_ORDERS, SERVE_OUTPUTS, SERVED_MODES, DataSpec, ServeSpec

_WHERE = "[serve]"
#: ``server``: a dotted module and a class, e.g. "kaggle_evaluation.mcts_inference_server:MCTSInferenceServer".
_SERVER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_SERVER_EXPECTED = ('"<module>:<Class>" of the competition\'s inference server, e.g. '
                    '"kaggle_evaluation.mcts_inference_server:MCTSInferenceServer"')


def parse_serve(raw: dict, root: Path, data: DataSpec, test_path: Path, header: list[str] | None, mode: str,
                targets: tuple[str, ...]) -> ServeSpec | None:
    """The ``[serve]`` table checked against the data and submission it serves (None: no table)."""
    if "serve" not in raw:
        return None
    s = _get(raw, "serve", "the top level", dict, expected="a table, written [serve]")
    _check_keys(s, _WHERE, "serve")
    if mode not in SERVED_MODES:
        raise _err(_WHERE, f"the submission mode {mode!r} writes rows a batch cannot be answered with; the evaluation "
                           f"API takes one row per test row: mode = one of {', '.join(SERVED_MODES)}")
    if data.format != "table":
        raise _err(_WHERE, f'serving takes table data (format = "table"); this spec reads {data.format}')
    args_expected = 'an array of predict\'s argument names, in order, e.g. ["test", "sample_submission"]'
    arguments = _strings(s, "arguments", _WHERE, ["test"], args_expected)
    if len(set(arguments)) != len(arguments) or not all(a.isidentifier() for a in arguments):
        raise _bad("arguments", _WHERE, list(arguments), args_expected + " (distinct Python names)")
    table = _argument(s, "table", arguments, arguments[0])
    sample = _argument(s, "sample", arguments, "")
    if sample == table:
        raise _err(_WHERE, f"table and sample are both {table!r}; the sample slice is an argument of its own")
    files = _files(s, root, test_path, arguments, {table: "table", sample: "sample"})
    batch_by = _get(s, "batch_by", _WHERE, str, "")
    if batch_by and header is not None and batch_by not in header:
        raise _err(_WHERE, f"batch_by = {_show(batch_by)} is not a column of the test table (its columns: "
                           f"{', '.join(header[:12])})")
    if batch_by and "batch_rows" in s:
        raise _err(_WHERE, "give batch_by (one batch per value of a column) or batch_rows (rows per batch), not both")
    scalar = _get(s, "scalar", _WHERE, bool, False)
    if scalar and len(targets) != 1:
        raise _err(_WHERE, f"scalar = true answers one value, but the submission has {len(targets)} target columns "
                           f"({', '.join(targets)})")
    return ServeSpec(
        server=_get(s, "server", _WHERE, str, "", valid=lambda v: bool(_SERVER.fullmatch(v)), expected=_SERVER_EXPECTED),
        gateway_paths=_strings(s, "gateway_paths", _WHERE, [], "an array of paths (relative to the competition's "
                               "data folder) the local gateway reads, e.g. [\"test.csv\", \"sample_submission.csv\"]")
        if "gateway_paths" in s else (),
        arguments=arguments, table=table, sample=sample, files=files,
        response_timeout_s=_get(s, "response_timeout_s", _WHERE, float, 60.0, valid=_positive,
                                expected="seconds, > 0 (the competition's set_response_timeout_seconds)"),
        expected_rows=_count(s, "expected_rows", _WHERE, 0, low=0),
        expected_batches=_count(s, "expected_batches", _WHERE, 0, low=0),
        batch_by=batch_by, batch_rows=_count(s, "batch_rows", _WHERE, 1),
        order=_get(s, "order", _WHERE, str, "random", SERVE_ORDERS),
        output=_get(s, "output", _WHERE, str, "auto", SERVE_OUTPUTS),
        include_id=_get(s, "include_id", _WHERE, bool, True), scalar=scalar,
        fallback=_fallback(s, targets),
        startup_limit_s=_get(s, "startup_limit_s", _WHERE, float, 900.0, valid=_positive,
                             expected="seconds, > 0 (Kaggle's is 900)"),
    )


def _argument(s: dict, key: str, arguments: tuple[str, ...], default: str) -> str:
    value = _get(s, key, _WHERE, str, default)
    if value and value not in arguments:
        raise _bad(key, _WHERE, value, f"one of predict's arguments: {', '.join(_show(a) for a in arguments)}")
    return value


def _files(s: dict, root: Path, test_path: Path, arguments: tuple[str, ...],
           own: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """(argument, file name) for each argument that is neither the table nor the sample: a public file beside
    the test table, cut into the same batches (the rehearsal gateway sends its rows of each batch)."""
    given = _get(s, "files", _WHERE, dict, {}, expected='a table of argument = "path", written [serve.files]')
    out = []
    for arg in arguments:
        if arg in own:
            if arg in given:
                raise _err("[serve.files]", f"{arg} is predict's {own[arg]} argument: the gateway sends it from the "
                                            f"{'test table' if own[arg] == 'table' else 'sample submission'}")
            continue
        if arg not in given:
            raise _err("[serve.files]", f"predict's argument {arg!r} has no file: give {arg} = \"<public file>\" (beside "
                                        "the test table), which the rehearsal gateway cuts into the test's batches")
        rel = _get(given, arg, "[serve.files]", str, valid=bool, expected="the path of a public file")
        path = _path(root, rel)
        if not path.is_file():
            raise _err("[serve.files]", f"{arg} = {_show(rel)}: {path} not found")
        if path.resolve().parent != test_path.resolve().parent:
            raise _err("[serve.files]", f"{arg} = {_show(rel)} is not in the test table's folder ({test_path.parent}); "
                                        "the gateway reads its files from the competition's one data folder")
        out.append((arg, path.name))
    for extra in set(given) - set(arguments):
        raise _err("[serve.files]", f"{extra!r} is not one of predict's arguments ({', '.join(arguments)})")
    return tuple(out)


def _fallback(s: dict, targets: tuple[str, ...]) -> tuple[tuple[str, float | str], ...]:
    given = _get(s, "fallback", _WHERE, dict, {}, expected='a table of target = value, written [serve.fallback]')
    for col, value in given.items():
        if col not in targets:
            raise _err("[serve.fallback]", f"{col!r} is not a target column of the submission ({', '.join(targets)})")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _bad(col, "[serve.fallback]", value, "a number or a label")
    return tuple((c, float(v) if isinstance(v, int) else v) for c, v in given.items())


__all__ = ["parse_serve"]
