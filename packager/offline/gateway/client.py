"""The gateway's end of the wire: dial the server, wait for it to start, send each call against its deadline.

Kaggle's client tries each port in turn until a server takes the first call,
for at most the startup limit, then sends every call with its deadline; a
failure is told apart by its gRPC status and text (Kaggle's
``handle_server_error``): an exception in ``predict`` arrives as ``UNKNOWN``
"Exception calling application: ...", a missing endpoint as "No listener for
predict was registered", a call past its deadline as ``DEADLINE_EXCEEDED``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from packager.offline.gateway.errors import ErrorType, GatewayError
from runtime.serve import wire

#: Seconds one port is given to answer during the startup wait (a sweep of the ports is about a second).
PORT_TRY_S = 0.1
_RAISED = re.compile(r"Exception calling application: (.*)", re.DOTALL)


class Client:
    """Calls ``predict`` on the inference server (see the module docstring)."""

    def __init__(self, ports: tuple[int, ...], endpoint: str = "predict"):
        self.ports, self.endpoint = ports, endpoint
        self.port: int | None = None
        self.connected_at: float | None = None  # when a server first took a connection (time.monotonic())
        self.last_sent: float | None = None  # when the last call was sent (time.monotonic())
        self._channel: Any = None
        self._send: Any = None

    def _dial(self, port: int) -> bool:
        """Open a channel to ``port``; True once a server there accepts connections."""
        import grpc

        # No HTTP proxy for loopback, whatever the environment says; otherwise Kaggle's options.
        channel = grpc.insecure_channel(f"localhost:{port}", options=(*wire.CHANNEL_OPTIONS, ("grpc.enable_http_proxy", 0)))
        try:
            grpc.channel_ready_future(channel).result(timeout=PORT_TRY_S)
        except grpc.FutureTimeoutError:
            channel.close()
            return False
        request, response, _ = wire.messages()
        self._channel, self.port, self.connected_at = channel, port, time.monotonic()
        self._send = channel.unary_unary(wire.METHOD, request_serializer=request.SerializeToString,
                                         response_deserializer=response.FromString)
        return True

    def connect(self, until: float, limit_s: float) -> None:
        """Wait (on ``time.monotonic()``) until ``until`` for a server on one of the ports (``limit_s``: the
        startup limit, for the message).

        Raises:
            GatewayError: ``SERVER_NEVER_STARTED``.
        """
        self.close()
        while time.monotonic() < until:
            for port in self.ports:
                if self._dial(port):
                    return
        ports = ", ".join(map(str, self.ports[:3])) + (f", ... {self.ports[-1]}" if len(self.ports) > 3 else "")
        raise GatewayError(ErrorType.SERVER_NEVER_STARTED, f"Failed to connect to server after waiting {limit_s:g} "
                           f"seconds (ports {ports} on localhost): the notebook never started its inference server")

    def first_call(self, request: Any, limit_s: float, start: float) -> tuple[Any, float, float]:
        """The first call: retried while no server takes it, until ``start + limit_s``; no deadline once taken.

        Returns:
            (the answer, when it was sent, when the answer came) on ``time.monotonic()``.
        """
        import grpc

        while True:
            self.connect(start + limit_s, limit_s)
            try:
                return self.call(request, None)
            except GatewayError as exc:
                cause = exc.__cause__
                retry = isinstance(cause, grpc.RpcError) and cause.code() in (grpc.StatusCode.UNAVAILABLE,
                                                                               grpc.StatusCode.UNIMPLEMENTED)
                if not retry or time.monotonic() >= start + limit_s:
                    raise

    def call(self, request: Any, timeout: float | None) -> tuple[Any, float, float]:
        """One call held to ``timeout`` seconds (None: none): (answer, sent, received) on ``time.monotonic()``.

        Raises:
            GatewayError: Kaggle's type for what went wrong.
        """
        import grpc

        sent = self.last_sent = time.monotonic()
        try:
            response = self._send(request, timeout=timeout, wait_for_ready=False)
        except grpc.RpcError as exc:
            raise self._error(exc, timeout) from exc
        received = time.monotonic()
        return wire.decode(response.payload), sent, received

    def _error(self, exc: Any, timeout: float | None) -> GatewayError:
        import grpc

        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return GatewayError(ErrorType.GRPC_DEADLINE_EXCEEDED,
                                f"no answer within the response deadline of {timeout:g} s" if timeout else details)
        if f"No listener for {self.endpoint} was registered" in details:
            return GatewayError(ErrorType.SERVER_MISSING_ENDPOINT,
                                f"{details}: the server's function must be named {self.endpoint}")
        raised = _RAISED.search(details)
        if raised:
            return GatewayError(ErrorType.SERVER_RAISED_EXCEPTION, raised.group(1))
        return GatewayError(ErrorType.SERVER_CONNECTION_FAILED, f"{code.name}: {details}")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._send = self.port = None


__all__ = ["PORT_TRY_S", "Client"]
