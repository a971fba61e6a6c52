"""Reads that select calls by time (the report's partial hours, the decision pass's candidates) go
through the ledger's time-ordered projection and stay exactly equal to the deduplicated ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.cli.seed_store import base_time, make_calls, reads_at_most, write_busy_day
from tests.stores import DatabasePool
from tokenbook.cli.reports import rollup_window
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

PROJECTION = "ReadFromMergeTree (p_calls_by_time)"


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def _explain(store: Store, name: str, params: dict[str, Any]) -> str:
    """The plan of query `name` with a projection required (on a table this small the engine would
    read the ledger instead: the projection's marks are no fewer); fails if it cannot use one."""
    prefer = {"force_optimize_projection": 1, "preferred_optimize_projection_name": "p_calls_by_time"}
    _, _, rows = store.query("EXPLAIN " + render_query(name, store.database), params, settings=prefer)
    return "\n".join(r[0] for r in rows)


def _redelivered(calls: list[CallRow], since: datetime, until: datetime) -> list[CallRow]:
    """New versions of the calls in the window's partial hours: re-priced (costs doubled), un-billed
    by another layer, or the same row again (a plain re-delivery)."""
    out = []
    for i, c in enumerate(
        x for x in calls if since - timedelta(hours=1) < x.timestamp < until + timedelta(hours=1)
    ):
        if i % 3 == 0 and c.total_cost is not None:
            assert c.input_cost is not None and c.output_cost is not None and c.cache_read_cost is not None
            out.append(
                c._replace(
                    input_cost=c.input_cost * 2, output_cost=c.output_cost * 2,
                    cache_read_cost=c.cache_read_cost * 2, total_cost=c.total_cost * 2,
                    billed_cost=c.total_cost * 2, version=c.version + 10,
                )
            )  # fmt: skip
        elif i % 3 == 1:
            out.append(c._replace(price_status="duplicate_layer", version=c.version + 10))
        else:
            out.append(c)
    return out


@pytest.mark.parametrize("by", ["tenant", "model", "project"])
def test_report_partial_hours_equal_the_ledger_after_redelivered_versions(store: Store, by: str) -> None:
    """`report --by` over a window starting and ending mid-hour: the edges come from the time-ordered
    projection, keep the newest version of each re-delivered span, and the report equals v_calls over
    the window exactly, before and after the parts (and their projections) are merged."""
    base = base_time()
    calls = make_calls(240, base=base)
    store.write(calls, [])
    since, until = base + timedelta(minutes=37, seconds=13), base + timedelta(hours=3, minutes=21)
    store.write(_redelivered(calls, since, until), [])
    store.refresh_aggregates()
    whole_since, whole_until = rollup_window(since, until)
    assert (whole_since, whole_until) == (base + timedelta(hours=1), base + timedelta(hours=3))
    source = {"tenant": "tenant", "model": "model"}.get(by, "hourly")
    params = {"since": since, "until": until, "tenant": "", "by": by, "by_day": 0}
    rollup = {**params, "source": source, "whole_since": whole_since, "whole_until": whole_until}
    _, _, expected = store.query(render_query("report_by.sql", store.database), params)
    assert sum(r[-1] or Decimal(0) for r in expected) > 0
    for _ in ("as written", "merged"):
        _, _, got = store.query(render_query("report_rollup.sql", store.database), rollup)
        assert sorted(got) == sorted(expected)
        assert PROJECTION in _explain(store, "report_rollup.sql", rollup)
        store.command(f"OPTIMIZE TABLE {store.database}.llm_calls FINAL")


def test_the_decision_pass_reads_its_candidates_by_time(store: Store) -> None:
    """The candidate query reads the time-ordered projection (a window of time, not month partitions)."""
    base = base_time()
    store.write(make_calls(12, base=base), [])
    params = {
        "since": base - timedelta(days=1), "until": base + timedelta(days=1), "traces": [f"{0:032x}"],
        "near_since": base - timedelta(hours=1), "near_until": base + timedelta(hours=1),
        "response_ids": [], "inputs": [100], "instances": ["svc"], "bucket_from": base, "bucket_to": base,
        "lone_instances": ["svc"],
        "stretches": [(base, base)],
    }  # fmt: skip
    plan = _explain(store, "decision_candidates.sql", params)
    assert PROJECTION in plan


def _hourly(store: Store, hour: datetime, tenant: str) -> tuple[list[Any], list[Any]]:
    """A tenant's billed calls of `hour` per model, as `cost_hourly` holds them and as `v_calls` (the
    deduplicated ledger, read with FINAL) counts them."""
    figures = "sum(input_tokens), sum(output_tokens), sum(total_cost), sum(billed_cost)"
    params = {"h": hour, "t": tenant}
    _, _, rolled = store.query(
        f"SELECT model, currency, sum(calls), sum(unpriced_calls), {figures} FROM cost_hourly FINAL"
        " WHERE hour = {h:DateTime('UTC')} AND tenant_id = {t:String}"
        " GROUP BY model, currency HAVING sum(calls) > 0 ORDER BY ALL",
        params,
    )
    _, _, ledger = store.query(
        f"SELECT model, currency, count(), countIf(price_status = 'unpriced'), {figures} FROM v_calls"
        " WHERE toStartOfHour(timestamp) = {h:DateTime('UTC')} AND tenant_id = {t:String}"
        " GROUP BY model, currency ORDER BY ALL",
        params,
    )
    return rolled, ledger


def test_an_hour_is_recomputed_from_its_calls_not_the_tenants_month(store: Store) -> None:
    """A tenant with 60,000 calls over 20 days: recomputing one hour of `cost_hourly` reads that hour's
    calls, not the tenant's month (the ledger is sorted by tenant and context, not time): the statement
    reads at most 20,000 rows (whole granules of 8,192), and its figures are the deduplicated
    ledger's, after the hour's calls were re-delivered, re-priced and un-billed in new versions."""
    base = base_time()
    write_busy_day(store, 60_000, base + timedelta(hours=4), tenants=1, days=20)
    calls = [c._replace(tenant_id="busy-0") for c in make_calls(60, base=base)]
    store.write(calls, [])
    store.write(_redelivered(calls, base, base + timedelta(hours=4)), [])
    store.refresh_aggregates()
    rolled, ledger = _hourly(store, base, "busy-0")  # (the 60 calls' hour)
    assert rolled == ledger and len(ledger) > 1
    store.command(f"TRUNCATE TABLE {store.database}.cost_hourly")
    params = {"tenants": ["busy-0"], "hours": [base], "since": base, "until": base + timedelta(hours=1)}
    sql = render_query("refresh_cost_hourly.sql", store.database)
    store.command(sql, params, settings=reads_at_most(20_000))
    assert _hourly(store, base, "busy-0") == (ledger, ledger)
