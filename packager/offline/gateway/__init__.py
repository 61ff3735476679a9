"""ninefit's rehearsal gateway: Kaggle's evaluation-API gateway, written from its documented behaviour.

``ninefit simulate`` runs a serving bundle's notebook as Kaggle reruns it
(``KAGGLE_IS_COMPETITION_RERUN`` set: ``serve()`` blocks) and this gateway as a
process of its own beside it, on the same loopback (``python -m
packager.offline.gateway SPEC.json``). Like Kaggle's, it:

* dials ``localhost`` on each of :data:`runtime.serve.wire.PORTS` and retries
  until the startup limit (Kaggle's 900 s; the spec's ``startup_limit_s``),
  then records the startup time: when the server first took a call;
* cuts the public test into the competition's batches (:mod:`.batches`): one
  per value of ``batch_by``, or ``batch_rows`` rows each, in random order
  (seeded; the seed is printed) or in file order, and sends each as
  ``predict``'s positional arguments (the table's slice, the sample
  submission's slice matched by id, each other file's rows of the batch);
* sends the first call with no deadline (the members load there) and holds
  every later one to ``response_timeout_s``, a gRPC deadline on the whole
  round trip: a late answer ends the run (``GRPC_DEADLINE_EXCEEDED``);
* validates each answer before the next batch (:mod:`.validation`) and ends
  the run at the first failure with Kaggle's error names;
* writes ``submission.parquet`` (the answers, the id column first) when every
  batch passed, and always ``result.json`` (Kaggle's ``Succeeded`` /
  ``ErrorType`` / ``ErrorName`` / ``ErrorDetails``, with ninefit's figures
  under ``"ninefit"``) and ``latency.jsonl``: one line per call, written as the
  calls go (rows, send and receive times, latency, deadline, slack).

The bytes are Kaggle's (:mod:`runtime.serve.wire`), so it drives a real
``kaggle_evaluation`` server as well as ninefit's stand-in. It needs grpcio,
protobuf, polars and pyarrow (``pip install "ninefit[serve]"``).
"""

from packager.offline.gateway.errors import ErrorType, GatewayError
from packager.offline.gateway.spec import GatewaySpec

__all__ = ["ErrorType", "GatewayError", "GatewaySpec"]
