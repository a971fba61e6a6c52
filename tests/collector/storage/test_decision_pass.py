"""The decision pass on the real engine: a pass costs what the batch touched, not a busy bucket's day."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.decisions import DecisionKeys, run_pass
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.store import QueryResult, Store
from tokenbook.genai.decisions import RULE_CROSS_LAYER


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


class Counting:
    """The store as the decision pass reads it, counting the rows its queries return."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database
        self.rows = 0

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        result = self.store.query(sql, parameters)
        self.rows += len(result[2])
        return result


def busy_bucket(n: int, start: datetime) -> list[CallRow]:
    """`n` calls of one service with the same input tokens, one a second, each in its own trace."""
    fields: dict[str, Any] = dict(
        tenant_id="acme", service_instance="svc-1", input_tokens=100, scope_name="openai",
        duration_ms=500.0, response_id="", price_status="priced", quote_status="priced",
    )  # fmt: skip
    return [
        c._replace(**fields, timestamp=start + timedelta(seconds=i), trace_id=f"{i + 1:032x}")
        for i, c in enumerate(make_calls(n, base=start))
    ]


def test_a_pass_reads_the_calls_that_meet_the_batch_not_the_whole_bucket(store: Store) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls = busy_bucket(2_001, start)
    store.write(calls[:2_000], [])
    store.refresh_aggregates()
    keys = DecisionKeys()
    keys.add_call(calls[2_000])
    store.write(calls[2_000:], [])
    source = Counting(store)
    changes, pending = run_pass(source, keys)
    assert (changes, bool(pending)) == ([], False)
    assert source.rows <= 3  # the new call (and its neighbours' links), not the bucket's 2,001 calls


def test_layers_of_one_call_written_apart_are_still_one_call(store: Store) -> None:
    """Among 1,000 calls of the same bucket, a client library's span and the SDK's span of the same
    call arrive in separate batches, the containing one last: the pass relates them."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls = busy_bucket(1_000, start)
    inner = calls[500]
    outer = inner._replace(
        span_id="f" * 16, trace_id="e" * 32, scope_name="opentelemetry.instrumentation.openai",
        timestamp=inner.timestamp - timedelta(milliseconds=20), duration_ms=540.0,
    )  # fmt: skip
    store.write(calls, [])
    store.refresh_aggregates()
    store.write([outer], [])
    store.refresh_aggregates()
    _, _, rows = store.query(
        "SELECT span_id, price_status, billing_rule, billed_by FROM llm_calls FINAL"
        " WHERE span_id IN {s:Array(String)}",
        {"s": [inner.span_id, outer.span_id]},
    )
    decided = {r[0]: r[1:] for r in rows}
    billed = [s for s, (status, rule, _) in decided.items() if rule == ""]
    assert len(billed) == 1
    (other,) = set(decided) - set(billed)
    assert decided[other] == ("duplicate_layer", RULE_CROSS_LAYER, billed[0])
    _, _, totals = store.query("SELECT count() FROM v_calls")
    assert totals[0][0] == 1_000


class Reordered(Counting):
    """The store as a server whose ``llm_calls`` lists its columns in another order."""

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        columns, types, rows = super().query(sql, parameters)
        return columns[::-1], types[::-1], [tuple(r)[::-1] for r in rows]


def test_a_pass_reads_rows_by_column_name_whatever_the_column_order(store: Store) -> None:
    """The same decisions whether the engine returns the columns in the row's order or another."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    inner = busy_bucket(1, start)[0]
    outer = inner._replace(
        span_id="f" * 16, trace_id="e" * 32, scope_name="opentelemetry.instrumentation.openai",
        timestamp=inner.timestamp - timedelta(milliseconds=20), duration_ms=540.0,
    )  # fmt: skip
    store.write([inner, outer], [])
    keys = DecisionKeys()
    for c in (inner, outer):
        keys.add_call(c)
    # (before, after) per changed call; the new version is the pass's clock
    in_order = [(old, new._replace(version=0)) for old, new in run_pass(Counting(store), keys)[0]]
    reordered = [(old, new._replace(version=0)) for old, new in run_pass(Reordered(store), keys)[0]]
    assert len(in_order) == 1 and in_order[0][1].billing_rule == RULE_CROSS_LAYER
    assert reordered == in_order
