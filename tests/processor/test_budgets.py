"""In-app budgets: states, check(), callback, nesting, threads and asyncio, span attribute."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from decimal import Decimal
from typing import Any

import pytest

from tokenbook.processor import Budget, BudgetExceeded, budget

from .conftest import Pipeline, chat_attrs

# gpt-4o: 1000 in + 100 out = 1100 tokens, $0.0025 + $0.001 = $0.0035 per call
CALL_COST = Decimal("0.0035")


def _call(p: Pipeline, name: str = "chat", **kw: Any) -> None:
    with p.tracer.start_as_current_span(name, attributes=chat_attrs(**kw)):
        pass


def test_states_check_and_span_attribute(pipeline):
    p = pipeline()
    with budget(max_tokens=2500, max_cost="1") as b:
        _call(p, "c1")
        assert (b.used_tokens, b.used_cost, b.state) == (1100, CALL_COST, "within_budget")
        b.check()
        _call(p, "c2")
        assert b.state == "at_risk"  # 2200 >= 0.8 * 2500
        _call(p, "c3")
        assert b.state == "over_budget"
        with pytest.raises(BudgetExceeded, match="over_budget: tokens 3,300 of 2,500"):
            b.check()
    assert [p.attrs(n)["tokenbook.budget.state"] for n in ("c1", "c2", "c3")] == [
        "within_budget",
        "at_risk",
        "over_budget",
    ]
    _call(p, "outside")
    assert b.used_tokens == 3300  # a span outside the block does not count
    assert "tokenbook.budget.state" not in p.attrs("outside")


def test_cost_limit_and_unpriced_calls(pipeline):
    p = pipeline()
    with budget(max_cost="0.005") as b:
        _call(p)
        _call(p, model="in-house-model")
        assert (b.calls, b.unpriced_calls, b.used_cost, b.used_tokens) == (2, 1, CALL_COST, 2200)
        assert b.state == "within_budget"  # 0.0035 < 0.8 * 0.005
        _call(p)
        assert b.state == "over_budget"


def test_callback_once_per_crossing(pipeline):
    p = pipeline()
    seen: list[tuple[str, int]] = []
    with budget(max_tokens=2000, at_risk="0.5", callback=lambda b, s: seen.append((s, b.used_tokens))):
        for _ in range(4):
            _call(p)
    assert seen == [("at_risk", 1100), ("over_budget", 2200)]


def test_failing_callback_does_not_break_spans(pipeline):
    p = pipeline()

    def boom(b, state):
        raise RuntimeError("app bug")

    with budget(max_tokens=10, callback=boom) as b:
        _call(p)
    assert b.state == "over_budget"
    assert p.attrs("chat")["tokenbook.price.status"] == "priced"


def test_nested_budgets_all_count(pipeline):
    p = pipeline()
    with budget(max_tokens=10_000, name="request") as outer:
        _call(p)
        with budget(max_tokens=2_000, name="step") as inner:
            _call(p)
            _call(p)
        _call(p)
    assert (outer.used_tokens, inner.used_tokens) == (4400, 2200)
    assert (outer.state, inner.state) == ("within_budget", "over_budget")


def test_only_billed_spans_count(pipeline):
    p = pipeline()
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.usage.input_tokens": 2000,
        "gen_ai.usage.output_tokens": 200,
    }
    with budget(max_tokens=100_000) as b, p.tracer.start_as_current_span("agent", attributes=agent):
        _call(p)
        _call(p)
    assert b.used_tokens == 2200


def test_threads(pipeline):
    p = pipeline()
    with budget(max_tokens=10**9) as b:

        def work():
            for _ in range(50):
                _call(p)

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert b.calls == 200
    assert b.used_tokens == 200 * 1100
    assert b.used_cost == 200 * CALL_COST


def test_asyncio_budgets_are_per_task(pipeline):
    p = pipeline()
    budgets: dict[str, Budget] = {}

    async def request(name: str, calls: int) -> None:
        with budget(max_tokens=5000, name=name) as b:
            budgets[name] = b
            for _ in range(calls):
                await asyncio.sleep(0)
                _call(p)

    async def main() -> None:
        await asyncio.gather(request("a", 2), request("b", 5), request("c", 1))

    asyncio.run(main())
    assert {n: b.used_tokens for n, b in budgets.items()} == {"a": 2200, "b": 5500, "c": 1100}
    assert budgets["b"].state == "over_budget"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "max_tokens or max_cost"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_cost": 0.5}, "max_cost"),
        ({"max_cost": "abc"}, "max_cost"),
        ({"max_cost": "1", "at_risk": "1.5"}, "at_risk"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        budget(**kwargs)


def test_at_risk_from_environment(monkeypatch):
    monkeypatch.setenv("TOKENBOOK_BUDGET_AT_RISK", "0.5")
    assert budget(max_tokens=10).at_risk == Decimal("0.5")
