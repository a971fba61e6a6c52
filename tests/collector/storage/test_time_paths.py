"""Reads that select calls by time (the report's partial hours, the decision pass's candidates) go
through the ledger's time-ordered projection and stay exactly equal to the deduplicated ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.cli.seed_store import base_time, make_calls
from tests.stores import DatabasePool
from tokenbook.cli.reports import rollup_window
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

PROJECTION = "ReadFromMergeTree (p_by_time)"


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def _explain(store: Store, name: str, params: dict[str, Any]) -> str:
    """The plan of query `name` with a projection required (on a table this small the engine would
    read the ledger instead: the projection's marks are no fewer); fails if it cannot use one."""
    prefer = {"force_optimize_projection": 1, "preferred_optimize_projection_name": "p_by_time"}
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
    }  # fmt: skip
    plan = _explain(store, "decision_candidates.sql", params)
    assert PROJECTION in plan
