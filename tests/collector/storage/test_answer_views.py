"""The answer views of migration 010 on the real embedded engine, against sums computed in Python."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.cli.seed_store import make_calls, make_steps
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.store import Store


@pytest.fixture
def store(database_pool):
    with database_pool.store() as s:
        yield s


def _priced(row: CallRow, cost: str, when: datetime, span: str) -> CallRow:
    c = Decimal(cost)
    return row._replace(
        timestamp=when, span_id=span, input_cost=c, output_cost=Decimal(0), cache_read_cost=Decimal(0),
        cache_write_cost=Decimal(0), total_cost=c, price_status="priced", model="gpt-4o", provider="openai",
    )  # fmt: skip


def _rows(store: Store, view: str) -> list[dict[str, Any]]:
    columns, _, rows = store.query(f"SELECT * FROM {store.database}.{view}")
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_daily_spend_anomaly_and_forecast(store: Store) -> None:
    template = make_calls(1)[0]._replace(tenant_id="acme", context_id="acme-ctx")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    calls = [
        _priced(template, "1.000000000001", today - timedelta(days=d), f"d{d:015d}") for d in range(1, 12)
    ]
    spike = _priced(template, "9.5", today - timedelta(days=0) + timedelta(minutes=1), "spike00000000000")
    calls.append(spike)
    store.write(calls, [])
    store.write([*calls[:5], spike], [])  # a re-delivery changes nothing
    store.refresh_aggregates()

    daily = {(r["day"], r["tenant_id"]): r["total_cost"] for r in _rows(store, "v_tenant_daily")}
    assert daily[(today.date(), "acme")] == Decimal("9.5")
    assert daily[((today - timedelta(days=3)).date(), "acme")] == Decimal("1.000000000001")

    anomalies = _rows(store, "v_spend_anomalies")
    assert [(a["day"], a["tenant_id"]) for a in anomalies] == [(today.date(), "acme")]
    assert anomalies[0]["baseline"] == Decimal("1.000000000001")

    (forecast,) = _rows(store, "v_month_forecast")
    first = today.replace(day=1)
    mtd = sum((c.total_cost for c in calls if c.timestamp >= first and c.total_cost is not None), Decimal(0))
    assert forecast["month_to_date"] == mtd
    next_month = (first + timedelta(days=32)).replace(day=1)
    elapsed = Decimal((datetime.now(UTC) - first).total_seconds())
    expected = mtd * Decimal((next_month - first).total_seconds()) / elapsed
    assert abs(forecast["forecast"] - expected) <= expected * Decimal("1e-4")  # queried a moment apart
    assert abs(
        forecast["daily_run_rate"] * Decimal((next_month - first).days) - forecast["forecast"]
    ) < Decimal("1e-6")


def test_cache_savings_outcomes_unpriced_and_efficiency(store: Store) -> None:
    calls = make_calls(120, seed=3)
    steps = make_steps(calls)
    store.write(calls, steps)
    store.write(calls[::2], steps[::2])  # re-delivered
    store.refresh_aggregates()

    unpriced = _rows(store, "v_unpriced_calls")
    assert len(unpriced) == sum(c.price_status == "unpriced" for c in calls)

    savings: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
    for c in calls:
        uncached = c.input_tokens - c.cache_read_tokens - c.cache_write_tokens
        if c.price_status == "priced" and c.cache_read_tokens and uncached > 0:
            assert c.input_cost is not None and c.cache_read_cost is not None
            rate = (c.input_cost / uncached).quantize(Decimal("1e-12"))  # what Decimal(38,12) keeps
            savings[(c.timestamp.date(), c.tenant_id, c.model)] += (
                c.cache_read_tokens * rate - c.cache_read_cost
            )
    got = {
        (r["day"], r["tenant_id"], r["model"]): r["saved_by_prompt_cache"]
        for r in _rows(store, "v_cache_savings")
    }
    for key, value in savings.items():
        assert abs(got[key] - value) < Decimal("1e-6"), key

    outcomes = _rows(store, "v_outcome_costs")
    assert {r["outcome"] for r in outcomes} == {"resolved"}
    assert sum(r["contexts"] for r in outcomes) == len({(c.tenant_id, c.context_id) for c in calls})

    eff = _rows(store, "v_token_efficiency")
    assert sum(r["input_tokens"] for r in eff) == sum(c.input_tokens for c in calls)
    assert sum(r["calls"] for r in eff) == len(calls)
