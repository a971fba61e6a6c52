"""Drift alerts on the real embedded engine: the provider's imported figures against a ledger that
drifts in known ways; one alert per drifting day x provider x model, beyond the threshold and the
minimums only, recorded in ``budget_events`` like a budget alert and never repeated after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.storage.reconcile_rows import DATA, seed_ledger
from tests.stores import DatabasePool
from tokenbook.collector.budgets.alerts import AlertDispatcher
from tokenbook.collector.budgets.drift import DriftMonitor, ReconcileConfig
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.config import load_config
from tokenbook.collector.storage.provider_exports import read_export
from tokenbook.collector.storage.provider_usage import import_rows
from tokenbook.collector.storage.store import Store
from tokenbook.genai.configspec import load

NOW = datetime(2026, 3, 10, 9, tzinfo=UTC)  # the imported day (2026-03-02) is within the lookback


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        s.write(seed_ledger(), [])
        for name in ("openai_usage_completions.json", "openai_costs.json"):
            import_rows(s, read_export(DATA / name).rows)
        for name in ("anthropic_usage_report.json", "anthropic_cost_report.json"):
            import_rows(s, read_export(DATA / name).rows)
        yield s


def monitor(raw: dict[str, Any], published: list[BudgetEvent]) -> DriftMonitor:
    config, problems = load(ReconcileConfig, raw, "reconcile")
    assert problems == []
    return DriftMonitor(config, publish=published.append, clock=NOW.timestamp)


def test_each_drifting_model_day_alerts_once_with_its_causes(store: Store) -> None:
    published: list[BudgetEvent] = []
    m = monitor({"min_cost": "0.01", "min_tokens": 1000}, published)
    events = m.check(store)
    subjects = {tuple(v for _, v in e.subject): e for e in events}
    assert set(subjects) == {
        ("", "openai", "o4-mini"),  # missing reasoning: output 8,000 vs 5,000
        ("", "openai", "gpt-4o-mini"),  # batch price: half the ledger's cost
        ("", "openai", ""),  # web search, 0.25 USD
        ("", "anthropic", "claude-opus-4-1"),  # never traced
        ("", "anthropic", "claude-sonnet-4-5"),  # cache reads counted as input: 0.21 vs 0.48 USD
        ("", "anthropic", "claude-haiku-3-5"),  # traced, not billed
        ("", "anthropic", ""),  # web search, 0.01 USD
    }
    # gpt-4o's 2 untraced calls are 4.8% of its tokens and cost: within the 5% threshold.
    assert published == events
    mini = subjects[("", "openai", "gpt-4o-mini")]
    assert (mini.kind, mini.rule, mini.state, mini.enforcement) == (
        "reconcile",
        "provider-drift",
        "drift",
        "soft",
    )
    assert (mini.used_tokens, mini.limit_tokens) == (120_000, 120_000)
    assert (mini.used_cost, mini.limit_cost) == (Decimal("0.0135"), Decimal("0.027"))
    assert mini.window_start == datetime(2026, 3, 2, tzinfo=UTC)
    assert "price differences" in mini.message and "0.0135 USD" in mini.message
    body = mini.webhook_body()
    assert body["type"] == "tokenbook.reconcile.drift" and body["subject"]["model"] == "gpt-4o-mini"
    sonnet = subjects[("", "anthropic", "claude-sonnet-4-5")]
    assert "cache tokens not reported" in sonnet.message
    assert subjects[("", "anthropic", "claude-haiku-3-5")].used_tokens == 0
    # The unpriced model's tokens match: its cost is unknown, which alone never alerts.
    assert ("", "anthropic", "claude-haiku-4-5") not in subjects
    # A second check raises nothing new; the gauges say what drifts now.
    assert m.check(store) == [] and len(published) == 7
    metrics = m.prometheus()
    assert 'tokenbook_reconcile_alerts_total{provider="openai"} 3' in metrics
    assert 'tokenbook_reconcile_drifting{provider="anthropic"} 4' in metrics
    assert 'tokenbook_reconcile_cost_drift_usd{provider="openai"} 0.261200000000' in metrics


def test_the_threshold_and_the_minimums_hold_back_small_drifts(store: Store) -> None:
    published: list[BudgetEvent] = []
    # The default minimums (1.00 USD, 10,000 tokens) hold back every drift of this small day.
    assert monitor({}, published).check(store) == []
    # At 0.25 USD: sonnet's cache reads priced as input (0.48 vs 0.21 USD) and OpenAI's web search.
    # Sonnet's tokens add up (cache reads counted as input): only its cost drifts.
    cheap = monitor({"min_cost": "0.25"}, published).check(store)
    assert sorted(tuple(v for _, v in e.subject) for e in cheap) == [
        ("", "anthropic", "claude-sonnet-4-5"),
        ("", "openai", ""),
    ]
    # A 60% threshold: o4-mini's missing reasoning (37.5%) no longer alerts, opus (all untraced) still does.
    lax = monitor({"threshold": 0.6, "min_cost": "0.01", "min_tokens": 1000}, [])
    models = {dict(e.subject)["model"] for e in lax.check(store)}
    assert "o4-mini" not in models and "claude-opus-4-1" in models


def test_alerts_recorded_in_budget_events_are_not_repeated_after_a_restart(store: Store) -> None:
    dispatcher = AlertDispatcher(log=True, webhook=None, store=store)
    first = monitor({"min_cost": "0.01", "min_tokens": 1000}, [])
    for event in first.check(store):
        dispatcher.deliver(event)  # table, log line, counters, on this thread
    _, _, rows = store.query(
        f"SELECT rule, state, subject_values, used_cost FROM {store.database}.v_budget_events "
        "WHERE kind = 'reconcile' ORDER BY subject_values"
    )
    assert len(rows) == 7 and rows[0][:2] == ("provider-drift", "drift")
    assert dispatcher.snapshot()[0] == {("reconcile", "drift"): 7}
    restarted = monitor({"min_cost": "0.01", "min_tokens": 1000}, [])
    assert restarted.check(store) == []


def test_the_reconcile_section_is_validated_with_the_collectors_config(tmp_path: Any) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text("reconcile:\n  threshold: 1.5\n  min_cost: 0.5\n  interval: 0\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert str(err.value).splitlines()[1:] == [
        "  reconcile.threshold: must be a fraction in (0, 1), e.g. 0.05 for 5%, got 1.5",
        "  reconcile.min_cost: must be a decimal string or an integer (never a float: write '12.50'), "
        "got 0.5",
        "  reconcile.interval: must be positive, got 0",
    ]
