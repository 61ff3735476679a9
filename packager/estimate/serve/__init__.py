"""Will a bundle that serves Kaggle's evaluation API answer every batch in time, and fit the notebook's limit?

A serving run (:mod:`runtime.serve`) has a shape of its own: the server must
take calls within ``[serve] startup_limit_s`` of the notebook's start, the
first call (no response deadline) loads every member, and every later call
must answer within the competition's response deadline, the whole within the
notebook's limit. :func:`estimate_serve` prices that shape on a target from
the same per-member costs as the file-run estimate (:class:`Costing`: the
profile translated to the target, calibrated and widened alike) and decides as
the runtime does:

* **startup**: ``install``, ``python`` and ``imports`` as the file-run
  estimate prices them (:mod:`packager.estimate.price.bundle`), and ``server``: importing and
  starting the competition's inference server (:data:`SERVER_START_S`, a rate
  constant). Over the startup limit at the expected time the gateway gives up
  and the submission fails: a blocking check ``[startup]``; at the high edge
  only: ``tight``.
* **the first call**: ``verify`` and ``startup`` (the runtime's own set-up, the
  first session, CUDA's context), every member's best rung loaded, and one
  batch of the typical size (:mod:`.batches`) through every member, with the
  call's own cost.
* **each batch size** the spec declares (:func:`~packager.estimate.batches.declared_batches`):
  each member's cost for the batch's rows at its batch size on the target,
  and the call's own cost outside the members (:func:`call_overhead`). The
  members get the response deadline less the runtime's margin
  (:class:`runtime.serve.budget.CallBudget`, fed the call's cost as its
  measured overhead) less that cost; the runtime's planner
  (:func:`runtime.schedule.planner.plan`, as the predictor calls it; a rung
  other than a member's best pays its load) picks the members and rungs that
  fit, on the high edge of their bands. A call whose own cost leaves no time
  is a blocking check ``[response-deadline]``; a member left out is named,
  with the largest batch each of its rungs fits.
* **the whole**: startup, the first call, then every later call with what its
  deadline admits, against the limit less the margin, by the file-run rule
  (:func:`~packager.estimate.estimator.verdict`). When it does not fit and
  the spec declares ``expected_rows`` or ``expected_batches`` (else the run
  cannot pace), :func:`runtime.serve.pacing.allocate` on the high-edge costs
  says what the run delivers: each member's rung and share of every batch's
  rows. Without either, the run gives every batch its members until the
  notebook's time runs out and answers the rest with the fallback values.

The parts: :mod:`.batches` (the batches the spec declares), :mod:`.pricing`
(:func:`estimate_serve`), :mod:`.result` (:class:`ServeEstimate`, its verdict
and JSON), :mod:`.render` (the table ``ninefit estimate`` prints).
"""

from packager.estimate.serve.batches import Batches, declared_batches
from packager.estimate.serve.pricing import CALL_FIXED_S, CALL_S_PER_ROW, SERVER_START_S, call_overhead, estimate_serve
from packager.estimate.serve.render import format_serve
from packager.estimate.serve.result import MAX_ROWS, BatchFit, ServeEstimate

__all__ = ["CALL_FIXED_S", "CALL_S_PER_ROW", "MAX_ROWS", "SERVER_START_S", "BatchFit", "Batches", "ServeEstimate",
           "call_overhead", "declared_batches", "estimate_serve", "format_serve"]
