"""OTLP/HTTP receiver: ``POST /v1/traces`` with binary protobuf or OTLP/JSON, optionally compressed
(every ``Content-Encoding`` of the OpenTelemetry SDKs and Collector: `tokenbook.collector.receive.encodings`).

Responses follow the OTLP/HTTP spec, in the request's content type:

* 200 with an `ExportTraceServiceResponse` (``partial_success`` when spans were refused);
* 400 for a malformed body or an unsupported ``Content-Encoding``, 404 for another path (for
  ``/v1/metrics`` and ``/v1/logs`` with what to do instead: `tokenbook.collector.receive.signals`), 405 for
  another method, 411 without ``Content-Length`` (or chunked encoding), 413 when the body (compressed
  or decompressed) is above ``max_request_bytes`` (unread when ``Content-Length`` says so), 415 for a
  content type other than ``application/x-protobuf`` or ``application/json``;
* 429 (backpressure, a tenant over its rate, every worker busy) and 503 (storage down, spool full)
  with ``Retry-After``;
* with auth on, 401 (missing or bad bearer token, with ``WWW-Authenticate``) and 403 (no ``ingest``
  scope), before the body is read (`tokenbook.collector.auth`).

Connections, timeouts and the worker pool: `tokenbook.collector.receive.server`; TLS/mTLS:
`tokenbook.collector.tls`.
Error bodies are a ``google.rpc.Status`` in the request's content type.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, Final

from google.rpc.status_pb2 import Status

from tokenbook.collector.auth import AuthError, TokenTable
from tokenbook.collector.decode.spans import MalformedRequest
from tokenbook.collector.ingest.ingestor import Backpressure, ExportResult, Ingestor, StorageUnavailable
from tokenbook.collector.limits import DEFAULT_LIMITS, LimitsConfig
from tokenbook.collector.receive.encodings import (
    BodyTooLarge,
    UnsupportedEncoding,
    check_encoding,
    decode_body,
)
from tokenbook.collector.receive.server import BodyWork, HttpServer, Request, Response
from tokenbook.collector.receive.signals import OTHER_SIGNALS, other_signal
from tokenbook.collector.tls import TLSConfig, server_context

__all__ = ["HttpReceiver"]

_log = logging.getLogger(__name__)
_PATH: Final = "/v1/traces"
_OTHER_PATHS: Final = {path: signal for signal, (path, _) in OTHER_SIGNALS.items()}
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
# google.rpc.Code values for error bodies
_GRPC_CODE: Final = {
    401: 16,
    403: 7,
    500: 13,
    400: 3,
    413: 8,
    415: 3,
    429: 8,
    503: 14,
    404: 5,
    405: 12,
    411: 3,
}


def _success_body(result: ExportResult, content_type: str) -> bytes:
    if content_type == _JSON:
        doc: dict[str, Any] = {}
        if result.rejected:
            doc["partialSuccess"] = {"rejectedSpans": str(result.rejected), "errorMessage": result.message}
        return json.dumps(doc).encode()
    body: bytes = result.response().SerializeToString()
    return body


def _error(
    status: int, message: str, content_type: str, headers: dict[str, str] | None = None, close: bool = False
) -> Response:
    """An error answer: a ``google.rpc.Status`` in the request's content type."""
    code = _GRPC_CODE.get(status, 2)
    if content_type == _JSON:
        body = json.dumps({"code": code, "message": message}).encode()
    else:
        content_type = _PROTOBUF
        body = Status(code=code, message=message).SerializeToString()
    return Response(status, body, content_type, headers or {}, close)


class _Otlp:
    """The OTLP/HTTP endpoint (`tokenbook.collector.receive.server.Endpoint`)."""

    def __init__(self, ingestor: Ingestor, max_request_bytes: int, tokens: TokenTable | None) -> None:
        self.ingestor = ingestor
        self.max_request_bytes = max_request_bytes
        self.tokens = tokens

    def route(self, request: Request) -> Response | BodyWork:
        if request.method != "POST":
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", _JSON, {"Allow": "POST"}, close=True)
        content_type = request.header("content-type").split(";", 1)[0].strip().lower()
        reply_type = _JSON if content_type == _JSON else _PROTOBUF
        if request.path != _PATH:
            signal = _OTHER_PATHS.get(request.path)
            if signal is not None:
                return _error(HTTPStatus.NOT_FOUND, other_signal(signal), reply_type, close=True)
            return _error(HTTPStatus.NOT_FOUND, f"unknown path; OTLP traces go to {_PATH}", _JSON, close=True)
        tenant = None
        if self.tokens is not None:
            try:
                credential = self.tokens.authenticate(request.headers.get("authorization"), "ingest")
            except AuthError as exc:  # the body is not read
                challenge = {"WWW-Authenticate": 'Bearer realm="otlp"'}
                return _error(exc.status, str(exc), reply_type, challenge, close=True)
            tenant = credential.tenant_override
        limit = self.max_request_bytes
        length = request.header("content-length")
        chunked = "chunked" in request.header("transfer-encoding").lower()
        if not chunked and not (length.isascii() and length.isdigit()):
            return _error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", reply_type, close=True)
        if length.isdigit() and int(length) > limit:  # the body is not read
            return _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above {limit} bytes", reply_type, close=True
            )
        if content_type not in (_PROTOBUF, _JSON):
            message = f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}"
            return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, message, reply_type, close=True)
        try:
            encoding = check_encoding(request.header("content-encoding"))
        except UnsupportedEncoding as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc), reply_type, close=True)

        def run(body: bytes) -> Response:
            return self._export(body, content_type, encoding, tenant)

        busy = _error(
            HTTPStatus.TOO_MANY_REQUESTS,
            "every worker is busy (limits.max_connections requests in progress); retry later",
            reply_type,
            {"Retry-After": "1"},
        )
        too_large = _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above {limit} bytes", reply_type)
        return BodyWork(run, limit, too_large, busy)

    def _export(self, body: bytes, content_type: str, encoding: str, tenant: str | None) -> Response:
        ingestor = self.ingestor
        try:
            body = decode_body(body, encoding, self.max_request_bytes)
            export = ingestor.export_json if content_type == _JSON else ingestor.export_protobuf
            result = export(body, tenant)
        except MalformedRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc), content_type)
        except BodyTooLarge as exc:
            return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), content_type)
        except Backpressure as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            return _error(HTTPStatus.TOO_MANY_REQUESTS, str(exc), content_type, retry)
        except StorageUnavailable as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), content_type, retry)
        except Exception:  # noqa: BLE001 - a bug answers 500 (clients retry) instead of dropping the connection
            _log.exception("OTLP/HTTP export failed")
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", content_type)
        return Response(HTTPStatus.OK, _success_body(result, content_type), content_type)


class HttpReceiver(HttpServer):
    """The OTLP/HTTP receiver on `endpoint` (HOST:PORT), bound on construction, served on its own thread."""

    def __init__(
        self,
        ingestor: Ingestor,
        endpoint: str,
        *,
        max_request_bytes: int,
        tls: TLSConfig | None = None,
        tokens: TokenTable | None = None,
        limits: LimitsConfig = DEFAULT_LIMITS,
    ) -> None:
        """`tls`: serve HTTPS (mTLS with a client CA); `tokens`: require an ``ingest`` bearer token;
        `limits`: connections, timeouts and workers (`tokenbook.collector.receive.server`)."""
        super().__init__(
            endpoint,
            _Otlp(ingestor, max_request_bytes, tokens),
            name="tokenbook-otlp-http",
            max_request_bytes=max_request_bytes,
            limits=limits,
            ssl_context=server_context(tls) if tls is not None else None,
        )
