"""The admin API, on its own port: health, readiness, metrics and a read-only query endpoint.

* ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves.
* ``GET /readyz``: 200 when storage accepts writes, else 503 with the reason (requests are still
  accepted and spooled to the write-ahead log while storage is down).
* ``GET /metrics``: Prometheus text (`IngestMetrics.prometheus`, plus `BudgetRuntime.prometheus`).
* ``GET /v1/budgets?tenant=T[&context=C]``: quota/budget states from memory (`BudgetRuntime.query_states`).
* ``POST /v1/query``: JSON ``{"sql": "SELECT ...", "parameters": {...}, "max_rows": 1000}`` ->
  ``{"columns": [...], "types": [...], "rows": [[...], ...]}`` (`query_api.encode_result`), through
  `Store.query_readonly` (one query accepted by `collector.storage.guard` on ClickHouse's own parse tree, run
  with ``readonly=1`` and the ``admin.query_*`` limits, at most ``admin.query_max_rows`` rows).
  400 ``{"error": "..."}`` for a refused or failing query. This is how ``tokenbook sql`` and
  ``tokenbook report`` read the embedded store while the collector owns it.
* ``POST /v1/reprice``: JSON ``{"since": ISO, "until": ISO, "model": ""}`` -> ``{"examined", "changed"}``:
  the collector reloads its price overrides and price books and re-prices (and bills) the stored calls
  of that range
  (`collector.reprice`); ``tokenbook reprice`` uses it while the collector owns the store.

With auth on (`tokenbook.collector.auth`), ``/metrics`` needs the ``admin`` scope and ``/v1/query`` and
``/v1/budgets`` the ``query`` scope, ``/v1/reprice`` an ``admin`` token of no single tenant (401 / 403
otherwise); a tenant-scoped token reads only its tenant.
``/healthz`` and ``/readyz`` stay open for probes. A POST body above 1 MiB gets 413 (the connection is
closed, the body unread). With ``admin.tls`` (the receivers' ``tls`` shape, `tokenbook.collector.tls`)
the API is served over HTTPS, with client certificates required when ``client_ca_file`` is set.
Connections, timeouts and workers: `tokenbook.collector.receive.server`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

from tokenbook.collector.auth import AuthError, TokenTable
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.limits import DEFAULT_LIMITS, LimitsConfig
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.query.api import QUERY_PATH, encode_result
from tokenbook.collector.receive.server import BodyWork, HttpServer, Request, Response
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.reprice import REPRICE_PATH, RepriceResult
from tokenbook.collector.storage.store import Store, StoreError
from tokenbook.collector.tls import server_context
from tokenbook.genai.pricing.overrides import PriceConfigError

__all__ = ["AdminServer"]

_log = logging.getLogger(__name__)
_MAX_QUERY_BODY = 1 << 20
#: `reprice(since, until, model)`: reload the price overrides and books, then re-price the stored calls.
Repricer = Callable[[datetime, datetime, str], RepriceResult]
_SCOPE_OF_GET: Final = {"/metrics": "admin", "/v1/budgets": "query"}  # /healthz and /readyz stay open


def _json(status: int, doc: Any, *, close: bool = False) -> Response:
    return Response(status, json.dumps(doc).encode(), close=close)


class _Admin:
    """The admin endpoint (`tokenbook.collector.receive.server.Endpoint`)."""

    def __init__(
        self,
        config: AdminConfig,
        store: Store,
        metrics: IngestMetrics,
        ready: Callable[[], tuple[bool, str]],
        budgets: BudgetRuntime | None,
        tokens: TokenTable | None,
        reprice: Repricer | None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.ready = ready
        self.budgets = budgets
        self.tokens = tokens
        self.reprice = reprice

    def _authorize(self, request: Request, scope: str) -> Response | str | None:
        """The tenant the caller is confined to (None: every tenant), or the 401 / 403 answer."""
        if self.tokens is None:
            return None
        try:
            credential = self.tokens.authenticate(request.headers.get("authorization"), scope)
        except AuthError as exc:  # a request body is not read
            return _json(exc.status, {"error": str(exc)}, close=True)
        return credential.tenant_override

    def route(self, request: Request) -> Response | BodyWork:
        if request.method == "GET":
            return self._get(request)
        if request.method != "POST":
            return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET or POST"}, close=True)
        path = request.path
        if path == REPRICE_PATH and self.reprice is not None:
            tenant = self._authorize(request, "admin")
            if isinstance(tenant, Response):
                return tenant
            if tenant is not None:
                return _json(
                    HTTPStatus.FORBIDDEN, {"error": "re-pricing acts on every tenant: use an admin token"}
                )
            return self._body(request, self._reprice)
        if path != QUERY_PATH:
            return _json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {path}"})
        tenant = self._authorize(request, "query")
        if isinstance(tenant, Response):
            return tenant
        return self._body(request, lambda doc: self._query(doc, tenant))

    def _body(self, request: Request, handle: Callable[[Any], Response]) -> Response | BodyWork:
        """Read a JSON body of at most `_MAX_QUERY_BODY` bytes, then `handle(doc)` on a worker."""
        raw_length = request.header("content-length", "0").strip()
        if not (raw_length.isascii() and raw_length.isdigit()):
            return _json(
                HTTPStatus.BAD_REQUEST, {"error": "Content-Length must be a number of bytes"}, close=True
            )
        too_large = _json(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"request body above {_MAX_QUERY_BODY} bytes"}
        )
        if int(raw_length) > _MAX_QUERY_BODY:
            return replace(too_large, close=True)  # the body is not read

        def run(body: bytes) -> Response:
            try:
                doc = json.loads(body or b"null")
            except ValueError as exc:
                return _json(HTTPStatus.BAD_REQUEST, {"error": f"invalid JSON: {exc}"})
            return handle(doc)

        busy = Response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            json.dumps({"error": "every worker is busy (limits.max_connections); retry later"}).encode(),
            headers={"Retry-After": "1"},
        )
        return BodyWork(run, _MAX_QUERY_BODY, too_large, busy)

    def _get(self, request: Request) -> Response:
        path = request.path
        scope = _SCOPE_OF_GET.get(path)
        if scope is not None:
            tenant = self._authorize(request, scope)
            if isinstance(tenant, Response):
                return tenant
            query = parse_qs(request.query)
            if tenant is not None and path == "/v1/budgets" and query.get("tenant") != [tenant]:
                return _json(HTTPStatus.FORBIDDEN, {"error": f"this token reads tenant {tenant!r} only"})
        if path == "/healthz":
            return _json(HTTPStatus.OK, {"status": "ok"})
        if path == "/readyz":
            ready, reason = self.ready()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return _json(status, {"ready": ready, "reason": reason})
        if path == "/metrics":
            text = self.metrics.prometheus()
            if self.budgets is not None:
                text += self.budgets.prometheus()
            return Response(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4")
        if path == "/v1/budgets" and self.budgets is not None:
            try:
                return _json(HTTPStatus.OK, self.budgets.query_states(request.query))
            except ValueError as exc:
                return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return _json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {path}"})

    def _query(self, doc: Any, tenant: str | None) -> Response:
        try:
            if not isinstance(doc, dict) or not isinstance(doc.get("sql"), str):
                raise ValueError('the body must be {"sql": "...", "parameters": {...}, "max_rows": N}')
            parameters = doc.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise ValueError("parameters must be an object")
            cfg = self.config
            max_rows = doc.get("max_rows") or cfg.query_max_rows
            if not isinstance(max_rows, int) or max_rows < 1:
                raise ValueError("max_rows must be a positive integer")
            result = self.store.query_readonly(
                doc["sql"],
                parameters,
                max_rows=min(max_rows, cfg.query_max_rows),
                tenant=tenant,
                limits=cfg.query_limits,
            )
        except (ValueError, QueryRefused, StoreError) as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return Response(HTTPStatus.OK, encode_result(*result))

    def _reprice(self, doc: Any) -> Response:
        """`POST /v1/reprice` {"since": ISO, "until": ISO, "model": ""} -> {"examined", "changed"}."""
        assert self.reprice is not None
        try:
            if not isinstance(doc, dict):
                raise ValueError('the body must be {"since": ISO, "until": ISO, "model": ""}')
            since, until = (datetime.fromisoformat(str(doc.get(k))) for k in ("since", "until"))
            if since.tzinfo is None or until.tzinfo is None or since >= until:
                raise ValueError("since and until must be ISO timestamps with a time zone, since < until")
            result = self.reprice(since, until, str(doc.get("model") or ""))
        except (ValueError, StoreError, PriceConfigError) as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return _json(HTTPStatus.OK, {"examined": result.examined, "changed": result.changed})


class AdminServer(HttpServer):
    """The admin HTTP server on ``admin.endpoint`` (HTTPS with ``admin.tls``), served on its own thread."""

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
        super().__init__(
            config.endpoint,
            _Admin(config, store, metrics, ready, budgets, tokens, reprice),
            name="tokenbook-admin",
            max_request_bytes=_MAX_QUERY_BODY,
            limits=limits,
            ssl_context=server_context(config.tls) if config.tls is not None else None,
        )
