"""The admin API, on its own port: health, readiness, metrics and a read-only query endpoint.

* ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves.
* ``GET /readyz``: 200 when storage accepts writes, else 503 with the reason (requests are still
  accepted and spooled to the write-ahead log while storage is down).
* ``GET /metrics``: Prometheus text (`IngestMetrics.prometheus`, plus `BudgetRuntime.prometheus`).
* ``GET /v1/budgets?tenant=T[&context=C]``: quota/budget states from memory (`BudgetRuntime.http_get`).
* ``POST /v1/query``: JSON ``{"sql": "SELECT ...", "parameters": {...}, "max_rows": 1000}`` ->
  ``{"columns": [...], "types": [...], "rows": [[...], ...]}`` (`query_api.encode_result`), through
  `Store.query_readonly` (one query accepted by `collector.storage.guard` on ClickHouse's own parse tree, run
  with ``readonly=1`` and the ``admin.query_*`` limits, at most ``admin.query_max_rows`` rows).
  400 ``{"error": "..."}`` for a refused or failing query. This is how ``tokenbook sql`` and
  ``tokenbook report`` read the embedded store while the collector owns it.
* ``POST /v1/reprice``: JSON ``{"since": ISO, "until": ISO, "model": ""}`` -> ``{"examined", "changed"}``:
  the collector reloads its price overrides and re-prices the stored calls of that range
  (`collector.reprice`); ``tokenbook reprice`` uses it while the collector owns the store.

With auth on (`tokenbook.collector.auth`), ``/metrics`` needs the ``admin`` scope and ``/v1/query`` and
``/v1/budgets`` the ``query`` scope, ``/v1/reprice`` an ``admin`` token of no single tenant (401 / 403
otherwise); a tenant-scoped token reads only its tenant.
``/healthz`` and ``/readyz`` stay open for probes. A POST body above 1 MiB gets 413 (the connection is
closed, the body unread).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs

from tokenbook.collector.auth import AuthError, TokenTable
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.limits import DEFAULT_LIMITS, BoundedThreadsMixin, LimitsConfig, RequestDeadlineMixin
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.query.api import QUERY_PATH, encode_result
from tokenbook.collector.receive.server import ServerThread, address_of
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.reprice import REPRICE_PATH, RepriceResult
from tokenbook.collector.storage.store import Store, StoreError
from tokenbook.genai.pricing.overrides import PriceConfigError

__all__ = ["AdminServer"]

_log = logging.getLogger(__name__)
_MAX_QUERY_BODY = 1 << 20
#: `reprice(since, until, model)`: reload the price overrides, then re-price the stored calls.
Repricer = Callable[[datetime, datetime, str], RepriceResult]
_SCOPE_OF_GET: Final = {"/metrics": "admin", "/v1/budgets": "query"}  # /healthz and /readyz stay open


class _BodyTooLarge(ValueError):
    pass


class _Handler(RequestDeadlineMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("admin %s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode())

    def _authorize(self, scope: str) -> tuple[bool, str | None]:
        """(allowed, the tenant the caller is confined to); answers 401 / 403 itself when not allowed."""
        tokens = self.server.tokens
        if tokens is None:
            return True, None
        try:
            credential = tokens.authenticate(self.headers.get("Authorization"), scope)
        except AuthError as exc:
            self.close_connection = True  # a request body is not read
            self._json(exc.status, {"error": str(exc)})
            return False, None
        return True, credential.tenant_override

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        scope = _SCOPE_OF_GET.get(path)
        if scope is not None:
            allowed, tenant = self._authorize(scope)
            if not allowed:
                return
            query = parse_qs(self.path.partition("?")[2])
            if tenant is not None and path == "/v1/budgets" and query.get("tenant") != [tenant]:
                self._json(HTTPStatus.FORBIDDEN, {"error": f"this token reads tenant {tenant!r} only"})
                return
        if path == "/healthz":
            self._json(HTTPStatus.OK, {"status": "ok"})
        elif path == "/readyz":
            ready, reason = self.server.ready()
            self._json(
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready, "reason": reason}
            )
        elif path == "/metrics":
            text = self.server.metrics.prometheus()
            if self.server.budgets is not None:
                text += self.server.budgets.prometheus()
            self._send(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4")
        elif path == "/v1/budgets" and self.server.budgets is not None:
            self._json(*self.server.budgets.http_get(self.path.partition("?")[2]))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == REPRICE_PATH and self.server.reprice is not None:
            self._reprice(self.server.reprice)
            return
        if path != QUERY_PATH:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {self.path}"})
            return
        allowed, tenant = self._authorize("query")
        if not allowed:
            return
        try:
            doc = self._read_json()
            if not isinstance(doc, dict) or not isinstance(doc.get("sql"), str):
                raise ValueError('the body must be {"sql": "...", "parameters": {...}, "max_rows": N}')
            parameters = doc.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise ValueError("parameters must be an object")
            cfg = self.server.config
            max_rows = doc.get("max_rows") or cfg.query_max_rows
            if not isinstance(max_rows, int) or max_rows < 1:
                raise ValueError("max_rows must be a positive integer")
            result = self.server.store.query_readonly(
                doc["sql"],
                parameters,
                max_rows=min(max_rows, cfg.query_max_rows),
                tenant=tenant,
                limits=cfg.query_limits,
            )
        except _BodyTooLarge as exc:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(exc)})
            return
        except (ValueError, QueryRefused, StoreError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._send(HTTPStatus.OK, encode_result(*result))

    def _read_json(self) -> Any:
        """The request's JSON body (``null`` when empty); `_BodyTooLarge` above `_MAX_QUERY_BODY` and
        ValueError for a bad ``Content-Length`` (both close the connection, the body unread), or for
        bad JSON."""
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if not (raw_length.isascii() and raw_length.isdigit()):
            self.close_connection = True
            raise ValueError("Content-Length must be a number of bytes")
        length = int(raw_length)
        if length > _MAX_QUERY_BODY:
            self.close_connection = True
            raise _BodyTooLarge(f"request body above {_MAX_QUERY_BODY} bytes")
        return json.loads(self.rfile.read(length) or b"null")

    def _reprice(self, reprice: Repricer) -> None:
        """`POST /v1/reprice` {"since": ISO, "until": ISO, "model": ""} -> {"examined", "changed"}."""
        allowed, tenant = self._authorize("admin")
        if not allowed:
            return
        if tenant is not None:
            self._json(HTTPStatus.FORBIDDEN, {"error": "re-pricing acts on every tenant: use an admin token"})
            return
        try:
            doc = self._read_json()
            if not isinstance(doc, dict):
                raise ValueError('the body must be {"since": ISO, "until": ISO, "model": ""}')
            since, until = (datetime.fromisoformat(str(doc.get(k))) for k in ("since", "until"))
            if since.tzinfo is None or until.tzinfo is None or since >= until:
                raise ValueError("since and until must be ISO timestamps with a time zone, since < until")
            result = reprice(since, until, str(doc.get("model") or ""))
        except _BodyTooLarge as exc:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(exc)})
            return
        except (ValueError, StoreError, PriceConfigError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"examined": result.examined, "changed": result.changed})


class _Server(BoundedThreadsMixin, ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        config: AdminConfig,
        store: Store,
        metrics: IngestMetrics,
        ready: Callable[[], tuple[bool, str]],
        budgets: BudgetRuntime | None,
        tokens: TokenTable | None = None,
        limits: LimitsConfig = DEFAULT_LIMITS,
        reprice: Repricer | None = None,
    ) -> None:
        self.tokens = tokens
        self.reprice = reprice
        self.limits = limits
        self.config = config
        self.store = store
        self.metrics = metrics
        self.ready = ready
        self.budgets = budgets
        super().__init__(address, _Handler)


class AdminServer(ServerThread):
    """The admin HTTP server on ``admin.endpoint``, serving on its own thread."""

    def __init__(
        self,
        config: AdminConfig,
        store: Store,
        metrics: IngestMetrics,
        *,
        ready: Callable[[], tuple[bool, str]],
        budgets: BudgetRuntime | None = None,
        tokens: TokenTable | None = None,
        limits: LimitsConfig = DEFAULT_LIMITS,
        reprice: Repricer | None = None,
    ) -> None:
        """`tokens`: require bearer tokens (``query`` for queries and budgets, ``admin`` for metrics and
        re-pricing). `reprice(since, until, model)` serves ``POST /v1/reprice``."""
        server = _Server(
            address_of(config.endpoint), config, store, metrics, ready, budgets, tokens, limits, reprice
        )
        super().__init__(server, "tokenbook-admin")
