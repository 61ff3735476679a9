"""ninefit's stand-in for a competition's inference server, speaking Kaggle's wire format.

A competition that streams its test ships ``kaggle_evaluation`` in its data,
and the notebook wraps ``predict`` in that package's server. Where there is
none (a competition made offline, as ``examples/serve``, or a test), this
server does the same, on the same protocol (:mod:`runtime.serve.wire`), so a
gateway cannot tell them apart:

* each listener is a plain function, registered under its ``__name__`` (the
  gateway calls ``predict``);
* one worker thread: calls are answered one at a time;
* it binds the first free port of :data:`runtime.serve.wire.PORTS` on loopback (never one served already);
* :meth:`InferenceServer.serve` starts it, and blocks only on Kaggle's rerun
  (``KAGGLE_IS_COMPETITION_RERUN`` set): nothing after it runs there.

An exception in a listener reaches the gateway as gRPC's ``UNKNOWN`` with
"Exception calling application: ...", as it does from Kaggle's server.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

from runtime.errors import UsageError
from runtime.serve import wire

#: Set on Kaggle's rerun of the notebook: ``serve()`` then blocks until the gateway is done.
RERUN_ENV = "KAGGLE_IS_COMPETITION_RERUN"


class InferenceServer:
    """A gRPC server answering the gateway's calls with the listeners given (see the module docstring).

    Raises:
        UsageError: A listener is not a plain, named function (a lambda, an object), or no port is free.
    """

    def __init__(self, *listeners: Callable[..., Any]):
        from concurrent import futures

        import grpc

        for fn in listeners:
            if not isinstance(fn, types.FunctionType) or fn.__name__ == "<lambda>":
                raise UsageError(f"a listener must be a plain function named as the gateway calls it (def predict"
                                 f"(*args, **kwargs): ...), got {fn!r}")
        self.listeners = {fn.__name__: fn for fn in listeners}
        request, response, _ = wire.messages()
        handler = grpc.method_handlers_generic_handler("kaggle_evaluation_client.KaggleEvaluationService", {
            "Send": grpc.unary_unary_rpc_method_handler(self._send, request_deserializer=request.FromString,
                                                        response_serializer=response.SerializeToString)})
        # gRPC binds with SO_REUSEPORT by default: a second server on a port already served would share it, and
        # the kernel would hand each connection to either (another notebook's or test's server answering). Off, a
        # port in use is taken, and the next one is tried.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=(handler,),
                                  options=(*wire.CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)))
        self.port = 0
        for port in wire.PORTS:
            try:
                if self.server.add_insecure_port(f"localhost:{port}"):
                    self.port = port
                    break
            except RuntimeError:  # taken: the next one
                continue
        if not self.port:
            raise UsageError(f"no free port for the inference server among {wire.PORTS[0]}, "
                             f"{wire.PORTS[1]}-{wire.PORTS[-1]} on localhost")

    def _send(self, request: Any, context: Any) -> Any:
        fn = self.listeners.get(request.name)
        if fn is None:
            raise RuntimeError(f"No listener for {request.name} was registered")
        args = [wire.decode(a) for a in request.args]
        kwargs = {k: wire.decode(v) for k, v in request.kwargs.items()}
        return wire.messages()[1](payload=wire.encode(fn(*args, **kwargs)))

    def serve(self) -> None:
        """Start answering; on Kaggle's rerun, block until the gateway is done (nothing after this runs there)."""
        self.server.start()
        if os.getenv(RERUN_ENV) is not None:
            self.server.wait_for_termination()

    def stop(self, grace: float | None = 0) -> None:
        self.server.stop(grace)


__all__ = ["RERUN_ENV", "InferenceServer"]
