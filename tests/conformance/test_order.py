"""Order independence: however the spans of a call arrive (any order, one request each, a collector
restart in between), every total agrees and bills each call once: v_calls, the ledger totals, the
context and hourly aggregates, and the budget counters (fed `observe` at ingest and the decisions)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import decode_fixture, true_cost
from tests.stores import DatabasePool
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
def db(chdb_dir: Path, database_pool: DatabasePool) -> Iterator[tuple[Path, str]]:
    with database_pool.database() as name:
        yield chdb_dir, name


def _spans(fixture: dict[str, Any], tenant: str) -> list[SpanRecord]:
    return [r for batch in decode_fixture(fixture, tenant) for r in batch]


def _orders(spans: list[SpanRecord], seed: int) -> list[list[int]]:
    """Every arrival order tried, as positions in `spans`; `_default_orders` says which run by default.

    Up to 4 spans: every permutation. More: the reverse, by end time both ways, a seeded random order,
    then every rotation (each span first and each span last) and more random ones."""
    n = len(spans)
    if n <= 4:
        return [list(p) for p in itertools.permutations(range(n))]
    rng = random.Random(seed)
    by_end = sorted(range(n), key=lambda i: spans[i].end_ns)
    orders = [list(range(n))[::-1], by_end, by_end[::-1], rng.sample(range(n), n)]
    orders += [[(k + i) % n for i in range(n)] for k in range(n)]
    orders += [rng.sample(range(n), n) for _ in range(4)]
    return orders


def _default_orders(orders: list[list[int]], n: int, turn: int) -> list[int]:
    """The orders run without `--all-orders` (indices into `orders`): up to 4 spans, a covering set:
    the identity and the reverse (every pair of spans arrives both ways), every rotation (every span
    first and every span last), two seeded random ones, at the restart positions their indices give;
    more spans: one order by end time, the directions taking turns over those scenarios (`turn`: the
    scenario's place among them): the order spans are exported in (children first), then its reverse
    (parents first), and so on. Both directions for every scenario, the reverse of the recording and
    the random orders run with `--all-orders`."""
    if n > 4:
        return [1 + turn % 2]
    rng = random.Random(n)
    wanted = [list(range(n)), list(range(n))[::-1]]
    wanted += [[(k + i) % n for i in range(n)] for k in range(1, n)]
    wanted += [rng.sample(range(n), n) for _ in range(2)]
    return sorted({orders.index(order) for order in wanted})


def _cases(all_orders: bool) -> list[tuple[str, int]]:
    """(scenario, index of the arrival order) of every test case."""
    cases = []
    longer = 0  # scenarios of more than 4 spans so far
    for scenario in sorted(SCENARIOS):
        spans = _spans(load(FIXTURES / f"{SCENARIOS[scenario]}.json"), "probe")
        orders = _orders(spans, seed=len(spans))
        chosen = range(len(orders)) if all_orders else _default_orders(orders, len(spans), longer)
        longer += len(spans) > 4
        cases += [(scenario, i) for i in chosen]
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test case per (scenario, order), so that pytest-xdist spreads them over its workers."""
    if {"scenario", "order"} <= set(metafunc.fixturenames):
        cases = _cases(bool(metafunc.config.getoption("all_orders")))
        metafunc.parametrize(("scenario", "order"), cases, ids=[f"{s}-{i}" for s, i in cases])


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


def test_every_order_with_a_restart_gives_the_same_totals(
    db: tuple[Path, str], scenario: str, order: int
) -> None:
    data_dir, database = db
    fixture = load(FIXTURES / f"{SCENARIOS[scenario]}.json")
    probe = _spans(fixture, "probe")
    start_ns = min(r.start_ns for r in probe)
    truth = sum((true_cost(c, start_ns) or Decimal(0)) for c in fixture["true_calls"])
    n = len(fixture["true_calls"])
    expected = {"v_calls": (n, truth), "context_costs": (n, truth), "cost_hourly": (n, truth)}
    i = order
    arrival = [probe[k] for k in _orders(probe, seed=len(probe))[i]]
    tenant = f"{scenario}-{i}"
    spans = {(r.trace_id, r.span_id): r for r in _spans(fixture, tenant)}
    requests = [[spans[(r.trace_id, r.span_id)]] for r in arrival]  # one span per request
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
            store.refresh_aggregates(hourly=False)  # as the writer: the hourly roll-ups less often
        store.refresh_aggregates()
        store.close()
    with Store.open(data_dir=data_dir, database=database) as store:
        got = _totals(store, tenant)
    assert got == expected, (scenario, [f"{r.name}" for r in arrival], restart)
    assert _budget_cost(budget) == truth, (scenario, i)
