"""The admin API under a flood of queries, on the real engine: a bounded number run at once, one more
is refused at once with 429, and health, readiness, metrics and budgets answer all the while."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.collector.storage.test_store_concurrency import LONG_QUERY, RUNNING
from tests.stores import DatabasePool
from tokenbook.collector.admin import AdminServer
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.budgets.config import BudgetsConfig
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.query.api import AdminQueryClient, QueryBusy
from tokenbook.collector.storage.reprice import reprice
from tokenbook.collector.storage.store import Store, StoreError
from tokenbook.genai.pricing.catalog import PriceCatalog


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


@pytest.fixture
def server(store: Store) -> Iterator[AdminServer]:
    """The admin API with two query slots and no wait for one."""
    config = AdminConfig("127.0.0.1:0", query_timeout=120.0, query_concurrency=2, query_queue_timeout=0)
    budgets = BudgetRuntime(BudgetsConfig(), None)
    admin = AdminServer(config, store, IngestMetrics(), ready=lambda: (True, "ready"), budgets=budgets)
    admin.start()
    yield admin
    admin.stop()


def get(server: AdminServer, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def metric(server: AdminServer, name: str) -> float:
    status, text = get(server, "/metrics")
    assert status == 200
    (value,) = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Flood(threading.Thread):
    """One long query through the admin API; keeps the error it ends with."""

    def __init__(self, server: AdminServer) -> None:
        super().__init__(daemon=True)
        self.client = AdminQueryClient(f"127.0.0.1:{server.port}", timeout_s=120)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.client.query_readonly(LONG_QUERY)
        except StoreError as exc:
            self.error = exc


def test_queries_beyond_the_slots_are_refused_and_probes_still_answer(server: AdminServer) -> None:
    floods = [Flood(server), Flood(server)]
    for f in floods:
        f.start()
    wait_until(lambda: metric(server, "tokenbook_admin_queries_running") == 2)

    assert get(server, "/healthz") == (200, '{"status": "ok"}')
    assert get(server, "/readyz")[0] == 200
    status, body = get(server, "/v1/budgets?tenant=acme")
    assert status == 200 and "allowed" in json.loads(body)

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/query", body=json.dumps({"sql": "SELECT 1"}))
    response = conn.getresponse()
    assert response.status == 429
    assert response.getheader("Retry-After") == "1"
    assert "query slots" in json.loads(response.read())["error"]
    conn.close()
    with pytest.raises(QueryBusy):
        AdminQueryClient(f"127.0.0.1:{server.port}", retry_busy=False).query_readonly("SELECT 1")
    assert metric(server, "tokenbook_admin_queries_refused_total") == 2

    # both queries past the guard and on the engine (a slot is taken before the guard's check)
    wait_until(lambda: server.handler.store.query(RUNNING)[2][0][0] == 2)
    assert server.refuse_queries() == 2  # a shutdown: the running queries are cancelled ...
    for f in floods:
        f.join(60)
        assert not f.is_alive() and f.error is not None
    with pytest.raises(StoreError, match="shutting down"):  # ... and new ones refused
        AdminQueryClient(f"127.0.0.1:{server.port}").query_readonly("SELECT 1")


def test_a_query_waits_for_a_slot_within_the_queue_timeout(store: Store) -> None:
    """A short query that finds every slot taken gets one as soon as it frees (the client retries a
    429 too, within its own timeout)."""
    config = AdminConfig("127.0.0.1:0", query_concurrency=1, query_queue_timeout=30.0)
    admin = AdminServer(config, store, IngestMetrics(), ready=lambda: (True, "ready"))
    admin.start()
    try:
        flood = Flood(admin)
        flood.start()
        wait_until(lambda: metric(admin, "tokenbook_admin_queries_running") == 1)
        wait_until(lambda: store.query(RUNNING)[2][0][0] == 1)  # the flood holds the slot in the engine
        waiting = threading.Thread(
            target=lambda: AdminQueryClient(f"127.0.0.1:{admin.port}").query_readonly("SELECT 1"), daemon=True
        )
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()  # it waits for the slot, not refused
        assert store.cancel_user_queries() == 1
        waiting.join(30)
        assert not waiting.is_alive()
        assert metric(admin, "tokenbook_admin_queries_refused_total") == 0
    finally:
        admin.stop()


def test_a_body_nested_deeper_than_the_json_parser_goes_is_a_400(server: AdminServer) -> None:
    """Failed before: the JSON parser's RecursionError was not a ValueError, so the request was answered
    500 as a bug, not 400 as bad input."""
    for path in ("/v1/query", "/v1/reservations"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            body = b"[" * 200_000 + b"]" * 200_000
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 400, (path, response.status, answer)
        assert "invalid JSON" in answer["error"]
    status, _ = get(server, "/healthz")
    assert status == 200


def post_query(server: AdminServer, doc: object, path: str = "/v1/query") -> tuple[int, dict[str, Any]]:
    """POST `doc` as JSON to `path`: the status and the JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(doc), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_max_rows_must_be_a_positive_integer_not_a_boolean(server: AdminServer) -> None:
    """Failed before: ``true`` is an int to Python, so it reached the engine as a setting it could not
    parse (a 400 with the engine's parse error instead of the API's own)."""
    for bad in (True, -1, 1.5, "3", [1], 1e308):  # (absent, null, 0 or false: the default)
        status, answer = post_query(server, {"sql": "SELECT 1", "max_rows": bad})
        assert (status, answer) == (400, {"error": "max_rows must be a positive integer"}), bad
    assert post_query(server, {"sql": "SELECT 1 AS one", "max_rows": 1}) == (
        200,
        {"columns": ["one"], "types": ["UInt8"], "rows": [[1]]},
    )
    assert post_query(server, {"sql": "SELECT 1 AS one WHERE 0"}) == (
        200,
        {"columns": ["one"], "types": ["UInt8"], "rows": []},
    )


def test_a_query_with_a_field_the_api_does_not_have_is_refused(server: AdminServer) -> None:
    """Failed before: ``settings`` (no such field) and ``max_row`` (a misspelt ``max_rows``) were
    ignored, and the query ran without them."""
    body = '{"sql": "...", "parameters": {...}, "max_rows": N}'
    assert post_query(server, {"sql": "SELECT 1", "settings": {"readonly": 0}}) == (
        400,
        {"error": f"unknown field(s) 'settings': the body is {body}"},
    )
    status, answer = post_query(server, {"sql": "SELECT number FROM numbers(5)", "max_row": 2, "params": {}})
    assert (status, answer) == (400, {"error": f"unknown field(s) 'max_row', 'params': the body is {body}"})
    assert (
        post_query(server, {"sql": "SELECT {n:UInt8} AS n", "parameters": {"n": 3}, "max_rows": 1})[0] == 200
    )


def test_a_reprice_request_says_which_time_is_wrong(store: Store) -> None:
    """Failed before: a body without `since` got "Invalid isoformat string: 'None'"."""
    catalog = PriceCatalog()
    admin = AdminServer(
        AdminConfig("127.0.0.1:0", 10.0, 1000),
        store,
        IngestMetrics(),
        ready=lambda: (True, "ready"),
        reprice=lambda since, until, model: reprice(store, catalog, since=since, until=until, model=model),
    )
    admin.start()
    try:

        def post(doc: object) -> tuple[int, dict[str, Any]]:
            return post_query(admin, doc, "/v1/reprice")

        assert post({}) == (400, {"error": "since must be an ISO 8601 timestamp with a time zone, got None"})
        status, answer = post({"since": "2026-12-01T00:00:00+00:00", "until": "yesterday"})
        assert (status, answer["error"]) == (
            400,
            "until must be an ISO 8601 timestamp with a time zone, got 'yesterday'",
        )
        status, answer = post({"since": "2026-12-01T00:00:00", "until": "2026-12-02T00:00:00+00:00"})
        assert status == 400 and answer["error"].startswith(
            "since must be an ISO 8601 timestamp with a time zone"
        )
        status, answer = post({"since": "2026-12-02T00:00:00+00:00", "until": "2026-12-01T00:00:00+00:00"})
        assert (status, answer["error"]) == (
            400,
            "since (2026-12-02T00:00:00+00:00) must be before until (2026-12-01T00:00:00+00:00)",
        )
        status, answer = post({"since": "2026-12-01T00:00:00+00:00", "until": "x", "dry_run": True})
        assert (status, answer["error"]) == (
            400,
            """unknown field(s) 'dry_run': the body is {"since": ISO, "until": ISO, "model": ""}""",
        )
        assert post({"since": "2026-12-01T00:00:00+00:00", "until": "2026-12-02T00:00:00+00:00"}) == (
            200,
            {"examined": 0, "changed": 0},
        )
    finally:
        admin.stop()
