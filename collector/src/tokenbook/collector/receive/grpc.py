"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on grpcio.

The method is registered under the service name of the generated `trace_service_pb2` descriptor, with
the request left as bytes so that a malformed message gets INVALID_ARGUMENT (grpcio's own
deserializer would answer INTERNAL). Statuses follow the OTLP spec:

* OK, with ``partial_success {rejected_spans, error_message}`` when some spans were refused;
* INVALID_ARGUMENT for an unparsable request;
* RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo`` trailer under backpressure and beyond
  ``limits.max_connections`` calls in progress (`_ConcurrencyLimit`), and for a message above
  ``max_request_bytes`` (grpcio's own check, ``grpc.max_receive_message_length``);
* UNAVAILABLE with RetryInfo when storage is down and the spool is full;
* with auth on, UNAUTHENTICATED / PERMISSION_DENIED (`tokenbook.collector.auth`);
* UNIMPLEMENTED, with what to do instead, for ``MetricsService/Export`` and ``LogsService/Export``
  (`tokenbook.collector.receive.signals`).

A connection with no call in progress for ``limits.grpc_idle_timeout`` gets a GOAWAY and is closed.

gzip-compressed requests are decompressed by grpcio.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tokenbook.collector.auth import TokenTable, grpc_credential
from tokenbook.collector.decode.spans import MalformedRequest
from tokenbook.collector.ingest.ingestor import Backpressure, Ingestor, StorageUnavailable
from tokenbook.collector.receive.signals import OTHER_SIGNALS, other_signal
from tokenbook.collector.tls import TLSConfig, grpc_credentials

__all__ = ["GrpcReceiver"]

_log = logging.getLogger(__name__)
_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
_BUSY_RETRY_S: Final = 1.0


def _retry_trailer(seconds: float) -> tuple[tuple[str, bytes]]:
    delay = Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
    return ((_RETRY_INFO_KEY, RetryInfo(retry_delay=delay).SerializeToString()),)


def _refusal(signal: str) -> grpc.RpcMethodHandler:
    """The handler of `signal`'s ``Export`` (metrics, logs): UNIMPLEMENTED with what to do instead."""

    def refuse(_request: bytes, context: Any) -> None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, other_signal(signal))

    return grpc.unary_unary_rpc_method_handler(refuse)


def _busy(_request: bytes, context: Any) -> None:
    context.set_trailing_metadata(_retry_trailer(_BUSY_RETRY_S))
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many calls in progress (limits.max_connections)")


class _ConcurrencyLimit(grpc.ServerInterceptor):  # type: ignore[misc]
    """At most `limit` calls in progress; one beyond gets RESOURCE_EXHAUSTED *with* a ``RetryInfo``
    (grpcio's own ``maximum_concurrent_rpcs`` sends none, and OTLP exporters treat that as final)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> grpc.RpcMethodHandler:
        with self._lock:
            admitted = self.active < self.limit
            if admitted:
                self.active += 1
        if not admitted:
            return grpc.unary_unary_rpc_method_handler(_busy)
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            self._release()
            return handler
        inner = handler.unary_unary

        def run(request: bytes, context: Any) -> Any:
            try:
                return inner(request, context)
            finally:
                self._release()

        return grpc.unary_unary_rpc_method_handler(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _release(self) -> None:
        with self._lock:
            self.active -= 1


class GrpcReceiver:
    """A grpcio server, bound to `endpoint` on construction (`port` is the bound port); `start` once."""

    def __init__(
        self,
        ingestor: Ingestor,
        endpoint: str,
        *,
        max_request_bytes: int,
        workers: int = 4,
        tls: TLSConfig | None = None,
        tokens: TokenTable | None = None,
        max_concurrent_rpcs: int | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        """`tls`: serve TLS (mTLS with a client CA); `tokens`: require an ``ingest`` bearer token;
        `max_concurrent_rpcs`: calls beyond it get RESOURCE_EXHAUSTED; `idle_timeout`: seconds after
        which a connection with no call in progress gets a GOAWAY and is closed (None: never)."""
        self.ingestor = ingestor
        self.endpoint = endpoint
        self.tokens = tokens
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenbook-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_request_bytes),
                ("grpc.so_reuseport", 0),
                *([("grpc.max_connection_idle_ms", round(idle_timeout * 1000))] if idle_timeout else []),
            ],
            interceptors=[_ConcurrencyLimit(max_concurrent_rpcs)] if max_concurrent_rpcs else [],
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,  # raw bytes: we decode (and report malformed input) ourselves
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(_SERVICE.full_name, {"Export": handler}),
                *(
                    grpc.method_handlers_generic_handler(service, {"Export": _refusal(signal)})
                    for signal, (_, service) in OTHER_SIGNALS.items()
                ),
            )
        )
        if tls is not None:
            self.port = self._server.add_secure_port(endpoint, grpc_credentials(tls))
        else:
            self.port = self._server.add_insecure_port(endpoint)
        if self.port == 0:
            raise OSError(f"cannot bind OTLP/gRPC to {endpoint}")

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        self._server.start()

    def stop(self, grace: float) -> None:
        """Refuse new calls and wait up to `grace` seconds for those in progress."""
        self._server.stop(grace).wait()

    def _export(self, body: bytes, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        tenant = None
        if self.tokens is not None:
            tenant = grpc_credential(self.tokens, context, "ingest").tenant_override
        try:
            return self.ingestor.export_protobuf(body, tenant).response()
        except MalformedRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Backpressure as exc:
            context.set_trailing_metadata(_retry_trailer(exc.retry_after))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except StorageUnavailable as exc:
            context.set_trailing_metadata(_retry_trailer(exc.retry_after))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        raise AssertionError("unreachable: context.abort raises")
