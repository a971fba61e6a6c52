"""A rule's subject and match as ledger columns (collector/budgets/columns.py): counters read from the
ledger, at a restart and by a fleet reconciliation, equal the counters of the same calls counted in
memory, for every attribute key, a tag key that is no identifier, no `per` at all, re-delivered and
re-priced versions, unpriced calls and the layers another span bills."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import call, inside_the_day
from tokenbook.collector.budgets import BudgetsConfig, parse_budgets
from tokenbook.collector.budgets.columns import RuleColumns
from tokenbook.collector.budgets.evaluator import BudgetEvaluator
from tokenbook.collector.budgets.fleet import FleetSync
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

NOW = inside_the_day()
TAG = "cost'center]"  # a tag key is a bound parameter, never text of a statement
UNLIMITED = {"tokens": 10**12, "cost": "1000000"}


def ignore(_: object) -> None:
    pass


class Clock:
    def __call__(self) -> float:
        return NOW.timestamp()


def config() -> BudgetsConfig:
    raw: dict[str, Any] = {
        "quotas": [
            {
                "name": "per-user-and-tag",
                "window": "1d",
                "limit": UNLIMITED,
                "per": ["tenant", "user", f"tags.{TAG}"],
                "match": {"team": "team-a"},
            },
            {
                "name": "per-attribution",
                "window": "1d",
                "limit": UNLIMITED,
                "per": ["project", "team", "feature", "service"],
                "match": {f"tags.{TAG}": "cc-0", "tenant": "acme"},
            },
            {"name": "everything", "window": "1d", "limit": UNLIMITED, "per": []},
        ],
        "budgets": [
            {"name": "every-context", "limit": UNLIMITED},
            {"name": "tagged", "limit": UNLIMITED, "match": {"user": "bob", f"tags.{TAG}": "cc-0"}},
        ],
    }
    cfg, problems = parse_budgets(raw)
    assert problems == []
    return cfg


def calls() -> list[CallRow]:
    """60 calls over every attribute; every fifth unpriced, two layers another span bills."""
    rows = []
    for i in range(60):
        at = NOW - timedelta(seconds=i)
        rows.append(
            call(
                at,
                f"{i:016x}",
                tenant=("acme", "globex")[i % 2],
                context=f"c{i % 3}",
                priced=i % 5 != 0,
                user_id=("alice", "bob", "")[i % 3],
                project_id=("support", "search")[i % 4 // 2],
                team_id=("team-a", "team-b", "team-a")[i % 3],
                feature=("chat", "rag")[i % 2],
                service_name=("svc", "batch")[i % 7 // 4],
                tags={TAG: f"cc-{i % 2}", "env": "prod"} if i % 4 else {},
                tokens=(100 + i, 10 + i),
            )
        )
    rows[7] = rows[7]._replace(price_status="wrapper")
    rows[8] = rows[8]._replace(price_status="duplicate_layer")
    return rows


def counters(evaluator: BudgetEvaluator) -> list[tuple[Any, ...]]:
    """(rule, subject, tokens, cost, unpriced calls) of every counter of the current windows."""
    doc = evaluator.states(limit=10_000)
    entries = doc["quotas"] + doc["budgets"]
    return sorted(
        (e["rule"], sorted(e["subject"].items()), e["used"]["tokens"], Decimal(e["used"]["cost"]), unpriced)
        for e in entries
        for unpriced in [e["unpriced_calls"]]
    )


def test_counters_read_from_the_ledger_equal_the_calls_counted_in_memory(store: Store) -> None:
    rows = calls()
    repriced = rows[11]._replace(version=2, input_tokens=900, ingested_at=NOW)
    store.write(rows, [])
    store.write(rows[:20], [])  # re-delivered: counted once
    store.write([repriced], [])  # the newest version counts
    newest = [repriced if r.span_id == repriced.span_id else r for r in rows]
    in_memory = BudgetEvaluator(config(), publish=ignore, clock=Clock())
    in_memory.observe(newest)
    expected = counters(in_memory)
    assert len(expected) > 10 and any(used > 0 for *_, used in expected)  # unpriced calls are counted

    restarted = BudgetEvaluator(config(), publish=ignore, clock=Clock())
    restarted.rebuild(store)
    assert counters(restarted) == expected

    fleet = BudgetEvaluator(config(), publish=ignore, clock=Clock(), fleet=True)
    FleetSync(fleet, 2.0, clock=Clock()).sync(store)
    assert counters(fleet) == expected


def test_a_tag_key_is_bound_not_written_into_the_statement() -> None:
    rule = config().rules[0]
    columns = RuleColumns.of(rule)
    assert TAG not in columns.subject + columns.match + columns.subject_is
    assert TAG in columns.parameters.values() and "team-a" in columns.parameters.values()


def test_a_usage_statement_needs_the_rules_columns() -> None:
    with pytest.raises(ValueError, match=r"no expression given for '\{\{expr:subject\}\}'"):
        render_query("budgets/quota_usage.sql", "tokenbook")
    sql = RuleColumns.of(config().rules[2]).query("quota_usage.sql", "tokenbook")
    assert "CAST([], 'Array(String)') AS subject" in sql and "{{" not in sql
