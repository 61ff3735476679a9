"""One rehearsal gateway run: the batches sent one by one, each answer checked, the outcome written."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packager.offline.gateway.batches import Batch, PublicData
from packager.offline.gateway.client import Client
from packager.offline.gateway.errors import ErrorType, GatewayError
from packager.offline.gateway.spec import GatewaySpec
from packager.offline.gateway.validation import check_answer
from runtime.serve import wire

RESULT = "result.json"
SUBMISSION = "submission.parquet"
LATENCY = "latency.jsonl"


class _Latency:
    """``latency.jsonl``: one line per call, flushed as it is written (a killed gateway leaves what it saw)."""

    def __init__(self, path: Path):
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the run
        self.least_slack_s: float | None = None
        self.slowest_s = 0.0

    def add(self, batch: Batch, sent: float, received: float, start: float, deadline: float | None,
            error: str = "") -> dict:
        """One call's line (``error``: how the call failed, Kaggle's name; a late one is ``late``)."""
        latency = received - sent
        rec = {"batch": batch.index, "key": batch.key, "rows": len(batch.rows), "sent_s": round(sent - start, 4),
               "received_s": round(received - start, 4), "latency_s": round(latency, 4), "deadline_s": deadline,
               "slack_s": None if deadline is None else round(deadline - latency, 4),
               "late": error == ErrorType.GRPC_DEADLINE_EXCEEDED.name, "error": error or None}
        if deadline is not None:
            self.slowest_s = max(self.slowest_s, latency)
            slack = round(deadline - latency, 4)  # (rec's slack_s)
            self.least_slack_s = slack if self.least_slack_s is None else min(self.least_slack_s, slack)
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        return rec

    def close(self) -> None:
        self.file.close()


def run_gateway(spec: GatewaySpec, start: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Send every batch of the public test to the server, check each answer, write the outcome.

    Args:
        spec: What to send and check.
        start: When the gateway started, on ``time.monotonic()`` (the startup limit counts from there);
            None: now.
        log: Where progress lines go.

    Returns:
        What ``result.json`` holds (Kaggle's keys, ninefit's figures under ``"ninefit"``).
    """
    start = time.monotonic() if start is None else start
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUBMISSION).unlink(missing_ok=True)
    info: dict[str, Any] = {"order": spec.order, "seed": spec.seed if spec.order == "random" else None,
                            "response_timeout_s": spec.response_timeout_s, "startup_limit_s": spec.startup_limit_s,
                            "batches": None, "answered": 0, "rows": 0, "startup_s": None, "port": None}
    latency = _Latency(out / LATENCY)
    client = Client(spec.ports)
    try:
        result = _serve(spec, start, client, latency, info, log)
    except GatewayError as exc:
        result = exc.result()
    except BaseException as exc:  # noqa: BLE001 - the gateway's own failure is a result too (Kaggle: GATEWAY_RAISED_EXCEPTION)
        result = GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION, "".join(traceback.format_exception(exc))).result()
        if not isinstance(exc, Exception):
            result["ErrorType"], result["ErrorName"] = int(ErrorType.UNSPECIFIED), ErrorType.UNSPECIFIED.name
            result["ErrorDetails"] = f"the gateway was stopped ({type(exc).__name__}) after {info['answered']} call(s)"
    finally:
        client.close()
        latency.close()
    info.update(wall_s=round(time.monotonic() - start, 4), slowest_s=round(latency.slowest_s, 4),
                least_slack_s=latency.least_slack_s)
    result["ninefit"] = info
    text = json.dumps(result, indent=1)
    (out / RESULT).write_text(text, encoding="utf-8")
    log("gateway: " + ("succeeded" if result["Succeeded"] else f"{result['ErrorName']}: {result['ErrorDetails'][-2000:]}"))
    return result


def _serve(spec: GatewaySpec, start: float, client: Client, latency: _Latency, info: dict, log: Callable) -> dict:
    data = PublicData(spec)
    batches = data.batches()
    info["batches"] = len(batches)
    order = f"random order (seed {spec.seed})" if spec.order == "random" else "file order"
    unit = f"one per {spec.batch_by}" if spec.batch_by else f"{spec.batch_rows} row(s) each"
    log(f"gateway: {len(batches)} batches of {spec.test} ({unit}), {order}; response deadline "
        f"{spec.response_timeout_s:g} s after the first call; startup limit {spec.startup_limit_s:g} s")
    frames = []
    for batch in batches:
        request = wire.request("predict", *data.arguments(batch))
        deadline = None if batch.index == 0 else spec.response_timeout_s
        try:
            if batch.index == 0:
                answer, sent, received = client.first_call(request, spec.startup_limit_s, start)
                assert client.connected_at is not None, "a first call answered was taken by a connected server"
                info["startup_s"], info["port"] = round(client.connected_at - start, 4), client.port
                log(f"gateway: the server took the first call {info['startup_s']:.2f} s after the gateway started "
                    f"(port {client.port})")
            else:
                answer, sent, received = client.call(request, deadline)
        except GatewayError as exc:
            if exc.kind != ErrorType.SERVER_NEVER_STARTED:  # the call was sent: its line, and the batch named
                assert client.last_sent is not None, "a call that failed after the startup was sent"
                latency.add(batch, client.last_sent, time.monotonic(), start, deadline, error=exc.kind.name)
                exc.details = f"batch {batch.index} ({batch.key}, {len(batch.rows)} rows): {exc.details}"
            raise
        latency.add(batch, sent, received, start, deadline)
        frames.append(check_answer(answer, batch, data.expected_ids(batch), spec))
        info["answered"] += 1
        info["rows"] += len(batch.rows)
    _write_submission(frames, Path(spec.out_dir) / SUBMISSION)
    return {"Succeeded": True}


def _write_submission(frames: list, path: Path) -> None:
    """The answers, concatenated, as ``submission.parquet`` (written whole or not at all)."""
    import polars as pl

    try:
        submission = pl.concat(frames, how="vertical_relaxed")
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError) as exc:
        raise GatewayError(ErrorType.INVALID_SUBMISSION, f"Inconsistent prediction types across batches: {exc}") from exc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    submission.write_parquet(tmp)
    os.replace(tmp, path)


__all__ = ["LATENCY", "RESULT", "SUBMISSION", "run_gateway"]
