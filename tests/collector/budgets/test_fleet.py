"""Fleet-wide counters: two evaluators sharing one ClickHouse (embedded, or the HTTP test server) agree
on the fleet's totals after a reconciliation, count a span re-sent to the other collector once, count
their accepted-but-unstored calls once, and deliver each crossing once (alert claims)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import call
from tokenbook.collector.budgets import BudgetsConfig, parse_budgets
from tokenbook.collector.budgets.evaluator import BudgetEvaluator
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.budgets.fleet import EventClaims, FleetSync
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, chdb_dir: Path) -> Iterator[Store]:
    database = f"fleet_{uuid.uuid4().hex[:10]}"
    if request.param == "server":
        s = Store.open(request.getfixturevalue("clickhouse_url"), database=database)
    else:
        s = Store.open(data_dir=chdb_dir, database=database)
    s.migrate()
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
    s.close()


def config() -> BudgetsConfig:
    raw: dict[str, Any] = {
        "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 1000}, "enforcement": "hard"}],
        "budgets": [{"name": "session", "limit": {"tokens": 400}}],
    }
    cfg, problems = parse_budgets(raw)
    assert problems == []
    return cfg


class Collector:
    """One collector's budgets: an evaluator, its fleet sync and what it published."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[BudgetEvent] = []
        self.evaluator = BudgetEvaluator(config(), publish=self.events.append, clock=lambda: NOW.timestamp())
        self.fleet = FleetSync(self.evaluator, 2.0, clock=lambda: NOW.timestamp())

    def accept(self, calls: list[CallRow]) -> None:
        self.evaluator.observe(calls)
        self.fleet.note(calls)

    def store_calls(self, calls: list[CallRow]) -> None:
        self.store.write(calls, [])

    def tokens(self, rule: str = "daily", **query: str) -> int:
        doc = self.evaluator.status({"tenant": "acme", **query})
        (entry,) = [e for e in doc["quotas"] + doc["budgets"] if e["rule"] == rule]
        used: int = entry["used"]["tokens"]
        return used


def calls(prefix: str, n: int, context: str = "ctx-1") -> list[CallRow]:
    return [call(NOW - timedelta(seconds=i), f"{prefix}{i:015x}", context=context) for i in range(n)]


def test_counters_converge_on_the_fleet_total_and_each_span_counts_once(store: Store) -> None:
    a, b = Collector(store), Collector(store)
    mine, theirs = calls("a", 4), calls("b", 3)  # 600 and 450 tokens
    a.accept(mine)
    a.store_calls(mine)
    b.accept(theirs)
    b.store_calls(theirs[:2])  # the third is accepted by b, not stored yet
    assert (a.tokens(), b.tokens()) == (600, 450)
    a.fleet.sync(store)
    b.fleet.sync(store)
    # a sees b's two stored calls (not the unstored one); b counts its unstored call from memory
    assert (a.tokens(), b.tokens()) == (900, 1050)
    assert [(e.rule, e.state) for e in b.events] == [("session", "over_budget"), ("daily", "over_budget")]
    assert [(e.rule, e.state) for e in a.events] == [("session", "over_budget"), ("daily", "at_risk")]
    b.store_calls(theirs[2:])
    a.fleet.sync(store)
    result = b.fleet.sync(store)
    assert (a.tokens(), b.tokens()) == (1050, 1050)
    assert result.remembered == 0  # every remembered span is stored: counted from the ledger now
    assert a.tokens("session", context="ctx-1") == b.tokens("session", context="ctx-1") == 1050
    # a span that a stored reaches b (a re-send to another collector): b counts it live, then once
    resent = mine[0]._replace(version=5)
    b.accept([resent])
    assert b.tokens() == 1200
    b.store_calls([resent])
    b.fleet.sync(store)
    a.fleet.sync(store)
    assert (a.tokens(), b.tokens()) == (1050, 1050)
    b.fleet.sync(store)  # forgotten from memory now: the ledger counts it once
    assert b.tokens() == 1050
    assert [(e.rule, e.state) for e in a.events][2:] == [("daily", "over_budget")]


def test_each_crossing_is_delivered_by_one_collector(store: Store) -> None:
    a, b = Collector(store), Collector(store)
    mine = calls("a", 7)
    a.accept(mine)
    a.store_calls(mine)
    b.fleet.sync(store)
    (event,) = [e for e in b.events if (e.rule, e.state) == ("daily", "over_budget")]
    (same,) = [e for e in a.events if (e.rule, e.state) == ("daily", "over_budget")]
    assert event.event_id == same.event_id
    claims_a = EventClaims(store, "collector-a", sleep=lambda _: None)
    claims_b = EventClaims(store, "collector-b", sleep=lambda _: None)
    won_b = claims_b.claim([event])
    won_a = claims_a.claim([same])
    assert (len(won_a), len(won_b)) == (0, 1)  # b claimed first
    assert claims_a.claim([same]) == [] and claims_b.claim([event]) == [event]
