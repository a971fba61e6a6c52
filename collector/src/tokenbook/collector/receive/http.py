"""OTLP/HTTP receiver: ``POST /v1/traces`` with binary protobuf or OTLP/JSON, optionally gzip.

Responses follow the OTLP/HTTP spec, in the request's content type:

* 200 with an `ExportTraceServiceResponse` (``partial_success`` when spans were refused);
* 400 for a malformed body or an unsupported ``Content-Encoding``, 404 for another path, 405 for
  another method, 411 without ``Content-Length``, 413 when the body (compressed or decompressed) is
  above ``max_request_bytes``, 415 for a content type other than ``application/x-protobuf`` or
  ``application/json``;
* 429 (backpressure, a tenant over its rate) and 503 (storage down, spool full) with ``Retry-After``;
* with auth on, 401 (missing or bad bearer token, with ``WWW-Authenticate``) and 403 (no ``ingest``
  scope), before the body is read (`tokenbook.collector.auth`).

TLS/mTLS, connection slots and read timeouts: `tokenbook.collector.tls`, `tokenbook.collector.limits`.
Error bodies are a ``google.rpc.Status`` in the request's content type.
"""

from __future__ import annotations

import json
import logging
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from google.rpc.status_pb2 import Status

from tokenbook.collector.auth import AuthError, TokenTable
from tokenbook.collector.decode.spans import MalformedRequest
from tokenbook.collector.ingest.ingestor import Backpressure, ExportResult, Ingestor, StorageUnavailable
from tokenbook.collector.limits import DEFAULT_LIMITS, BoundedThreadsMixin, LimitsConfig, RequestDeadlineMixin
from tokenbook.collector.receive.server import ServerThread, address_of
from tokenbook.collector.tls import TLSConfig, TLSServerMixin, server_context

__all__ = ["HttpReceiver"]

_log = logging.getLogger(__name__)
_PATH: Final = "/v1/traces"
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


class _BodyTooLarge(ValueError):
    pass


def _gunzip(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MalformedRequest(f"invalid gzip body: {exc}") from exc
    if len(out) > limit:
        raise _BodyTooLarge(f"decompressed body above {limit} bytes")
    if not d.eof:
        raise MalformedRequest("truncated gzip body")
    return out


def _success_body(result: ExportResult, content_type: str) -> bytes:
    if content_type == _JSON:
        doc: dict[str, Any] = {}
        if result.rejected:
            doc["partialSuccess"] = {"rejectedSpans": str(result.rejected), "errorMessage": result.message}
        return json.dumps(doc).encode()
    body: bytes = result.response().SerializeToString()
    return body


class _Handler(RequestDeadlineMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("otlp-http %s " + format, self.address_string(), *args)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(
        self, status: int, message: str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        code = _GRPC_CODE.get(status, 2)
        if content_type == _JSON:
            body = json.dumps({"code": code, "message": message}).encode()
        else:
            content_type = _PROTOBUF
            body = Status(code=code, message=message).SerializeToString()
        self._send(status, body, content_type, headers)

    def do_GET(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", _JSON, {"Allow": "POST"})

    do_PUT = do_DELETE = do_GET

    def do_POST(self) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if self.path.split("?", 1)[0] != _PATH:
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"unknown path; OTLP traces go to {_PATH}", _JSON)
            return
        reply_type = _JSON if content_type == _JSON else _PROTOBUF
        tenant = None
        if self.server.tokens is not None:
            try:
                credential = self.server.tokens.authenticate(self.headers.get("Authorization"), "ingest")
            except AuthError as exc:
                self.close_connection = True  # the body is not read
                self._error(exc.status, str(exc), reply_type, {"WWW-Authenticate": 'Bearer realm="otlp"'})
                return
            tenant = credential.tenant_override
        limit = self.server.max_request_bytes
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", reply_type)
            return
        length = int(length_header)
        if length > limit:
            self.close_connection = True  # the body is not read
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above {limit} bytes", reply_type)
            return
        body = self.rfile.read(length)
        if content_type not in (_PROTOBUF, _JSON):
            self._error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}",
                reply_type,
            )
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        ingestor = self.server.ingestor
        try:
            if encoding == "gzip":
                body = _gunzip(body, limit)
            elif encoding != "identity":
                raise MalformedRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
            export = ingestor.export_json if content_type == _JSON else ingestor.export_protobuf
            result = export(body, tenant)
        except MalformedRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), reply_type)
        except _BodyTooLarge as exc:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), reply_type)
        except Backpressure as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            self._error(HTTPStatus.TOO_MANY_REQUESTS, str(exc), reply_type, retry)
        except StorageUnavailable as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), reply_type, retry)
        except Exception:  # noqa: BLE001 - a bug answers 500 (clients retry) instead of dropping the connection
            _log.exception("OTLP/HTTP export failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", reply_type)
        else:
            self._send(HTTPStatus.OK, _success_body(result, reply_type), reply_type)


class _Server(TLSServerMixin, BoundedThreadsMixin, ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        ingestor: Ingestor,
        max_request_bytes: int,
        tokens: TokenTable | None = None,
        tls: TLSConfig | None = None,
        limits: LimitsConfig = DEFAULT_LIMITS,
    ) -> None:
        self.ingestor = ingestor
        self.max_request_bytes = max_request_bytes
        self.tokens = tokens
        self.ssl_context = server_context(tls) if tls is not None else None
        self.limits = limits
        super().__init__(address, _Handler)


class HttpReceiver(ServerThread):
    """A threading HTTP server bound to `endpoint` (HOST:PORT), serving on its own thread."""

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
        `limits`: connections served at once and the read timeout (`BoundedThreadsMixin`)."""
        server = _Server(address_of(endpoint), ingestor, max_request_bytes, tokens, tls, limits)
        super().__init__(server, "tokenbook-otlp-http")
