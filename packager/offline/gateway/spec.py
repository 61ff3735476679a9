"""What a rehearsal gateway sends and checks: the public files, the batches, the deadlines (JSON in and out)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from runtime.errors import PackagingError
from runtime.manifest import Manifest
from runtime.serve.wire import PORTS


@dataclass(frozen=True)
class GatewaySpec:
    """One rehearsal's gateway (see :mod:`packager.offline.gateway`).

    Attributes:
        data_dir: The competition's public data folder (read only).
        test: The public test table, relative to ``data_dir`` (CSV or Parquet).
        sample: The sample submission, relative to ``data_dir`` ("": none is read).
        files: (argument, file) for each other argument: a public file, cut into the same batches.
        arguments: ``predict``'s positional arguments, in order.
        table: The argument that is the test table's slice.
        sample_argument: The argument that is the sample submission's slice ("": none).
        id_column: The test's id column: an answer holding it must hold the batch's ids, in order.
        targets: The answer's target columns.
        numeric: The targets are numbers: each must be finite.
        include_id: The answer carries the id column (else the gateway adds it to the submission).
        scalar: The answer is one value (a one-row batch).
        batch_by: One batch per value of this test column ("": ``batch_rows`` rows each).
        batch_rows: Rows per batch without ``batch_by``.
        order: ``random`` (shuffled with ``seed``) or ``file``.
        seed: The random order's seed.
        response_timeout_s: Every call's deadline but the first.
        startup_limit_s: How long the first call is retried while no server answers.
        out_dir: Where ``submission.parquet``, ``result.json`` and ``latency.jsonl`` go.
        ports: The ports dialled, in turn.
    """

    data_dir: str
    test: str
    sample: str = ""
    files: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ("test",)
    table: str = "test"
    sample_argument: str = ""
    id_column: str = ""
    targets: tuple[str, ...] = ()
    numeric: bool = True
    include_id: bool = True
    scalar: bool = False
    batch_by: str = ""
    batch_rows: int = 1
    order: str = "random"
    seed: int = 0
    response_timeout_s: float = 60.0
    startup_limit_s: float = 900.0
    out_dir: str = "."
    ports: tuple[int, ...] = PORTS

    @classmethod
    def from_manifest(cls, manifest: Manifest, data_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                      seed: int, startup_limit_s: float | None = None) -> GatewaySpec:
        """The gateway a serving bundle's ``[serve]`` table describes, on the public data in ``data_dir``.

        Raises:
            PackagingError: The bundle does not serve (no ``serve`` in its manifest).
        """
        s = manifest.serve
        if s is None:
            raise PackagingError(f"bundle {manifest.name!r} has no [serve] table: it writes a submission file, "
                                 "and `ninefit simulate` rehearses it as a file run")
        sub = manifest.submission
        return cls(
            data_dir=str(data_dir), test=manifest.data.test, sample=sub.sample if s.sample else "", files=s.files,
            arguments=s.arguments, table=s.table or s.arguments[0], sample_argument=s.sample,
            id_column=manifest.data.id_column, targets=sub.columns,
            numeric=sub.mode == "values" and manifest.generate is None,  # a causal LM's answers may be text
            include_id=s.include_id, scalar=s.scalar, batch_by=s.batch_by, batch_rows=s.batch_rows, order=s.order,
            seed=seed, response_timeout_s=s.response_timeout_s,
            startup_limit_s=s.startup_limit_s if startup_limit_s is None else startup_limit_s, out_dir=str(out_dir))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> GatewaySpec:
        raw: dict[str, Any] = json.loads(text)
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        values: dict[str, Any] = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if k in tuples else v)
                                  for k, v in raw.items()}  # JSON's values, as to_json wrote them
        return cls(**values)

    def path(self, name: str) -> Path:
        """A public file, by its name relative to the data folder."""
        return Path(self.data_dir) / name


__all__ = ["GatewaySpec"]
