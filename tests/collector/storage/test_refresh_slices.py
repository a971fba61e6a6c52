"""The aggregate refresh in bounded slices (`storage.refresh.max_keys`): a burst is caught up a slice at
a time, and ends with the same aggregates and billing decisions as one refresh of everything."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from tests.cli.seed_store import make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.config import RefreshConfig
from tokenbook.collector.storage.decisions import DecisionKeys
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.slicing import PendingDecisions, take
from tokenbook.collector.storage.store import Store
from tokenbook.genai.decisions import RULE_CROSS_LAYER

_LAYER_SCOPE = "opentelemetry.instrumentation.openai"


def burst(start: datetime) -> list[CallRow]:
    """120 calls of 30 contexts over 3 tenants, 20 traces; every 7th call also recorded by a second
    instrumentation layer (a span of its own trace containing it), which the decision pass bills in
    its place: 138 rows, 38 traces."""
    calls = [
        c._replace(context_id=f"{c.tenant_id}-ctx-{i % 30}", scope_name="openai", service_instance="svc-1")
        for i, c in enumerate(make_calls(120, base=start))
    ]
    layers = [
        c._replace(
            span_id=f"{0xF000 + i:016x}",
            trace_id=f"{0xE000 + i:032x}",
            scope_name=_LAYER_SCOPE,
            timestamp=c.timestamp - timedelta(milliseconds=20),
            duration_ms=c.duration_ms + 40.0,
        )
        for i, c in enumerate(calls[::7])
    ]
    return calls + layers


@contextmanager
def store_with(pool: DatabasePool, refresh: RefreshConfig) -> Iterator[Store]:
    """A migrated store in a fresh pooled database, with the refresh's slices set."""
    with pool.database() as name, Store.open(data_dir=pool.data_dir, database=name, refresh=refresh) as s:
        yield s


def write_and_refresh(store: Store, rows: list[CallRow]) -> None:
    """The rows in four writes (as the writer's batches), then one refresh of them all."""
    for part in range(4):
        store.write(rows[part::4], [])
    store.refresh_aggregates()


def ledger_state(store: Store) -> tuple[list[tuple[object, ...]], ...]:
    """Everything a refresh computes: context_costs, cost_hourly and each call's billing decision."""
    contexts = store.query(
        "SELECT * EXCEPT refreshed_at FROM context_costs FINAL ORDER BY tenant_id, context_id"
    )[2]
    hours = store.query("SELECT * EXCEPT refreshed_at FROM cost_hourly FINAL ORDER BY ALL")[2]
    decisions = store.query(
        "SELECT span_id, price_status, billing_rule, billed_by FROM llm_calls FINAL ORDER BY span_id"
    )[2]
    return contexts, hours, decisions


def test_a_burst_is_refreshed_in_bounded_slices_with_the_same_result(database_pool: DatabasePool) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    rows = burst(start)
    with store_with(database_pool, RefreshConfig(max_keys=10)) as sliced:
        slices: list[list[tuple[str, str]]] = []
        sliced.on_refreshed = lambda contexts: slices.append(list(contexts))
        write_and_refresh(sliced, rows)
        sliced_state = ledger_state(sliced)
        assert not sliced.refresh_pending(hourly=True)
        billed_total = sliced.query("SELECT toString(sum(total_cost)) FROM v_calls")[2][0][0]
        context_total = sliced.query("SELECT toString(sum(total_cost)) FROM context_costs FINAL")[2][0][0]
    with store_with(database_pool, RefreshConfig(max_keys=100_000)) as whole:
        write_and_refresh(whole, rows)
        whole_state = ledger_state(whole)

    # 30 contexts, at most 10 a slice: 3 slices (the decision pass's 38 traces took 4 slices, the
    # last re-recomputing contexts whose calls it re-decided)
    assert all(len(s) <= 10 for s in slices)
    assert len(slices) >= 3
    assert {c for s in slices for c in s} == {(r.tenant_id, r.context_id) for r in rows}
    assert sliced_state == whole_state
    contexts, _, decisions = sliced_state
    assert len(contexts) == 30
    layered = [d for d in decisions if d[2] == RULE_CROSS_LAYER]
    assert len(layered) == len(rows) - 120  # each call billed once, whichever slice decided it
    assert billed_total == context_total


def test_take_removes_at_most_the_first_keys() -> None:
    pending = {("t", f"c{i:02}") for i in range(30)}
    first = take(pending, 10)
    assert first == {("t", f"c{i:02}") for i in range(10)}
    assert len(pending) == 20 and not first & pending
    assert take(pending, 50) == {("t", f"c{i:02}") for i in range(10, 30)}
    assert pending == set()
    hours = {("b", 2), ("a", 3), ("c", 1)}
    assert take(hours, 2, lambda k: (k[1], k[0])) == {("c", 1), ("b", 2)}


def keys_of(traces: range, at: datetime) -> DecisionKeys:
    """Decision keys of one call per trace, each with a response ID and a bucket."""
    keys = DecisionKeys()
    for i in traces:
        keys.add(f"{i:032x}", "acme", f"resp-{i}", "svc", 100 + i, at + timedelta(seconds=i), 500.0)
    return keys


def test_pending_decisions_keep_a_write_s_keys_together_up_to_the_bound() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    pending = PendingDecisions(10)
    pending.add(keys_of(range(0, 4), at))
    pending.add(keys_of(range(4, 8), at))  # packed with the first: 8 traces
    pending.add(keys_of(range(8, 12), at))  # would make 12: a group of its own
    assert pending.slices() == 2
    first = pending.take()
    assert first.traces == {f"{i:032x}" for i in range(8)}
    assert first.response_ids == {("acme", f"resp-{i}") for i in range(8)}
    pending.put_back(first)  # a failed pass: first in line again
    assert pending.take().traces == first.traces
    assert pending.take().traces == {f"{i:032x}" for i in range(8, 12)}
    assert not pending and pending.take().traces == set()


def test_a_group_beyond_the_bound_is_taken_by_its_traces_alone() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    pending = PendingDecisions(10)
    pending.add(keys_of(range(25), at))
    assert pending.slices() == 3
    parts = [pending.take() for _ in range(3)]
    assert not pending
    assert [len(p.traces) for p in parts] == [10, 10, 5]
    assert set().union(*(p.traces for p in parts)) == {f"{i:032x}" for i in range(25)}
    # the response IDs and buckets are reached through their calls' traces; the window is kept
    assert all(not p.response_ids and not p.buckets for p in parts)
    assert all((p.earliest, p.latest) == (at, at + timedelta(seconds=24)) for p in parts)


def test_the_ledger_merges_one_column_at_a_time(database_pool: DatabasePool) -> None:
    """Migration 140: a merge of the ledger's parts holds a column at a time, whatever their size."""
    with database_pool.store() as store:
        for table in ("llm_calls", "context_steps"):
            _, _, rows = store.query(
                "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                {"db": store.database, "t": table},
            )
            assert "vertical_merge_algorithm_min_rows_to_activate = 1" in rows[0][0]
            assert "vertical_merge_algorithm_min_columns_to_activate = 1" in rows[0][0]
