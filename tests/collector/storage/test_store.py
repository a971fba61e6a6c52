"""The store on the real embedded engine: exact, idempotent totals under any re-delivery."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from tests.cli.seed_store import make_calls, make_steps
from tokenbook.collector.ingest.dedup import KEY_BYTES, span_key
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.ledger import CALL_COLUMNS, STEP_COLUMNS, CallRow, StepRow
from tokenbook.collector.storage.store import Store, StoreError, StoreUnavailable

COSTS = ("input_cost", "output_cost", "cache_read_cost", "cache_write_cost", "total_cost")
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store_location(request, chdb_dir):
    """Where the store lives: the session's chDB directory, or a ClickHouse server (`clickhouse_url`)."""
    if request.param == "server":
        return {"url": request.getfixturevalue("clickhouse_url")}
    return {"data_dir": chdb_dir}


@pytest.fixture
def store(request, store_location):
    """A migrated store in an empty database: of the process's pool (embedded), or fresh on a server."""
    if "data_dir" in store_location:
        with request.getfixturevalue("database_pool").store() as s:
            yield s
        return
    with Store.open(**store_location, database=f"t_{uuid.uuid4().hex[:12]}") as s:
        s.migrate()
        yield s
        s.command(f"DROP DATABASE IF EXISTS {s.database}")


def _dsum(values: Iterable[Decimal | None]) -> Decimal | None:
    """Decimal sum that is None when every value is None (SQL sum over NULLs)."""
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def expected_contexts(calls: list[CallRow], steps: list[StepRow]) -> dict[tuple[str, str], dict[str, Any]]:
    by_key: dict[tuple[str, str], list[CallRow]] = defaultdict(list)
    steps_by_key: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
    for c in calls:
        by_key[(c.tenant_id, c.context_id)].append(c)
    for s in steps:
        steps_by_key[(s.tenant_id, s.context_id)].append(s)
    out = {}
    for key in by_key.keys() | steps_by_key.keys():
        cs, ss = by_key[key], steps_by_key[key]
        tools = [s for s in ss if s.kind == "tool"]
        out[key] = {
            "calls": len(cs),
            "unpriced_calls": sum(c.price_status == "unpriced" for c in cs),
            "call_errors": sum(c.status == "error" for c in cs),
            "retries": sum(c.attempt > 0 for c in cs),
            "tool_calls": len(tools),
            "tool_errors": sum(s.status == "error" for s in tools),
            "models": sorted({c.model for c in cs}),
            "outcome": next(
                (s.outcome for s in sorted(ss, key=lambda s: s.timestamp, reverse=True) if s.outcome), ""
            ),
            "first_seen": min([c.timestamp for c in cs] + [s.timestamp for s in ss]),
            "last_seen": max([c.timestamp for c in cs] + [s.timestamp for s in ss]),
            **{t: sum(getattr(c, t) for c in cs) for t in TOKENS},
            **{m: _dsum(getattr(c, m) for c in cs) for m in COSTS},
        }
    return out


def expected_hourly(calls: list[CallRow]) -> dict[tuple[Any, ...], dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[CallRow]] = defaultdict(list)
    for c in calls:
        hour = c.timestamp.replace(minute=0, second=0, microsecond=0)
        groups[(c.tenant_id, hour, c.project_id, c.feature, c.model)].append(c)
    return {
        key: {
            "calls": len(cs),
            **{t: sum(getattr(c, t) for c in cs) for t in TOKENS},
            **{m: _dsum(getattr(c, m) for c in cs) for m in COSTS},
        }
        for key, cs in groups.items()
    }


def read_contexts(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    fields = [
        "calls",
        "unpriced_calls",
        "call_errors",
        "retries",
        "tool_calls",
        "tool_errors",
        "models",
        "outcome",
        "first_seen",
        "last_seen",
        *TOKENS,
        *COSTS,
    ]
    _, _, rows = store.query(f"SELECT tenant_id, context_id, {', '.join(fields)} FROM v_context_costs")
    return {(r[0], r[1]): dict(zip(fields, r[2:], strict=True)) for r in rows}


def read_hourly(store: Store) -> dict[tuple[Any, ...], dict[str, Any]]:
    fields = ["calls", *TOKENS, *COSTS]
    _, _, rows = store.query(
        f"SELECT tenant_id, hour, project_id, feature, model, {', '.join(fields)} FROM v_cost_hourly"
    )
    return {tuple(r[:5]): dict(zip(fields, r[5:], strict=True)) for r in rows}


def read_ledger_totals(store: Store) -> dict[str, tuple[Any, ...]]:
    _, _, rows = store.query(
        "SELECT tenant_id, count(), sum(input_tokens), sum(total_cost), countIf(total_cost IS NULL) "
        "FROM v_calls GROUP BY tenant_id"
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def expected_ledger_totals(calls: list[CallRow]) -> dict[str, tuple[Any, ...]]:
    out = {}
    for tenant in {c.tenant_id for c in calls}:
        cs = [c for c in calls if c.tenant_id == tenant]
        out[tenant] = (
            len(cs),
            sum(c.input_tokens for c in cs),
            _dsum(c.total_cost for c in cs),
            sum(c.total_cost is None for c in cs),
        )
    return out


def assert_exact(store: Store, calls: list[CallRow], steps: list[StepRow]) -> None:
    assert read_ledger_totals(store) == expected_ledger_totals(calls)
    assert read_contexts(store) == expected_contexts(calls, steps)
    assert read_hourly(store) == expected_hourly(calls)


def test_write_and_refresh_give_exact_totals(store):
    calls = make_calls()
    steps = make_steps(calls)
    store.write(calls, steps)
    assert store.refresh_aggregates() > 0
    assert_exact(store, calls, steps)
    # Unpriced contexts and groups are NULL, never 0.
    hourly = read_hourly(store)
    assert any(v["total_cost"] is None for k, v in hourly.items() if k[4] == "mystery-model")


def test_redelivery_never_changes_a_total(store):
    calls = make_calls()
    steps = make_steps(calls)
    store.write(calls[:150], steps[:30])
    store.refresh_aggregates()
    # Same spans again: in one batch twice, overlapping later batches, and after the refresh.
    store.write(calls[100:] + calls[100:], steps[20:] + steps[20:])
    store.write(calls[:50], steps[:5])
    store.refresh_aggregates()
    assert_exact(store, calls, steps)
    store.write(calls, steps)
    store.refresh_aggregates()
    assert_exact(store, calls, steps)


def test_refresh_since_recovers_after_a_crash(store, store_location):
    calls = make_calls(60)
    steps = make_steps(calls)
    store.write(calls, steps)  # "crash": the touched keys are lost with this Store object
    with Store.open(**store_location, database=store.database) as fresh:
        assert fresh.refresh_aggregates() == 0
        assert read_contexts(fresh) == {}
        fresh.refresh_aggregates(since=datetime.now(UTC) - timedelta(hours=1))
        assert_exact(fresh, calls, steps)


def test_higher_version_replaces_a_call(store):
    calls = make_calls(30)
    store.write(calls, [])
    repriced = calls[0]._replace(
        total_cost=Decimal("1.5"),
        input_cost=Decimal("1.5"),
        output_cost=Decimal(0),
        cache_read_cost=Decimal(0),
        version=2,
    )
    store.write([repriced], [])
    store.refresh_aggregates()
    assert_exact(store, [repriced, *calls[1:]], [])


def test_versions_of_a_call_in_one_write_are_stored_as_written_and_read_as_the_newest(store):
    calls = make_calls(30)
    repriced = calls[0]._replace(
        total_cost=Decimal("2.5"),
        input_cost=Decimal("2.5"),
        output_cost=Decimal(0),
        cache_read_cost=Decimal(0),
        version=calls[0].version + 1,
    )
    store.write([repriced, *calls], [])  # the newer version first, in the same block
    store.refresh_aggregates()
    assert_exact(store, [repriced, *calls[1:]], [])
    # The block is written as it came: both versions stay in the ledger until a merge (a raw count
    # without FINAL sees both); every reader keeps the newest.
    raw = "SELECT count() FROM llm_calls WHERE span_id = {span:String}"
    assert store.query(raw, {"span": calls[0].span_id})[2] == [(2,)]


def test_columns_match_the_ledger_contract(store):
    for table, columns in (("llm_calls", CALL_COLUMNS), ("context_steps", STEP_COLUMNS)):
        _, _, rows = store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position",
            {"db": store.database, "t": table},
        )
        assert tuple(r[0] for r in rows) == columns
    _, types, _ = store.query("SELECT total_cost, tags, timestamp FROM llm_calls LIMIT 0")
    assert types == [
        "Nullable(Decimal(18, 12))",
        "Map(LowCardinality(String), String)",
        "DateTime64(6, 'UTC')",
    ]


def test_span_key_slices_are_the_dedup_keys_newest_first(store):
    now = datetime.now(UTC)
    calls = [c._replace(ingested_at=now - timedelta(seconds=i)) for i, c in enumerate(make_calls(12))]
    steps = [  # spans have hex IDs (the seed's outcome steps do not)
        s._replace(span_id=f"{1000 + i:016x}", ingested_at=now - timedelta(seconds=12 + i))
        for i, s in enumerate(make_steps(calls))
    ]
    # ingested before the window: not read
    old = make_calls(1)[0]._replace(span_id="f" * 16, ingested_at=now - timedelta(hours=2))
    store.write([*calls, old], steps)
    since = now - timedelta(hours=1)
    slices = list(store.span_key_slices(since, now + timedelta(seconds=1), 5))
    assert [len(s.keys) // KEY_BYTES for s in slices][:-1] == [5] * (len(slices) - 1)
    assert slices[-1].since == since and slices[0].until == now + timedelta(seconds=1)
    assert all(a.since == b.until for a, b in pairwise(slices))  # contiguous, newest first
    got = [s.keys[i : i + KEY_BYTES] for s in slices for i in range(0, len(s.keys), KEY_BYTES)]
    spans: list[CallRow | StepRow] = [*calls, *steps]
    assert sorted(got) == sorted(span_key(r.tenant_id, r.trace_id, r.span_id) for r in spans)
    newest = slices[0].keys
    assert {newest[i : i + KEY_BYTES] for i in range(0, len(newest), KEY_BYTES)} == {
        span_key(c.tenant_id, c.trace_id, c.span_id) for c in calls[:5]
    }


def test_recovery_goes_slice_by_slice_and_keeps_the_watermark_below_what_is_left(
    store, store_location, tmp_path
):
    now = datetime.now(UTC)
    calls = [c._replace(ingested_at=now - timedelta(seconds=60 - i)) for i, c in enumerate(make_calls(60))]
    steps = make_steps(calls)
    store.write(calls, steps)  # "crash": the touched keys are lost with this Store object
    with Store.open(**store_location, database=store.database) as fresh:
        fresh.track_refresh(tmp_path / "watermark.json")
        fresh.recover_rows = 20
        since = now - timedelta(hours=1)
        fresh.refresh_aggregates(since=since, slices=1)
        assert fresh.recovering
        watermark = fresh.track_refresh(tmp_path / "watermark.json")
        assert watermark is not None and watermark <= calls[20].ingested_at  # the rest is still to do
        fresh.refresh_aggregates(since=since)
        assert not fresh.recovering
        assert fresh.track_refresh(tmp_path / "watermark.json") > now
        assert_exact(fresh, calls, steps)


def test_roundtrip_keeps_money_exact(store):
    call = make_calls(1)[0]._replace(
        input_cost=Decimal("0.000000000001"),
        output_cost=Decimal("123456.123456789012"),
        cache_read_cost=Decimal(0),
        cache_write_cost=Decimal(0),
        total_cost=Decimal("123456.123456789013"),
    )
    store.write([call], [])
    _, _, rows = store.query("SELECT input_cost, output_cost, total_cost, tags, timestamp FROM v_calls")
    assert rows == [(call.input_cost, call.output_cost, call.total_cost, call.tags, call.timestamp)]


TRICKY = (
    "tab\there",
    "new\nline\r\n",
    "back\\slash\\",
    "quotes ' \" `",
    "unicode é 漢字 😀",
    "",
    "\\N",
    "[1, {}]",
)


def test_every_string_and_value_reaches_clickhouse_exactly(store):
    """The insert blocks are parsed by ClickHouse: escaping must be exact for any text and value."""
    base = make_calls(1)[0]
    calls = [
        base._replace(
            span_id=f"{i:016x}", workflow_name=text, user_id=text, project_id=text, feature=text,
            tags={text or "empty": text, "k\t": "v\n"}, model=text, price_source=text, usage_issue=text,
            error_type=text, client_cost=Decimal("-999999.999999999999"), input_cost=Decimal("1E-12"),
            output_cost=Decimal("999999.999999999999"), cache_read_cost=Decimal(0), cache_write_cost=None,
            total_cost=Decimal("-0.000000000001"),
            input_tokens=2**64 - 1, duration_ms=0.1 + 0.2,
            timestamp=base.timestamp.replace(microsecond=i + 1),
        )
        for i, text in enumerate(TRICKY)
    ]  # fmt: skip
    steps = [
        s._replace(name=c.user_id, outcome=c.user_id) for s, c in zip(make_steps(calls), calls, strict=False)
    ]
    store.write(calls, steps)
    _, _, rows = store.query(f"SELECT {', '.join(CALL_COLUMNS)} FROM llm_calls ORDER BY span_id")
    assert [CallRow._make(r) for r in rows] == sorted(calls, key=lambda c: c.span_id)
    _, _, rows = store.query(f"SELECT {', '.join(STEP_COLUMNS)} FROM context_steps ORDER BY span_id")
    assert [StepRow._make(r) for r in rows] == sorted(steps, key=lambda s: s.span_id)


def test_a_lone_surrogate_is_stored_not_refused(store):
    """OTLP/JSON can carry one; refusing the insert would block the writer (it retries forever)."""
    call = make_calls(1)[0]._replace(user_id="a\udfffb")
    store.write([call], [])
    _, _, rows = store.query("SELECT span_id, total_cost, length(user_id) FROM llm_calls")
    assert rows == [(call.span_id, call.total_cost, 5)]  # stored as its 3-byte (invalid) UTF-8 form


def test_concurrent_writer_and_reader(store):
    calls = make_calls(200)
    errors: list[BaseException] = []

    def writer():
        try:
            for start in range(0, 200, 40):  # five writes, each refreshed, while the reader reads
                store.write(calls[start : start + 40], [])
                store.refresh_aggregates()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive():  # a read every few milliseconds: dozens during each write and refresh
        store.query_readonly("SELECT count() FROM v_context_costs")
        time.sleep(0.005)
    t.join()
    assert errors == []
    assert_exact(store, calls, [])


def test_ping_and_plain_query(store):
    assert store.ping()
    columns, types, rows = store.query("SELECT {x:Decimal(18, 12)} AS x", {"x": Decimal("0.1")})
    assert (columns, types, rows) == (["x"], ["Decimal(18, 12)"], [(Decimal("0.1"),)])


def test_query_errors_are_store_errors(store):
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|does not exist"):
        store.query("SELECT * FROM no_such_table")


def test_server_password_never_leaks():
    with socket.socket() as sock:  # a free port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailable) as info:
        Store.open(f"http://alice:s3cr3t-pw@127.0.0.1:{port}")
    assert "s3cr3t-pw" not in str(info.value)
    assert "alice:***@127.0.0.1" in str(info.value)


def test_bad_database_name_is_refused(chdb_dir):
    with pytest.raises(ValueError, match="database"):
        Store.open(data_dir=chdb_dir, database="x; DROP")


@pytest.mark.server
def test_exact_totals_on_a_server(clickhouse_url):
    calls = make_calls(120)
    steps = make_steps(calls)
    with Store.open(clickhouse_url, database=f"tokenbook_test_{uuid.uuid4().hex[:8]}") as server:
        try:
            server.migrate()
            server.write(calls, steps)
            server.write(calls[:60], steps[:10])
            server.refresh_aggregates()
            assert_exact(server, calls, steps)
            with pytest.raises(QueryRefused):
                server.query_readonly("SELECT 1; DROP TABLE llm_calls")
        finally:
            server.command(f"DROP DATABASE IF EXISTS {server.database}")


def test_an_empty_user_query_result_has_its_columns(store):
    """A read-only query that returns no rows still names its columns and their types (the embedded
    engine sends no block at all for an empty result), whatever the query's row limit."""
    sql = "SELECT tenant_id, {p:String} AS p, count() AS n FROM v_calls WHERE 0 GROUP BY tenant_id"
    for max_rows in (1, 10_000):
        columns, types, rows = store.query_readonly(sql, {"p": "x"}, max_rows=max_rows)
        assert (columns, rows) == (["tenant_id", "p", "n"], [])
        assert types[1:] == ["String", "UInt64"] and "String" in types[0]
