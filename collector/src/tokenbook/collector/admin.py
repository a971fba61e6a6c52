"""The admin API, on its own port: health, readiness, metrics and a read-only query endpoint.

The GET endpoints below are answered on the server's event loop from memory: they never wait for a
query, a worker or the store.

* ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves.
* ``GET /readyz``: 200 when storage accepts writes, else 503 with the reason (requests are still
  accepted and spooled to the write-ahead log while storage is down, and while the budget counters
  are being rebuilt at start).
* ``GET /metrics``: Prometheus text (`IngestMetrics.prometheus`, plus `BudgetRuntime.prometheus`).
* ``GET /v1/budgets?tenant=T[&context=C]``: quota/budget states from memory (`BudgetRuntime.query_states`);
  503 with ``Retry-After: 1`` while the counters are being rebuilt at start (as ``/v1/reservations``).
* ``POST /v1/query``: JSON ``{"sql": "SELECT ...", "parameters": {...}, "max_rows": 1000}`` ->
  ``{"columns": [...], "types": [...], "rows": [[...], ...]}`` (`query_api.encode_result`), through
  `Store.query_readonly` (one query accepted by `collector.storage.guard` on ClickHouse's own parse tree, run
  with ``readonly=1`` and the ``admin.query_*`` limits, at most ``admin.query_max_rows`` rows).
  400 ``{"error": "..."}`` for a refused or failing query. This is how ``tokenbook sql`` and
  ``tokenbook report`` read the embedded store while the collector owns it. At most
  ``admin.query_concurrency`` queries run at once (each on its own connection, at the lowest CPU
  priority); one more waits up to ``admin.query_queue_timeout`` for a slot, on the server's event loop
  rather than on a worker, then gets 429 with ``Retry-After: 1``. From the start of a shutdown, queries
  get 503 and the running ones are cancelled (`AdminServer.refuse_queries`).
* ``POST /v1/reprice``: JSON ``{"since": ISO, "until": ISO, "model": ""}`` -> ``{"examined", "changed"}``:
  the collector reloads its price overrides and price books and re-prices (and bills) the stored calls
  of that range
  (`collector.reprice`); ``tokenbook reprice`` uses it while the collector owns the store.
* ``POST /v1/reconcile``: JSON ``{"tenant": "", "version": N, "rows": [...]}`` -> ``{"imported": N}``:
  provider usage and cost rows (`storage.provider_usage`) imported into the store, then the drift
  alerts are checked; ``tokenbook reconcile`` uses it while the collector owns the store.
* ``POST /v1/reservations``: JSON ``{"attributes": {...}, "tokens": N, "cost": "0.05", "ttl": "2m"}``
  (`BudgetRuntime.reserve`) -> 201 with the ``reservation``, 409 when a hard rule would go over its
  limit, 429 (``Retry-After``) when the tenant's breaker is tripped or ``max_open`` reservations are
  open; each with the states. ``GET /v1/reservations/<id>`` reads one, ``DELETE`` releases it (404 when
  unknown).

With auth on (`tokenbook.collector.auth`), ``/metrics`` needs the ``admin`` scope and ``/v1/query``,
``/v1/budgets`` and ``/v1/reservations`` the ``query`` scope, ``/v1/reprice`` an ``admin`` token of no
single tenant (401 / 403 otherwise), ``/v1/reconcile`` the ``admin`` scope; a tenant-scoped token
reads only its tenant, and reserves and imports for it only.
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
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

from tokenbook.collector.auth import AuthError, TokenTable
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.budgets.runtime import NotRebuilt
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.limits import DEFAULT_LIMITS, LimitsConfig
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.query.api import BUDGETS_PATH, QUERY_PATH, encode_result
from tokenbook.collector.receive.server import BodyWork, HttpServer, Request, Response, Slots
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.provider_usage import RECONCILE_PATH, import_rows, row_from_json
from tokenbook.collector.storage.reprice import REPRICE_PATH, RepriceResult
from tokenbook.collector.storage.store import Store, StoreError
from tokenbook.collector.tls import server_context
from tokenbook.genai.pricing.overrides import PriceConfigError

__all__ = ["AdminServer"]

_log = logging.getLogger(__name__)
_MAX_QUERY_BODY = 1 << 20
_CANCEL_WAIT = 5.0  # seconds to catch, at shutdown, a query that was still being checked
#: `reprice(since, until, model)`: reload the price overrides and books, then re-price the stored calls.
Repricer = Callable[[datetime, datetime, str], RepriceResult]
_SCOPE_OF_GET: Final = {"/metrics": "admin", BUDGETS_PATH: "query"}  # /healthz and /readyz stay open
RESERVATIONS_PATH: Final = "/v1/reservations"
#: HTTP status of each `BudgetEvaluator.reserve` outcome.
_RESERVE_STATUS: Final = {
    "granted": HTTPStatus.CREATED,
    "denied": HTTPStatus.CONFLICT,
    "tripped": HTTPStatus.TOO_MANY_REQUESTS,
    "full": HTTPStatus.TOO_MANY_REQUESTS,
}


def _json(status: int, doc: Any, *, close: bool = False, retry_after: int | None = None) -> Response:
    """`doc` as the JSON answer, with ``Retry-After: <retry_after>`` when given."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Response(status, json.dumps(doc).encode(), headers=headers, close=close)


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
        on_reconcile: Callable[[], None] | None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.ready = ready
        self.budgets = budgets
        self.tokens = tokens
        self.reprice = reprice
        self.on_reconcile = on_reconcile
        self.closing = False  # a shutdown began: queries are refused
        slots = config.query_concurrency
        full = {"error": f"all {slots} query slots (admin.query_concurrency) are taken; retry later"}
        self.query_slots = Slots(
            config.query_concurrency,
            config.query_queue_timeout,
            _json(HTTPStatus.TOO_MANY_REQUESTS, full, retry_after=1),
        )

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
        path = request.path
        if self.budgets is not None and (
            path == RESERVATIONS_PATH or path.startswith(RESERVATIONS_PATH + "/")
        ):
            return self._reservations(request)
        if request.method == "GET":
            return self._get(request)
        if request.method != "POST":
            return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET or POST"}, close=True)
        if path == REPRICE_PATH and self.reprice is not None:
            tenant = self._authorize(request, "admin")
            if isinstance(tenant, Response):
                return tenant
            if tenant is not None:
                return _json(
                    HTTPStatus.FORBIDDEN, {"error": "re-pricing acts on every tenant: use an admin token"}
                )
            return self._body(request, self._reprice)
        if path == RECONCILE_PATH:
            scope = self._authorize(request, "admin")
            if isinstance(scope, Response):
                return scope
            return self._body(request, lambda doc: self._reconcile(doc, scope))
        if path != QUERY_PATH:
            return _json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {path}"})
        tenant = self._authorize(request, "query")
        if isinstance(tenant, Response):
            return tenant
        if self.closing:
            return _json(
                HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the collector is shutting down"}, close=True
            )
        return self._body(request, lambda doc: self._query(doc, tenant), self.query_slots)

    def _reservations(self, request: Request) -> Response | BodyWork:
        """``POST /v1/reservations``, ``GET`` and ``DELETE /v1/reservations/<id>``."""
        budgets = self.budgets
        assert budgets is not None
        tenant = self._authorize(request, "query")
        if isinstance(tenant, Response):
            return tenant
        reservation_id = request.path[len(RESERVATIONS_PATH) + 1 :]
        if not reservation_id:
            if request.method != "POST":
                return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST a reservation"}, close=True)
            return self._body(request, lambda doc: self._reserve(doc, tenant))
        if request.method not in ("GET", "DELETE"):
            return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET or DELETE"}, close=True)
        seen = budgets.reservation(reservation_id)
        if seen is None or (tenant is not None and seen["attributes"].get("tenant") != tenant):
            return _json(HTTPStatus.NOT_FOUND, {"error": f"no reservation {reservation_id!r}"})
        doc = budgets.release(reservation_id) if request.method == "DELETE" else seen
        return _json(HTTPStatus.OK, doc)

    def _reserve(self, doc: Any, tenant: str | None) -> Response:
        """`POST /v1/reservations` (`BudgetRuntime.reserve`): 201, 409 or 429 with the states."""
        assert self.budgets is not None
        attributes = doc.get("attributes") if isinstance(doc, dict) else None
        if tenant is not None and isinstance(attributes, dict) and attributes.get("tenant") != tenant:
            return _json(HTTPStatus.FORBIDDEN, {"error": f"this token reserves for tenant {tenant!r} only"})
        try:
            outcome, answer = self.budgets.reserve(doc)
        except ValueError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except NotRebuilt as exc:
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}, retry_after=1)
        status = _RESERVE_STATUS[outcome]
        wait = _retry_after(answer) if status == HTTPStatus.TOO_MANY_REQUESTS else None
        return _json(status, answer, retry_after=wait)

    def _body(
        self, request: Request, handle: Callable[[Any], Response], slots: Slots | None = None
    ) -> Response | BodyWork:
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
            except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
                return _json(HTTPStatus.BAD_REQUEST, {"error": f"invalid JSON: {exc}"})
            return handle(doc)

        busy = _json(
            HTTPStatus.SERVICE_UNAVAILABLE,
            {"error": "every worker is busy (limits.max_connections); retry later"},
            retry_after=1,
        )
        return BodyWork(run, _MAX_QUERY_BODY, too_large, busy, slots)

    def _get(self, request: Request) -> Response:
        path = request.path
        scope = _SCOPE_OF_GET.get(path)
        if scope is not None:
            tenant = self._authorize(request, scope)
            if isinstance(tenant, Response):
                return tenant
            query = parse_qs(request.query)
            if tenant is not None and path == BUDGETS_PATH and query.get("tenant") != [tenant]:
                return _json(HTTPStatus.FORBIDDEN, {"error": f"this token reads tenant {tenant!r} only"})
        if path == "/healthz":
            return _json(HTTPStatus.OK, {"status": "ok"})
        if path == "/readyz":
            ready, reason = self.ready()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return _json(status, {"ready": ready, "reason": reason})
        if path == "/metrics":
            text = self.metrics.prometheus() + self._query_metrics()
            if self.budgets is not None:
                text += self.budgets.prometheus()
            return Response(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4")
        if path == BUDGETS_PATH and self.budgets is not None:
            try:
                return _json(HTTPStatus.OK, self.budgets.query_states(request.query))
            except ValueError as exc:
                return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except NotRebuilt as exc:
                return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}, retry_after=1)
        return _json(HTTPStatus.NOT_FOUND, {"error": f"unknown path {path}"})

    def _query_metrics(self) -> str:
        slots = self.query_slots
        return (
            "# HELP tokenbook_admin_queries_running POST /v1/query queries holding a slot\n"
            "# TYPE tokenbook_admin_queries_running gauge\n"
            f"tokenbook_admin_queries_running {slots.in_use}\n"
            "# HELP tokenbook_admin_queries_refused_total Queries answered 429: no slot freed in time\n"
            "# TYPE tokenbook_admin_queries_refused_total counter\n"
            f"tokenbook_admin_queries_refused_total {slots.refused}\n"
        )

    def _query(self, doc: Any, tenant: str | None) -> Response:
        try:
            if not isinstance(doc, dict) or not isinstance(doc.get("sql"), str):
                raise ValueError(f"the body must be {_QUERY_BODY}")
            _known_fields(doc, _QUERY_FIELDS, _QUERY_BODY)
            parameters = doc.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise ValueError("parameters must be an object")
            cfg = self.config
            max_rows = doc.get("max_rows") or cfg.query_max_rows
            if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
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

    def _reconcile(self, doc: Any, tenant: str | None) -> Response:
        """`POST /v1/reconcile` {"tenant": "", "version": N, "rows": [...]} -> {"imported": N}."""
        try:
            if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
                raise ValueError('the body must be {"tenant": "", "version": N, "rows": [...]}')
            scope, version = doc.get("tenant") or "", doc.get("version")
            if not isinstance(scope, str):
                raise ValueError("tenant must be a string ('' for the whole organization)")
            if tenant is not None and scope != tenant:
                return _json(
                    HTTPStatus.FORBIDDEN, {"error": f"this token imports for tenant {tenant!r} only"}
                )
            if version is not None and (
                isinstance(version, bool) or not isinstance(version, int) or version < 1
            ):
                raise ValueError("version must be a positive integer")
            rows = []
            for i, raw in enumerate(doc["rows"]):
                try:
                    rows.append(row_from_json(raw))
                except ValueError as exc:
                    raise ValueError(f"rows[{i}]: {exc}") from None
            import_rows(self.store, rows, tenant=scope, version=version)
        except (ValueError, StoreError) as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        if self.on_reconcile is not None:
            self.on_reconcile()
        return _json(HTTPStatus.OK, {"imported": len(rows)})

    def _reprice(self, doc: Any) -> Response:
        """`POST /v1/reprice` {"since": ISO, "until": ISO, "model": ""} -> {"examined", "changed"}."""
        assert self.reprice is not None
        try:
            if not isinstance(doc, dict):
                raise ValueError(f"the body must be {_REPRICE_BODY}")
            _known_fields(doc, _REPRICE_FIELDS, _REPRICE_BODY)
            since, until = _moment(doc, "since"), _moment(doc, "until")
            if since >= until:
                raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
            result = self.reprice(since, until, str(doc.get("model") or ""))
        except (ValueError, StoreError, PriceConfigError) as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        return _json(HTTPStatus.OK, {"examined": result.examined, "changed": result.changed})


_QUERY_FIELDS: Final = frozenset({"sql", "parameters", "max_rows"})
_QUERY_BODY: Final = '{"sql": "...", "parameters": {...}, "max_rows": N}'
_REPRICE_FIELDS: Final = frozenset({"since", "until", "model"})
_REPRICE_BODY: Final = '{"since": ISO, "until": ISO, "model": ""}'


def _known_fields(doc: dict[str, Any], fields: frozenset[str], body: str) -> None:
    """Raise ValueError naming the fields of `doc` outside `fields` (a misspelt ``max_row``, or a
    ``settings`` the API does not have, would otherwise go unheeded); `body` is the body's form."""
    if unknown := sorted(set(doc) - fields):
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}: the body is {body}")


def _moment(doc: dict[str, Any], key: str) -> datetime:
    """`doc[key]`: an ISO 8601 timestamp with a time zone; raises ValueError saying which and why."""
    raw = doc.get(key)
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(f"{key} must be an ISO 8601 timestamp with a time zone, got {raw!r}")
    return when


def _retry_after(answer: dict[str, Any]) -> int:
    """Seconds until a refused reservation may succeed: the breaker's cool-down, else 1."""
    breaker = answer.get("breaker") or {}
    if breaker.get("state") == "tripped" and breaker.get("until"):
        left = datetime.fromisoformat(breaker["until"]) - datetime.now(tz=UTC)
        return max(int(left.total_seconds()) + 1, 1)
    return 1


class AdminServer(HttpServer):
    """The admin HTTP server on ``admin.endpoint`` (HTTPS with ``admin.tls``), served on its own thread."""

    handler: _Admin

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
        on_reconcile: Callable[[], None] | None = None,
    ) -> None:
        """`tokens`: require bearer tokens (``query`` for queries and budgets, ``admin`` for metrics and
        re-pricing). `reprice(since, until, model)` serves ``POST /v1/reprice``; `on_reconcile()` is
        called after each import of ``POST /v1/reconcile``."""
        config = replace(config, query_concurrency=min(config.query_concurrency, max(limits.workers - 1, 1)))
        super().__init__(
            config.endpoint,
            _Admin(config, store, metrics, ready, budgets, tokens, reprice, on_reconcile),
            name="tokenbook-admin",
            max_request_bytes=_MAX_QUERY_BODY,
            limits=limits,
            ssl_context=server_context(config.tls) if config.tls is not None else None,
        )

    def refuse_queries(self) -> int:
        """Refuse new queries (503) and cancel the running ones (the shutdown's first step); returns
        how many were cancelled."""
        admin = self.handler
        admin.closing = True
        try:
            return int(admin.store.cancel_user_queries(refuse_new=True, wait=_CANCEL_WAIT))
        except StoreError as exc:
            _log.warning("cancelling the running queries failed: %s", exc)
            return 0
