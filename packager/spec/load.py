""":func:`load_spec`: a spec file read, every table parsed and checked, into a :class:`~packager.spec.types.Spec`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from packager.spec.data import parse_data, parse_submission, read_header
from packager.spec.models import HOOKED, parse_model
from packager.spec.serve import parse_serve
from packager.spec.tables import _TOP, _check_keys, _err, _get, _path, _positive, _tables
from packager.spec.types import Spec
from runtime.errors import SpecError
from runtime.manifest import COMBINERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_spec(path: str | os.PathLike) -> Spec:
    """Parse and validate a spec file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except IsADirectoryError:
        raise SpecError(f"spec file {path} is a folder; expected the TOML spec file (e.g. {path / 'ninefit.toml'})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {path} is not UTF-8 text ({exc}); expected a TOML file") from None
    except OSError as exc:
        raise SpecError(f"spec file {path} cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid TOML: {exc}") from exc
    root = path.parent.resolve()
    _check_keys(raw, _TOP, "top")
    name = _get(raw, "name", _TOP, str, path.stem, valid=bool, expected="a non-empty string")
    data, test_path, sample_path, hooks = parse_data(raw, root)
    header = read_header(test_path)
    if header is not None and data.features_group and data.features_group not in header:
        raise _err("[data]", f"features_group = {data.features_group!r} is not a column of the test table (its columns: "
                             f"{', '.join(header[:12])})")
    if data.features:
        header = HOOKED
    s = _get(raw, "submission", _TOP, dict, {}, expected="a table, written [submission]")
    _check_keys(s, "[submission]", "submission")
    sample_header = read_header(sample_path)
    if sample_header is None:
        raise _err("[data]", f"sample_submission = {sample_path} not found (it fixes the submission's columns and row order)")
    if data.id_column not in sample_header:
        raise _err("[data]", f"the sample submission has no id column {data.id_column!r}; its columns: {', '.join(sample_header)}")
    out_cols = [c for c in sample_header if c != data.id_column]
    submission = parse_submission(s, out_cols, root)
    models_t = _tables(raw, "model", _TOP, "[[model]]")
    if not models_t:
        raise _err(_TOP, "no [[model]] given; add at least one")
    models = tuple(parse_model(t, i, root, header, data) for i, t in enumerate(models_t))
    if len({m.name for m in models}) != len(models):
        raise _err("[[model]]", "model names must be unique")
    e = _get(raw, "ensemble", _TOP, dict, {}, expected="a table, written [ensemble]")
    _check_keys(e, "[ensemble]", "ensemble")
    fb = _get(e, "fallback", "[ensemble]", str, "")
    return Spec(
        name=name, root=root, data=data, test_path=test_path, sample_submission=sample_path,
        submission=submission, models=models, hooks=hooks,
        combiner=_get(e, "combiner", "[ensemble]", str, "mean", COMBINERS),
        fallback=_path(root, fb) if fb else None,
        verify_rows=_get(raw, "verify_rows", _TOP, int, 256, valid=_positive, expected="a whole number of rows, at least 1"),
        serve=parse_serve(raw, root, data, test_path, read_header(test_path), submission.mode, tuple(out_cols)),
    )


__all__ = ["load_spec"]
