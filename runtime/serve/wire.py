"""The evaluation API's wire format: gRPC on loopback, one ``Send`` method, values as Kaggle encodes them.

Kaggle's gateway and inference server speak one protobuf service,
``kaggle_evaluation_client.KaggleEvaluationService/Send``: a request names the
endpoint (``"predict"``) and carries its positional and keyword arguments as
``Payload`` values; the response carries one. The messages are built here from
a descriptor at run time (no generated code: protoc output pins grpcio and
protobuf versions, and Kaggle's image has its own), with the field numbers and
value encodings of Kaggle's ``kaggle_evaluation`` package, so that ninefit's
stand-in server and rehearsal gateway interoperate with the real ones:

* a numpy scalar as ``np.save`` bytes (full precision); ``str``, ``bool``,
  ``int`` (sint64), ``float`` (a 32-bit float on the wire: 0.1 comes back as
  0.10000000149...), ``None``; lists, tuples and dicts of string keys;
* a pandas DataFrame as LZ4 Parquet without its index, a polars DataFrame as
  an LZ4 Arrow IPC stream, a Series as a one-column Parquet, a numpy array as
  ``np.save`` bytes.

grpc, protobuf, pyarrow, pandas and polars are imported when used.
"""

from __future__ import annotations

import functools
import io
from typing import Any

#: The one method of the service, as gRPC names it.
METHOD = "/kaggle_evaluation_client.KaggleEvaluationService/Send"
#: Ports an inference server binds, the first free one (the gateway tries each in turn).
PORTS = (50051, *range(60053, 60063))
#: Channel and server options of both sides: no message size limit, keepalives.
CHANNEL_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                   ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0))

_BYTES_FIELDS = ("pandas_dataframe_value", "polars_dataframe_value", "pandas_series_value", "polars_series_value",
                 "numpy_array_value", "numpy_scalar_value", "bytes_io_value")


@functools.lru_cache(maxsize=1)
def messages() -> tuple[Any, Any, Any]:
    """The (request, response, payload) message classes, built from a descriptor once per process (classes made
    at run time, of an untyped library: Any)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="ninefit_kaggle_evaluation.proto", package="kaggle_evaluation_client",
                                             syntax="proto3")

    def message(name: str):
        return fdp.message_type.add(name=name)

    def add_fields(m, fields):
        for name, number, kind, label, type_name, oneof in fields:
            field = m.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
            if oneof is not None:
                field.oneof_index = oneof

    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    payload = message("Payload")
    payload.oneof_decl.add(name="value")
    add_fields(payload, [
        ("str_value", 1, f.TYPE_STRING, opt, "", 0), ("bool_value", 2, f.TYPE_BOOL, opt, "", 0),
        ("int_value", 3, f.TYPE_SINT64, opt, "", 0), ("float_value", 4, f.TYPE_FLOAT, opt, "", 0),
        ("none_value", 5, f.TYPE_BOOL, opt, "", 0),
        ("list_value", 6, f.TYPE_MESSAGE, opt, ".kaggle_evaluation_client.PayloadList", 0),
        ("tuple_value", 7, f.TYPE_MESSAGE, opt, ".kaggle_evaluation_client.PayloadList", 0),
        ("dict_value", 8, f.TYPE_MESSAGE, opt, ".kaggle_evaluation_client.PayloadMap", 0),
        *((name, 9 + k, f.TYPE_BYTES, opt, "", 0) for k, name in enumerate(_BYTES_FIELDS)),
    ])
    plist = message("PayloadList")
    add_fields(plist, [("payloads", 1, f.TYPE_MESSAGE, rep, ".kaggle_evaluation_client.Payload", None)])
    for owner_name, field_name, number in (("PayloadMap", "payload_map", 1), ("KaggleEvaluationRequest", "kwargs", 3)):
        owner = message(owner_name)
        entry = owner.nested_type.add(name=f"{field_name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        add_fields(entry, [("key", 1, f.TYPE_STRING, opt, "", None),
                           ("value", 2, f.TYPE_MESSAGE, opt, ".kaggle_evaluation_client.Payload", None)])
        if owner_name == "KaggleEvaluationRequest":
            add_fields(owner, [("name", 1, f.TYPE_STRING, opt, "", None),
                               ("args", 2, f.TYPE_MESSAGE, rep, ".kaggle_evaluation_client.Payload", None)])
        add_fields(owner, [(field_name, number, f.TYPE_MESSAGE, rep,
                            f".kaggle_evaluation_client.{owner_name}.{entry.name}", None)])
    response = message("KaggleEvaluationResponse")
    add_fields(response, [("payload", 1, f.TYPE_MESSAGE, opt, ".kaggle_evaluation_client.Payload", None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"kaggle_evaluation_client.{name}"))

    return cls("KaggleEvaluationRequest"), cls("KaggleEvaluationResponse"), cls("Payload")


def encode(value: Any) -> Any:
    """One Python value as a ``Payload`` message.

    Raises:
        TypeError: A type the evaluation API does not carry (named).
    """
    import numpy as np

    payload = messages()[2]()
    kind = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
    if isinstance(value, np.generic) and (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        payload.numpy_scalar_value = buf.getvalue()
    elif isinstance(value, str):
        payload.str_value = value
    elif isinstance(value, bool):
        payload.bool_value = value
    elif isinstance(value, int):
        payload.int_value = value
    elif isinstance(value, float):
        payload.float_value = value
    elif value is None:
        payload.none_value = True
    elif isinstance(value, (list, tuple)):
        target = payload.list_value if isinstance(value, list) else payload.tuple_value
        target.payloads.extend(encode(v) for v in value)
        if not value:
            target.SetInParent()
    elif isinstance(value, dict):
        payload.dict_value.SetInParent()
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be str to travel over the evaluation API, got {type(k).__name__}")
            payload.dict_value.payload_map[k].CopyFrom(encode(v))
    elif kind in ("pandas.DataFrame", "pandas.Series"):
        frame = value if kind == "pandas.DataFrame" else value.to_frame()
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False, compression="lz4")
        setattr(payload, "pandas_dataframe_value" if kind == "pandas.DataFrame" else "pandas_series_value", buf.getvalue())
    elif kind == "polars.DataFrame":
        payload.polars_dataframe_value = _ipc(value.to_arrow())
    elif kind == "polars.Series":
        buf = io.BytesIO()
        value.to_frame().write_parquet(buf)
        payload.polars_series_value = buf.getvalue()
    elif isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        payload.numpy_array_value = buf.getvalue()
    elif isinstance(value, io.BytesIO):
        payload.bytes_io_value = value.getvalue()
    else:
        raise TypeError(f"Type {type(value)} not supported for KaggleEvaluation.")
    return payload


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(payload: Any) -> Any:
    """A ``Payload`` message as the Python value it carries."""
    import numpy as np

    which = payload.WhichOneof("value")
    if which is None or which == "none_value":
        return None
    if which in ("str_value", "bool_value", "int_value", "float_value"):
        return getattr(payload, which)
    if which in ("list_value", "tuple_value"):
        items = [decode(p) for p in getattr(payload, which).payloads]
        return items if which == "list_value" else tuple(items)
    if which == "dict_value":
        return {k: decode(v) for k, v in payload.dict_value.payload_map.items()}
    raw = getattr(payload, which)
    if which in ("numpy_scalar_value", "numpy_array_value"):
        value = np.load(io.BytesIO(raw), allow_pickle=False)
        return value[()] if which == "numpy_scalar_value" else value
    if which == "bytes_io_value":
        return io.BytesIO(raw)
    if which.startswith("pandas"):
        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(raw))
        return frame if which == "pandas_dataframe_value" else frame.iloc[:, 0]
    import polars as pl

    if which == "polars_dataframe_value":
        import pyarrow as pa

        return pl.from_arrow(pa.ipc.open_stream(raw).read_all())
    return pl.read_parquet(io.BytesIO(raw)).to_series(0)


def request(name: str, *args: Any, **kwargs: Any) -> Any:
    """A ``KaggleEvaluationRequest`` calling endpoint ``name``."""
    req = messages()[0](name=name)
    req.args.extend(encode(a) for a in args)
    for k, v in kwargs.items():
        req.kwargs[k].CopyFrom(encode(v))
    return req


__all__ = ["CHANNEL_OPTIONS", "METHOD", "PORTS", "decode", "encode", "messages", "request"]
