"""The admin query API's wire format, and its client.

Contract: `POST /v1/query` with `{"sql": "...", "parameters": {...}, "max_rows": N}` answers
200 `{"columns": [...], "types": [...], "rows": [[...], ...]}` or 400 `{"error": "..."}`.
Decimal values travel as strings (exact), date/datetime as ISO 8601 strings, bytes as hex.
`encode_result` is the server's encoder; `AdminQueryClient.query_readonly` decodes Decimal and
DateTime columns back to `Decimal` and aware `datetime`, so a reader sees the same values
whether it opened the store directly or went through a running collector. When the collector asks
to come back later (429 with ``Retry-After``: every query slot is taken; 503 with ``Retry-After``:
every worker is busy, or the budget counters are being rebuilt at its start), the client waits and
retries within its timeout (`QueryBusy` once the timeout would pass, or at once with
``retry_busy=False``). `AdminQueryClient.budget_states` reads ``GET /v1/budgets`` the same way.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tokenbook.collector.storage.provider_usage import RECONCILE_PATH, ProviderRow, new_version, row_to_json
from tokenbook.collector.storage.reprice import REPRICE_PATH, RepriceResult
from tokenbook.collector.storage.store import QueryResult, StoreError, StoreUnavailable

__all__ = [
    "BUDGETS_PATH",
    "QUERY_PATH",
    "TOKEN_ENV",
    "AdminQueryClient",
    "QueryBusy",
    "auth_headers",
    "decode_result",
    "encode_result",
    "json_value",
]

QUERY_PATH = "/v1/query"
BUDGETS_PATH = "/v1/budgets"
TOKEN_ENV = "TOKENBOOK_TOKEN"  # a bearer token with the query scope, when the collector has auth on

_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def json_value(v: Any) -> Any:
    """`v` as a JSON-ready value: Decimal -> exact string, date/datetime -> ISO 8601, bytes -> hex."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, Mapping):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    return str(v)


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer $TOKENBOOK_TOKEN`` when that variable is set (a collector with auth on)."""
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _parameter(v: Any) -> Any:
    """A bound parameter as JSON; datetimes as UTC `YYYY-MM-DD hh:mm:ss.ffffff`, which ClickHouse parses."""
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return json_value(v)


def encode_result(columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """The 200 response body for a query result (exact: Decimal and datetime become strings)."""
    doc = {"columns": list(columns), "types": list(types), "rows": [[json_value(v) for v in r] for r in rows]}
    return json.dumps(doc, allow_nan=False).encode("utf-8")


def _base_type(type_name: str) -> str:
    while (m := _WRAPPERS.match(type_name)) is not None:
        type_name = m.group(1)
    return type_name


def _decoder(type_name: str) -> Any:
    base = _base_type(type_name)
    if base.startswith("Decimal"):
        return Decimal
    if base.startswith("DateTime"):
        return datetime.fromisoformat
    if base == "Date" or base == "Date32":
        return date.fromisoformat
    return None


def decode_result(body: bytes) -> QueryResult:
    """Parse a 200 response body; Decimal, DateTime and Date columns get their Python types back."""
    doc = json.loads(body)
    columns, types = list(doc["columns"]), list(doc["types"])
    decoders = [_decoder(t) for t in types]
    rows = [
        tuple(v if (d is None or v is None) else d(v) for d, v in zip(decoders, row, strict=True))
        for row in doc["rows"]
    ]
    return columns, types, rows


class QueryBusy(StoreUnavailable):
    """The collector asked to come back later (429, or 503 with ``Retry-After``); `retry_after`: the
    seconds it asked to wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdminQueryClient:
    """Read-only queries through a running collector's admin API (`host:port`)."""

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 30,
        retry_busy: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """`timeout_s`: the longest wait for one answer, retries of a busy collector included;
        `retry_busy`: retry when the collector asks to come back later (else raise `QueryBusy` at
        once); `on_wait`: called with the collector's reason when a request first waits to retry."""
        self.address = address
        self.description = f"collector admin API at {address}"
        self._timeout = timeout_s
        self._retry_busy = retry_busy
        self._on_wait = on_wait

    def query_readonly(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, max_rows: int = 10_000
    ) -> QueryResult:
        """Run one SELECT on the collector's store; `StoreError` carries the server's refusal."""
        parameters = {k: _parameter(v) for k, v in (parameters or {}).items()}
        return decode_result(
            self._request("POST", QUERY_PATH, {"sql": sql, "parameters": parameters, "max_rows": max_rows})
        )

    def reprice(self, *, since: datetime, until: datetime, model: str = "") -> RepriceResult:
        """Have the collector reload its price overrides and re-price [since, until) (admin scope)."""
        window = {"since": since.isoformat(), "until": until.isoformat(), "model": model}
        body = self._request("POST", REPRICE_PATH, window)
        doc = json.loads(body)
        return RepriceResult(examined=int(doc["examined"]), changed=int(doc["changed"]))

    def import_provider_rows(
        self, rows: Sequence[ProviderRow], *, tenant: str = "", chunk: int = 2000
    ) -> int:
        """Have the collector import provider rows (``POST /v1/reconcile``, admin scope) as one import,
        sent in parts of `chunk` rows; returns the rows imported."""
        version = new_version()
        done = 0
        for i in range(0, len(rows), chunk):
            part = [row_to_json(r) for r in rows[i : i + chunk]]
            body = {"tenant": tenant, "version": version, "rows": part}
            doc = json.loads(self._request("POST", RECONCILE_PATH, body))
            done += int(doc["imported"])
        return done

    def budget_states(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /v1/budgets?<query>`` (e.g. ``{"tenant": "acme"}``): the collector's live quota,
        budget and breaker states, as its JSON document."""
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        try:
            doc: dict[str, Any] = json.loads(self._request("GET", BUDGETS_PATH + suffix))
        except ValueError:
            raise self._not_admin() from None
        return doc

    def _request(self, method: str, path: str, doc: Mapping[str, Any] | None = None) -> bytes:
        """One request's answer body, retried while the collector asks to come back later."""
        deadline = time.monotonic() + self._timeout
        waited = False
        while True:
            try:
                return self._request_once(method, path, doc)
            except QueryBusy as busy:
                if not self._retry_busy or time.monotonic() + busy.retry_after >= deadline:
                    raise
                if self._on_wait is not None and not waited:
                    self._on_wait(str(busy))
                waited = True
                time.sleep(busy.retry_after)

    def _request_once(self, method: str, path: str, doc: Mapping[str, Any] | None) -> bytes:
        headers = {"Content-Type": "application/json", **auth_headers()}
        request = urllib.request.Request(
            f"http://{self.address}{path}",
            data=None if doc is None else json.dumps(doc).encode("utf-8"),
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                message = json.loads(detail)["error"]
            except (ValueError, KeyError, TypeError):
                raise self._not_admin() from None
            retry_after = exc.headers.get("Retry-After", "")
            if exc.code == 429 or (exc.code == 503 and retry_after.isdigit()):
                wait = float(retry_after) if retry_after.isdigit() else 1.0
                raise QueryBusy(f"{self.description}: {message}", wait) from None
            raise StoreError(f"{self.description}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise StoreUnavailable(f"{self.description} is not reachable: {exc}") from None
        except http.client.HTTPException:  # e.g. BadStatusLine: something else listens there
            raise self._not_admin() from None

    def _not_admin(self) -> StoreError:
        return StoreError(
            f"{self.address} does not answer as a tokenbook admin API (is it an OTLP port?): "
            "pass the collector's admin address, 127.0.0.1:4319 by default"
        )

    def close(self) -> None:
        """Nothing to release (one HTTP request per query)."""
