"""Serving Kaggle's evaluation API: a budgeted ``predict`` for the competition's inference-server gateway.

Many code competitions never show the notebook the hidden test: the notebook
wraps a ``predict`` function in the competition's inference server, and a
gateway in another container sends the hidden test batch by batch, each call
held to a response deadline (the first call excepted: models load there), the
whole to the notebook's limit. A late answer, an exception or a frame with the
wrong rows fails the whole submission.

:class:`Predictor` is that ``predict`` for a bundle. Cheap to build (the server
must start at once), it opens and checks the bundle and loads every member on
the first call, then answers each batch with the most valuable members and
rungs that fit the call's share of the time (:mod:`~runtime.serve.budget`):
never after the response deadline less a margin, never raising for what the
members do (a member still running when the time is up is left behind; the
answer is made from what finished, or from the fallback values), and keeping a
report of every call as it goes (:mod:`~runtime.serve.report`). The gateway
needs a plain function named ``predict``::

    predictor = runtime.serve.Predictor(BUNDLE_DIR, runtime.serve.ServeOptions(...))

    def predict(*args, **kwargs):
        return predictor(*args, **kwargs)
"""

from runtime.serve.options import ServeOptions
from runtime.serve.predictor import Predictor

__all__ = ["Predictor", "ServeOptions"]
