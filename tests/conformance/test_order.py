"""Order independence: however the spans of a call arrive (any order, one request each, a collector
restart in between), every total agrees and bills each call once: v_calls, the ledger totals, the
context and hourly aggregates, and the budget counters (fed `observe` at ingest and the decisions)."""

from __future__ import annotations

import itertools
import random
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import decode_fixture, true_cost
from tokenbook.collector.budgets import BudgetEvaluator, parse_budgets
from tokenbook.collector.decode.spans import SpanRecord
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.collector.storage.store import Store
from tokenbook.genai.pricing.catalog import PriceCatalog

SCENARIOS = {
    # a wrapper over a framework span over the client library's span of the same call
    "agents": "openinference-instrumentation-openai-agents-2.6.0-agent_tool",
    # a call recorded twice in separate traces, matched across layers (no shared ID)
    "langchain": "openinference-instrumentation-langchain-0.1.80-chain",
    # a call recorded twice in separate traces with the same response ID; one layer's output is +1
    "same_id": "opentelemetry-instrumentation-anthropic-0.62.4-messages_stream",
    # the SDK's span is a child of the instrumentor's
    "parent_child": "opentelemetry-instrumentation-genai-anthropic-1.3b0-messages",
}
CATALOG = PriceCatalog()


@pytest.fixture(scope="module")
def db(chdb_dir: Path) -> tuple[Path, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with Store.open(data_dir=chdb_dir, database=name) as s:
        s.migrate()
    return chdb_dir, name


def _spans(fixture: dict[str, Any], tenant: str) -> list[SpanRecord]:
    return [r for batch in decode_fixture(fixture, tenant) for r in batch]


def _orders(spans: list[SpanRecord], count: int, seed: int) -> list[list[SpanRecord]]:
    if len(spans) <= 4:
        return [list(p) for p in itertools.permutations(spans)]
    rng = random.Random(seed)
    orders = [spans[::-1], sorted(spans, key=lambda r: r.end_ns), sorted(spans, key=lambda r: -r.end_ns)]
    while len(orders) < count:
        orders.append(rng.sample(spans, len(spans)))
    return orders


def _totals(store: Store, tenant: str) -> dict[str, Any]:
    q = store.query
    p = {"t": tenant}
    calls = q("SELECT count(), sum(total_cost) FROM v_calls WHERE tenant_id = {t:String}", p)[2][0]
    contexts = q("SELECT sum(calls), sum(total_cost) FROM v_context_costs WHERE tenant_id = {t:String}", p)[
        2
    ][0]
    hourly = q("SELECT sum(calls), sum(total_cost) FROM v_cost_hourly WHERE tenant_id = {t:String}", p)[2][0]
    return {"v_calls": tuple(calls), "context_costs": tuple(contexts), "cost_hourly": tuple(hourly)}


def _budget() -> BudgetEvaluator:
    config, problems = parse_budgets({"budgets": [{"name": "per-context", "limit": {"cost": "1000"}}]})
    assert problems == []
    return BudgetEvaluator(config, publish=lambda e: None)


def _budget_cost(ev: BudgetEvaluator) -> Decimal:
    return sum((c.cost for c in ev._counters.values()), Decimal(0))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_order_with_a_restart_gives_the_same_totals(db: tuple[Path, str], scenario: str) -> None:
    data_dir, database = db
    fixture = load(FIXTURES / f"{SCENARIOS[scenario]}.json")
    probe = _spans(fixture, "probe")
    start_ns = min(r.start_ns for r in probe)
    truth = sum((true_cost(c, start_ns) or Decimal(0)) for c in fixture["true_calls"])
    n = len(fixture["true_calls"])
    expected = {"v_calls": (n, truth), "context_costs": (n, truth), "cost_hourly": (n, truth)}
    for i, order in enumerate(_orders(probe, 4, seed=len(probe))):
        tenant = f"{scenario}-{i}"
        spans = {(r.trace_id, r.span_id): r for r in _spans(fixture, tenant)}
        requests = [[spans[(r.trace_id, r.span_id)]] for r in order]  # one span per request
        restart = (i * 3 + 1) % len(requests)
        budget = _budget()
        for session in (requests[:restart], requests[restart:]):  # a new process: builder and store
            store = Store.open(data_dir=data_dir, database=database)
            store.on_decisions = budget.apply_decisions
            builder = RowBuilder(CATALOG)
            for request in session:
                batch = builder.build(request)
                store.write(batch.calls, batch.steps)
                budget.observe(batch.calls)
                store.refresh_aggregates()
            store.close()
        with Store.open(data_dir=data_dir, database=database) as store:
            got = _totals(store, tenant)
        assert got == expected, (scenario, [f"{r.name}" for r in order], restart)
        assert _budget_cost(budget) == truth, (scenario, i)
