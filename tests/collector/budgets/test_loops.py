"""Loop rules against the real embedded ClickHouse and a loopback webhook: a runaway tool loop raises one
``loop`` crossing (webhook, log, budget_events, metric), whatever arrives later; a restart repeats none;
a crossing never recorded is sent once at start; rules match, and the config is checked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import call
from tests.collector.webhook_receiver import WebhookReceiver
from tests.stores import DatabasePool
from tokenbook.collector.budgets import BudgetRuntime, BudgetsConfig, parse_budgets
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.store import Store

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        yield s


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


def config(webhook: str | None = None, **rule: Any) -> BudgetsConfig:
    raw: dict[str, Any] = {
        "loops": [
            {"name": "agent-loops", "max_steps": 3, "enforcement": "hard", **rule},
            {"name": "bloat", "max_prompt_growth": 5000, "match": {"feature": "chat"}},
        ],
    }
    if webhook is not None:
        raw["alerts"] = {"webhook": {"url": webhook, "backoff": "10ms", "max_attempts": 3}}
    cfg, problems = parse_budgets(raw)
    assert problems == []
    return cfg


def loop(
    context: str, steps: int, *, start: int = 0, growth: int = 1000, **fields: Any
) -> tuple[list[CallRow], list[StepRow]]:
    """`steps` model calls of `context`, each but the last followed by a tool step: one tool loop."""
    calls, tools = [], []
    for i in range(start, start + steps):
        ts = NOW + timedelta(seconds=10 * i)
        c = call(ts, f"{context[:6]}{i:010d}", context=context, tokens=(1000 + growth * i, 50), **fields)
        calls.append(c)
        if i < start + steps - 1:
            tools.append(
                StepRow(ts + timedelta(seconds=1), c.trace_id, f"t{context[:5]}{i:010d}", c.span_id, context,
                        c.tenant_id, "tool", "search_kb", "execute_tool", "ok", 25.0, "", ts, 1)
            )  # fmt: skip
    return calls, tools


def ingest(store: Store, runtime: BudgetRuntime, calls: list[CallRow], steps: list[StepRow]) -> None:
    """Write and refresh as the collector's writer does (the contexts; the hourly roll-ups, which no
    loop rule reads, less often), then one ticker pass of the loop rules."""
    store.write(calls, steps)
    store.refresh_aggregates(hourly=False)
    while runtime.loops.check(store):
        pass


def runtime_on(store: Store, cfg: BudgetsConfig, at: datetime = NOW) -> BudgetRuntime:
    runtime = BudgetRuntime(cfg, store, clock=Clock(at + timedelta(minutes=5)))
    store.on_refreshed = runtime.contexts_refreshed
    runtime.start(store)
    return runtime


def test_a_runaway_loop_crosses_once_and_says_so_everywhere(store: Store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="tokenbook.collector.budgets")
    with WebhookReceiver() as hook:
        runtime = runtime_on(store, config(hook.url))
        ingest(store, runtime, *loop("ticket-ok", 3))  # 3 steps: not more than max_steps
        ingest(store, runtime, *loop("ticket-7", 4))  # 4 steps: crosses agent-loops
        more = loop("ticket-7", 3, start=4)
        ingest(store, runtime, *more)  # the loop goes on: the same crossing, not sent again
        ingest(store, runtime, more[0][:1], [])  # a re-delivery: nothing either
        status = runtime.query_states("tenant=acme&context=ticket-7")
        metrics = runtime.prometheus()
        runtime.stop()
        (event,) = hook.bodies()
    assert (event["kind"], event["rule"], event["state"], event["previous_state"]) == (
        "loop", "agent-loops", "loop", "within_budget",
    )  # fmt: skip
    assert event["type"] == "tokenbook.loop.state_changed" and event["enforcement"] == "hard"
    assert event["subject"] == {"tenant": "acme", "context": "ticket-7"}
    assert event["loop"] == {"tool_loops": 1, "steps": 4, "max_steps": 3, "prompt_growth_per_step": 1000.0,
                             "max_prompt_growth": None}  # fmt: skip
    loop_calls = loop("ticket-7", 4)[0][1:]
    assert event["used"]["tokens"] == sum(c.input_tokens + c.output_tokens for c in loop_calls)
    assert Decimal(event["used"]["cost"]) == sum((c.total_cost or Decimal(0) for c in loop_calls), Decimal(0))
    assert "a tool loop of 4 model calls (limit 3)" in event["message"]
    assert status["allowed"] is False and status["denied_by"] == ["agent-loops"]
    assert [e["rule"] for e in status["loops"]] == ["agent-loops"]
    assert 'tokenbook_budget_alerts_total{kind="loop",state="loop"} 1' in metrics
    _, _, rows = store.query(
        f"SELECT kind, rule, context_id, used_tokens FROM {store.database}.v_budget_events"
    )
    assert rows == [("loop", "agent-loops", "ticket-7", event["used"]["tokens"])]
    logged = [
        r for r in caplog.records if r.name == "tokenbook.collector.budgets" and "Loop rule" in r.message
    ]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO


def test_a_restart_repeats_no_loop_crossing_and_sends_the_unrecorded_one(store: Store) -> None:
    with WebhookReceiver() as hook:
        first = runtime_on(store, config(hook.url))
        ingest(store, first, *loop("ticket-7", 5))
        first.stop()
        assert [(e["rule"], e["subject"]["context"]) for e in hook.bodies()] == [("agent-loops", "ticket-7")]
        # a crossing the collector never got to send: its context was recomputed, then the process died
        store.on_refreshed = None
        store.write(*loop("ticket-8", 6))
        store.refresh_aggregates(hourly=False)
        second = runtime_on(store, config(hook.url))  # rebuild: ticket-7 recorded, ticket-8 not
        ingest(store, second, *loop("ticket-7", 2, start=5))  # ticket-7 goes on after the restart
        assert second.query_states("tenant=acme&context=ticket-7")["allowed"] is False
        second.stop()
        third = runtime_on(store, config(hook.url))
        third.stop()
        assert [(e["rule"], e["subject"]["context"]) for e in hook.bodies()] == [
            ("agent-loops", "ticket-7"),
            ("agent-loops", "ticket-8"),
        ]


def test_prompt_growth_rule_matches_its_feature_only(store: Store) -> None:
    events: list[BudgetEvent] = []
    runtime = runtime_on(store, config())
    runtime.loops._publish = events.append
    ingest(store, runtime, *loop("fast-growth", 3, growth=6000))  # 6000 tokens per step, feature chat
    ingest(store, runtime, *loop("other-feature", 3, growth=6000, feature="search"))
    runtime.stop()
    (event,) = events
    assert (event.rule, event.subject[1][1], event.enforcement) == ("bloat", "fast-growth", "soft")
    assert event.loop is not None and event.loop.prompt_growth_per_step == 6000.0
    assert "its prompt growing 6,000 tokens per step (limit 5,000)" in event.message
    assert json.loads(json.dumps(event.webhook_body()))["loop"]["max_prompt_growth"] == 5000


def test_loop_rule_config_problems() -> None:
    _, problems = parse_budgets(
        {
            "loops": [
                {"name": "a"},
                {"name": "b", "max_steps": 0, "match": {"team": "x"}},
                {"name": "a", "max_steps": 5},
            ],
            "budgets": [{"name": "b", "limit": {"tokens": 10}}],
        }
    )
    assert "budgets.loops[0]: set max_steps and/or max_prompt_growth (e.g. max_steps: 8)" in problems
    assert any(p.startswith("budgets.loops[1].max_steps:") for p in problems)
    assert "budgets.loops[1].match.team: loop rules match on tenant, user, project, feature" in problems
    assert any(p.startswith("budgets.loops[2].name: 'a' is used twice") for p in problems)
    assert any(p.startswith("budgets.loops[1].name: 'b' is used twice") for p in problems)
    cfg, problems = parse_budgets({"loops": [{"name": "ok", "max_prompt_growth": 2000}]})
    assert problems == [] and cfg.enabled and cfg.loops[0].enforcement == "soft"
