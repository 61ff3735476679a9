"""The evaluation API's wire format and ninefit's stand-in server, against the values Kaggle's package sends."""

from __future__ import annotations

import io

import numpy as np
import pytest

grpc = pytest.importorskip("grpc", reason="the evaluation API speaks gRPC (pip install grpcio)")
pl = pytest.importorskip("polars")
pd = pytest.importorskip("pandas")

from runtime.serve import wire  # noqa: E402
from runtime.serve.server import InferenceServer  # noqa: E402


def _round_trip(value):
    payload = wire.messages()[2]
    return wire.decode(payload.FromString(wire.encode(value).SerializeToString()))


def test_values_travel_as_kaggle_encodes_them():
    assert _round_trip("a") == "a" and _round_trip(True) is True and _round_trip(-3) == -3
    assert _round_trip(None) is None and _round_trip([1, ("x", {"k": None})]) == [1, ("x", {"k": None})]
    assert _round_trip(0.1) == pytest.approx(0.1, rel=1e-7) and _round_trip(0.1) != 0.1  # a float is a float32
    assert _round_trip(np.float64(0.1)) == 0.1  # a numpy scalar keeps its precision
    assert (_round_trip(np.arange(4).reshape(2, 2)) == np.arange(4).reshape(2, 2)).all()
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[7, 9])
    back = _round_trip(frame)
    assert back.equals(frame.reset_index(drop=True))  # the index does not travel
    polars = pl.DataFrame({"a": [1.5, None], "s": ["p", "q"]})
    assert _round_trip(polars).equals(polars)
    assert _round_trip(pl.Series("s", [1, 2])).to_list() == [1, 2]
    assert _round_trip(io.BytesIO(b"raw")).getvalue() == b"raw"
    # sint64 as protoc writes it: the bytes Kaggle's own generated code sends
    assert wire.messages()[2](int_value=-3).SerializeToString().hex() == "1805"
    with pytest.raises(TypeError, match="not supported for KaggleEvaluation"):
        wire.encode(object())


def test_the_server_answers_predict_and_names_what_goes_wrong():
    def predict(test, lags=None):
        if len(test) == 0:
            raise ValueError("an empty batch")
        return pl.DataFrame({"id": test["id"], "y": test["x"] * 2})

    server = InferenceServer(predict)
    server.serve()  # KAGGLE_IS_COMPETITION_RERUN unset: returns at once
    try:
        request, response, _ = wire.messages()
        with grpc.insecure_channel(f"localhost:{server.port}", options=wire.CHANNEL_OPTIONS) as channel:
            send = channel.unary_unary(wire.METHOD, request_serializer=request.SerializeToString,
                                       response_deserializer=response.FromString)
            out = wire.decode(send(wire.request("predict", pl.DataFrame({"id": ["a"], "x": [2.0]}), None),
                                   timeout=10).payload)
            assert out.to_dicts() == [{"id": "a", "y": 4.0}]
            with pytest.raises(grpc.RpcError) as err:
                send(wire.request("predict", pl.DataFrame({"id": [], "x": []})), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNKNOWN
            assert "Exception calling application: an empty batch" in err.value.details()
            with pytest.raises(grpc.RpcError, match="No listener for score was registered"):
                send(wire.request("score"), timeout=10)
    finally:
        server.stop()


def test_a_listener_must_be_a_plain_named_function():
    from runtime.errors import UsageError

    with pytest.raises(UsageError, match="plain function"):
        InferenceServer(lambda test: test)


def test_a_second_server_takes_the_next_free_port_never_one_already_served():
    """gRPC's default SO_REUSEPORT would let two servers share a port, each connection answered by either."""
    def predict(test):
        return 1

    first = InferenceServer(predict)
    first.serve()
    try:
        second = InferenceServer(predict)
        try:
            assert second.port != first.port and {first.port, second.port} <= set(wire.PORTS)
        finally:
            second.stop()
    finally:
        first.stop()
