"""Loop rules end to end: a real collector process, the official OTLP/HTTP exporter, a real webhook
receiver. A tool loop of model and execute_tool spans crosses its rule once (webhook, log, budget_events,
metric, the gateway refuses the context); the loop going on, re-deliveries and a restart send nothing
more; a new runaway after the restart is sent once."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory
from tests.collector.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e  # starts processes


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def send(c: CollectorProcess, spans: list[ReadableSpan]) -> None:
    exporter = OTLPSpanExporter(endpoint=c.http_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def agent_steps(factory: SpanFactory, context: str, steps: int, first: int = 0) -> list[ReadableSpan]:
    """An agent's tool loop: `steps` chat calls whose prompt grows by 800 tokens, a tool between each."""
    who: dict[str, Any] = {"tenant.id": "acme", "tokenbook.context.id": context, "app.feature": "support"}
    for i in range(first, first + steps):
        chat: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000 + 800 * i,
            "gen_ai.usage.output_tokens": 60,
        }
        with factory.tracer.start_as_current_span("chat gpt-4o", attributes={**chat, **who}):
            time.sleep(0.002)
        tool: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_kb"}
        with factory.tracer.start_as_current_span("execute_tool search_kb", attributes={**tool, **who}):
            time.sleep(0.002)
    return factory.take()


def gateway(c: CollectorProcess, query: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?{query}", timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def test_a_loop_crosses_once_across_redelivery_and_restart(tmp_path, hook: WebhookReceiver) -> None:
    budgets = {
        "loops": [{"name": "agent-loops", "max_steps": 4, "enforcement": "hard"}],
        "alerts": {"webhook": {"url": hook.url, "backoff": "50ms"}},
    }
    c = CollectorProcess(tmp_path / "data", budgets=budgets).start()
    try:
        factory = SpanFactory()
        first = agent_steps(factory, "ticket-7", 5)
        send(c, first)
        (event,) = hook.wait_for(1)
        assert (event["kind"], event["rule"], event["state"]) == ("loop", "agent-loops", "loop")
        assert event["subject"] == {"tenant": "acme", "context": "ticket-7"}
        assert event["loop"]["steps"] == 5 and event["loop"]["prompt_growth_per_step"] == 800.0
        assert event["used"]["tokens"] == sum(1000 + 800 * i + 60 for i in range(1, 5))
        doc = gateway(c, "tenant=acme&context=ticket-7")
        assert doc["allowed"] is False and doc["denied_by"] == ["agent-loops"]
        assert gateway(c, "tenant=acme&context=ticket-8")["allowed"] is True
        with urllib.request.urlopen(f"{c.admin_url}/metrics", timeout=5) as r:
            assert (
                'tokenbook_budget_alerts_total{kind="loop",state="loop"} 1' in r.read().decode().splitlines()
            )
        send(c, first)  # re-delivered
        send(c, agent_steps(factory, "ticket-7", 2, first=5))  # the loop goes on: 7 steps
        c.wait_for("SELECT loop_steps FROM v_context_loops WHERE context_id = 'ticket-7'", 7)
        assert c.stop() == 0
        c.start()
        assert gateway(c, "tenant=acme&context=ticket-7")["allowed"] is False  # restored at start
        send(c, agent_steps(factory, "ticket-7", 1, first=7))
        send(c, agent_steps(factory, "ticket-8", 6))  # a new runaway; any repeat would precede it
        events = hook.wait_for(2)
        assert [e["subject"]["context"] for e in events] == ["ticket-7", "ticket-8"]
        time.sleep(1.5)  # give a (wrongly) repeated alert time to land
        assert len(hook.bodies()) == 2 and len(hook.requests) == 2
        assert c.scalar("SELECT count() FROM v_budget_events WHERE kind = 'loop'") == 2
        logged = [line for line in c.log_lines() if line.get("budget_event", {}).get("kind") == "loop"]
        assert [line["budget_event"]["subject"]["context"] for line in logged] == ["ticket-7", "ticket-8"]
    finally:
        if c.proc is not None:
            assert c.stop() == 0
