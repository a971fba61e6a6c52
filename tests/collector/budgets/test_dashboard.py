"""dashboards/budgets.json over seeded budget_events: the panels' numbers, as Grafana would query them
(variables and macros expanded by tests/test_dashboards.py's expander, readonly=2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import seed_budget_events
from tests.stores import DatabasePool
from tests.test_dashboards import ALL, TimeRange, grafana_sql
from tokenbook.collector.storage.store import Store

BOARD_PATH = Path(__file__).resolve().parents[3] / "dashboards" / "budgets.json"
NOW = datetime.now(UTC).replace(microsecond=0)
RANGE = TimeRange(NOW.replace(day=1, hour=0, minute=0, second=0), NOW + timedelta(hours=1), interval_s=3600)


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        events = seed_budget_events(s, NOW)
        seed_budget_events(s, NOW)  # re-sent events replace their rows (same event_id)
        assert len(events) == 5
        yield s


def panel(store: Store, title: str, tenant: Any = ALL) -> list[dict[str, Any]]:
    board = json.loads(BOARD_PATH.read_text(encoding="utf-8"))
    (p,) = [p for p in board["panels"] if p["title"] == title]
    selection = {"database": [store.database], "tenant": tenant}
    sql = grafana_sql(p["targets"][0]["rawSql"], board, selection, RANGE)
    columns, _, rows = store.query(sql, settings={"readonly": 2})
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_crossings_are_counted_once_per_event(store: Store) -> None:
    assert panel(store, "Crossings in range") == [{"at_risk": 2, "over_budget": 2, "breaker_trips": 1}]
    assert panel(store, "Crossings in range", ["globex"]) == [
        {"at_risk": 1, "over_budget": 0, "breaker_trips": 0}
    ]
    series = panel(store, "Crossings over time")
    assert sum(r["crossings"] for r in series) == 5


def test_top_consumers_against_their_quota(store: Store) -> None:
    rows = panel(store, "Top consumers against their quota")
    assert [(r["rule"], r["subject"], r["state"]) for r in rows] == [
        ("session-cap", "tenant=acme, context=ticket-1", "over_budget"),
        ("monthly-tokens", "tenant=acme", "over_budget"),
        ("monthly-tokens", "tenant=globex", "at_risk"),
    ]
    acme = rows[1]
    assert (acme["used_tokens"], acme["limit_tokens"], acme["tokens_pct"]) == (10_050, 10_000, 100.5)
    assert acme["used_cost"] == Decimal("0.125") and acme["cost_pct"] == Decimal("12.5")


def test_current_states_and_over_budget_counts(store: Store) -> None:
    states = {(r["rule"], r["subject"]): r["state"] for r in panel(store, "Current states")}
    assert states[("monthly-tokens", "tenant=acme")] == "over_budget"  # the latest crossing wins
    assert states[("breaker", "tenant=acme")] == "tripped"
    assert panel(store, "Subjects over budget now") == [{"hard": 1, "soft": 1}]
    assert panel(store, "Tenants tripped now") == [{"tripped": 0}]  # its cool-down is over
