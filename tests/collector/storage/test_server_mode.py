"""tokenbook against a ClickHouse server: the CLI with ``--url`` and the collector with
``storage.clickhouse.url``, over clickhouse-connect's HTTP client.

The server is ``$TOKENBOOK_TEST_CLICKHOUSE_URL`` when set, else the HTTP test server of
`tests/clickhouse_http` (ClickHouse's HTTP interface in front of the real engine). `report`, `sql`,
`reprice` and `budgets` read the fixed database ``tokenbook``, so they get a server of their own (a
dedicated test server; on a real server only when it has no ``tokenbook`` database yet, which is
dropped afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import clickhouse_connect
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.cli.seed_store import UNPRICED_MODEL, make_calls, make_steps
from tests.clickhouse_http.fixture import ENV_URL, ClickHouseHTTPProcess
from tests.collector.budgets.budget_rows import call, seed_budget_events
from tests.collector.collector_process import CollectorProcess, SpanFactory
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.migrate import load_migrations
from tokenbook.collector.storage.store import Store, StoreError

pytestmark = pytest.mark.server

CHAT_COST = Decimal("0.00075")  # gpt-4o: 100 x $2.50/M + 50 x $10/M (tests/genai/test_golden_prices.py)


def tokenbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tokenbook {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _tables(store: Store, database: str) -> set[str]:
    _, _, rows = store.query("SELECT name FROM system.tables WHERE database = {db:String}", {"db": database})
    return {r[0] for r in rows}


# -- migrate, and the engine's answers through the HTTP client ---------------------------------------


def test_migrate_cli_applies_the_schema_once(clickhouse_url: str) -> None:
    database = f"tb_cli_{uuid.uuid4().hex[:8]}"
    first = tokenbook("migrate", "--url", clickhouse_url, "--database", database)
    second = tokenbook("migrate", "--url", clickhouse_url, "--database", database)
    with Store.open(clickhouse_url, database=database) as store:
        try:
            names = [m.name for m in load_migrations()]
            assert all(name in first.stdout + first.stderr for name in names)
            assert not any(name in second.stdout for name in names)
            assert {"llm_calls", "context_steps", "cost_hourly", "v_calls", "budget_events"} <= _tables(
                store, database
            )
        finally:
            store.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def server_store(clickhouse_url: str) -> Iterator[Store]:
    with Store.open(clickhouse_url, database=f"tb_srv_{uuid.uuid4().hex[:8]}") as store:
        store.migrate()
        try:
            yield store
        finally:
            store.command(f"DROP DATABASE IF EXISTS {store.database}")


def test_bound_parameters_round_trip_exactly(server_store: Store) -> None:
    """Strings with every escape, NULL, arrays, datetimes and decimals survive the URL."""
    text = "tab\there, new\nline, back\\slash, 'quote', \"dq\", `bt`, {brace:String}, é, 🙂"
    stamp = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    _, types, rows = server_store.query(
        "SELECT {s:String} AS s, {n:Nullable(String)} AS n, {a:Array(String)} AS a, "
        "{t:DateTime64(6, 'UTC')} AS t, {d:Decimal(38, 12)} AS d",
        {"s": text, "n": None, "a": [text, ""], "t": stamp, "d": Decimal("1E-12")},
    )
    assert rows == [(text, None, [text, ""], stamp, Decimal("1E-12"))]
    assert types[-1] == "Decimal(38, 12)"


def test_large_parameter_lists_go_through(server_store: Store) -> None:
    """Over 4 KiB of parameters go in a multipart form (query) or a long URL (command)."""
    keys = [f"tenant-{i:06d}-{'x' * 30}" for i in range(3000)]
    _, _, rows = server_store.query("SELECT length({keys:Array(String)})", {"keys": keys})
    assert rows == [(3000,)]
    server_store.command(f"CREATE TABLE {server_store.database}.k (k String) ENGINE = MergeTree ORDER BY k")
    server_store.command(
        f"INSERT INTO {server_store.database}.k SELECT arrayJoin({{keys:Array(String)}})", {"keys": keys}
    )
    assert server_store.query(f"SELECT count() FROM {server_store.database}.k")[2] == [(3000,)]


def test_refreshing_many_keys_stays_within_the_uri_limit(server_store: Store) -> None:
    """Aggregate refreshes bind their keys in the URL (ClickHouse caps it at 1 MiB): chunks must fit."""
    now = datetime.now(UTC).replace(microsecond=0)
    contexts = [f"context-{i:05d}-{'c' * 48}" for i in range(4500)]
    calls = [call(now - timedelta(seconds=i), f"{i:016x}", context=ctx) for i, ctx in enumerate(contexts)]
    server_store.write(calls, [])
    assert server_store.refresh_aggregates() >= len(contexts)
    _, _, rows = server_store.query("SELECT count(), sum(calls) FROM v_context_costs")
    assert rows == [(4500, 4500)]


def test_engine_errors_and_limits_reach_the_caller(server_store: Store) -> None:
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE") as unknown:
        server_store.query("SELECT * FROM no_such_table")
    assert "Code: 60" in str(unknown.value)
    with pytest.raises(StoreError, match=r"TOO_MANY_ROWS_OR_BYTES"):
        server_store.query_readonly("SELECT number FROM numbers(50)", max_rows=10)
    with pytest.raises(QueryRefused):
        server_store.query_readonly("SELECT 1; DROP TABLE llm_calls")
    _, _, rows = server_store.query_readonly(
        "SELECT count() FROM v_calls WHERE tenant_id = {tenant:String}", {"tenant": "acme'; DROP"}
    )
    assert rows == [(0,)]
    assert _tables(server_store, server_store.database) >= {"llm_calls"}


def test_the_server_refuses_what_clickhouse_refuses(clickhouse_url: str) -> None:
    """Several statements in one request and a wrong password: ClickHouse's errors, not chDB's laxness."""
    if os.environ.get(ENV_URL):
        pytest.skip("checks the HTTP test server against ClickHouse's behaviour")
    from urllib.parse import urlsplit

    from clickhouse_connect.driver.exceptions import DatabaseError

    port = urlsplit(clickhouse_url).port
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default")
    try:
        with pytest.raises(DatabaseError, match=r"Multi-statements are not allowed") as multi:
            client.command("SELECT 1; SELECT 2")
        assert multi.value.code == 62
        assert client.command("SELECT 1;") == 1
        with pytest.raises(DatabaseError, match=r"READONLY"):  # settings travel as URL parameters
            client.command("CREATE TABLE ro_t (a UInt8) ENGINE = Memory", settings={"readonly": 1})
        with pytest.raises(DatabaseError, match=r"TIMEOUT_EXCEEDED"):
            client.command("SELECT sleep(2)", settings={"max_execution_time": 1})
        assert client.command("SELECT $$ ; SELECT 2 $$ -- ; SELECT 3") == " ; SELECT 2 "
    finally:
        client.close()
    with pytest.raises(DatabaseError, match=r"AUTHENTICATION_FAILED"):
        clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default", password="nope")


# -- report, sql, reprice, budgets on the database `tokenbook` ---------------------------------------


@pytest.fixture(scope="module")
def tokenbook_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose database ``tokenbook`` is this module's, seeded like `tests/cli/seed_store.py`."""
    server: ClickHouseHTTPProcess | None = None
    url = os.environ.get(ENV_URL)
    if url:
        with Store.open(url) as probe:
            _, _, rows = probe.query("SELECT count() FROM system.databases WHERE name = 'tokenbook'")
        if rows[0][0]:
            pytest.skip(f"{ENV_URL} already has a database tokenbook, which these tests would change")
    else:
        server = ClickHouseHTTPProcess(tmp_path_factory.mktemp("clickhouse-tokenbook") / "data").start()
        url = server.url
    try:
        with Store.open(url) as store:
            store.migrate()
            calls, steps = make_calls(), make_steps(make_calls())
            store.write(calls, steps)
            store.write(calls, steps)  # re-delivered: counted once
            store.refresh_aggregates()
        yield url
    finally:
        if server is not None:
            server.stop()
        else:
            with Store.open(url) as store:
                store.command("DROP DATABASE IF EXISTS tokenbook")


def test_report_by_tenant_is_exact(tokenbook_url: str) -> None:
    expected: dict[str, tuple[int, Decimal]] = {}
    for c in make_calls():
        n, cost = expected.get(c.tenant_id, (0, Decimal(0)))
        expected[c.tenant_id] = (n + 1, cost + (c.total_cost or 0))
    out = tokenbook("report", "--by", "tenant", "--since", "2d", "--url", tokenbook_url, "--format", "json")
    got = {r["tenant"]: (r["calls"], Decimal(r["total_cost"])) for r in _json_lines(out.stdout)}
    assert got == expected
    one = tokenbook(
        "report", "--by", "model", "--tenant", "acme", "--url", tokenbook_url, "--format", "json"
    ).stdout
    models = {r["model"]: r["calls"] for r in _json_lines(one)}
    acme = [c for c in make_calls() if c.tenant_id == "acme"]
    assert models == {m: sum(1 for c in acme if c.model == m) for m in {c.model for c in acme}}


def test_report_of_one_context_in_time_order(tokenbook_url: str) -> None:
    out = tokenbook("report", "--context", "acme-ctx-1", "--url", tokenbook_url, "--format", "json").stdout
    rows = _json_lines(out)
    expected = sorted(c.span_id for c in make_calls() if c.context_id == "acme-ctx-1")
    assert sorted(r["span_id"] for r in rows) == expected
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)


def test_sql_runs_one_select_and_refuses_the_rest(tokenbook_url: str) -> None:
    query = (
        "SELECT tenant_id, count() AS calls, sum(total_cost) AS cost FROM v_calls "
        "WHERE model != 'it''s \\'quoted\\'' GROUP BY tenant_id ORDER BY tenant_id"
    )
    rows = _json_lines(tokenbook("sql", query, "--url", tokenbook_url, "--format", "json").stdout)
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for c in make_calls():
        totals[c.tenant_id][0] += 1
        totals[c.tenant_id][1] += c.total_cost or 0
    assert [(r["tenant_id"], r["calls"], Decimal(r["cost"])) for r in rows] == [
        (t, n, cost) for t, (n, cost) in sorted(totals.items())
    ]
    refused = tokenbook("sql", "DROP TABLE llm_calls", "--url", tokenbook_url, check=False)
    assert refused.returncode == 1 and "llm_calls" not in refused.stdout
    too_many = tokenbook("sql", "SELECT number FROM numbers(200000)", "--url", tokenbook_url, check=False)
    assert too_many.returncode == 1 and "TOO_MANY_ROWS_OR_BYTES" in too_many.stderr
    unpriced = tokenbook("prices", "--unpriced", "--url", tokenbook_url, "--format", "json").stdout
    assert {r["model"] for r in _json_lines(unpriced)} == {UNPRICED_MODEL}


def test_budgets_reads_the_recorded_crossings(tokenbook_url: str) -> None:
    with Store.open(tokenbook_url) as store:
        seed_budget_events(store, datetime.now(UTC))
    out = tokenbook("budgets", "--url", tokenbook_url, "--format", "json")
    states = {(r["kind"], r["rule"], r["subject"], r["state"]) for r in _json_lines(out.stdout)}
    assert ("quota", "monthly-tokens", "tenant=acme", "over_budget") in states
    assert ("quota", "monthly-tokens", "tenant=globex", "at_risk") in states
    assert "no running collector" in out.stderr
    acme = tokenbook("budgets", "--url", tokenbook_url, "--tenant", "globex", "--format", "json").stdout
    assert {r["subject"] for r in _json_lines(acme)} == {"tenant=globex"}


def test_reprice_changes_rows_once_and_keeps_views_consistent(tokenbook_url: str) -> None:
    from tokenbook.genai.pricing.catalog import PriceCatalog
    from tokenbook.genai.usage import Usage

    catalog = PriceCatalog()
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for c in make_calls():
        usage = Usage(
            c.input_tokens,
            c.output_tokens,
            c.cache_read_tokens,
            c.cache_write_tokens,
            c.reasoning_tokens,
            True,
        )
        expected[c.tenant_id] += catalog.price(c.provider, c.model, usage, c.timestamp).total or 0
    priced = sum(1 for c in make_calls() if c.model != UNPRICED_MODEL)
    first = tokenbook("reprice", "--since", "2d", "--url", tokenbook_url).stdout
    assert f"re-priced {priced} of 240 calls" in first
    assert "re-priced 0 of 240 calls" in tokenbook("reprice", "--since", "2d", "--url", tokenbook_url).stdout
    totals = {}
    for view in ("v_calls", "v_context_costs", "v_cost_hourly"):
        query = f"SELECT tenant_id, sum(total_cost) AS cost FROM {view} GROUP BY tenant_id"
        rows = _json_lines(tokenbook("sql", query, "--url", tokenbook_url, "--format", "json").stdout)
        totals[view] = {r["tenant_id"]: Decimal(r["cost"]) for r in rows}
    assert totals["v_calls"] == totals["v_context_costs"] == totals["v_cost_hourly"] == dict(expected)


# -- the collector writing to a server ------------------------------------------------------------------


def test_collector_writes_otlp_spans_to_the_server(clickhouse_url: str, tmp_path) -> None:
    database = f"tb_col_{uuid.uuid4().hex[:8]}"
    collector = CollectorProcess(
        tmp_path / "data", storage={"clickhouse": {"url": clickhouse_url, "database": database}}
    ).start()
    try:
        spans = SpanFactory()
        exporter = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True)
        batch = spans.chats(40, tenant="acme") + spans.chats(20, tenant="globex")
        assert exporter.export(batch) == SpanExportResult.SUCCESS
        assert exporter.export(batch[:30]) == SpanExportResult.SUCCESS  # re-delivered: billed once
        exporter.shutdown()
        collector.wait_for("SELECT count() FROM v_calls", 60)
        collector.wait_for("SELECT sum(calls) FROM v_context_costs", 60)
    finally:
        assert collector.stop() == 0
    with Store.open(clickhouse_url, database=database) as store:
        try:
            _, _, rows = store.query(
                "SELECT tenant_id, count(), sum(total_cost) FROM v_calls GROUP BY tenant_id ORDER BY 1"
            )
            assert rows == [("acme", 40, 40 * CHAT_COST), ("globex", 20, 20 * CHAT_COST)]
            _, _, hourly = store.query("SELECT sum(total_cost) FROM v_cost_hourly")
            assert hourly == [(60 * CHAT_COST,)]
        finally:
            store.command(f"DROP DATABASE IF EXISTS {database}")
