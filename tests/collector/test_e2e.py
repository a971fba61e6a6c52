"""End to end: the real collector process, the real SDK and the official OTLP exporters, totals read
back through the admin query API and, after shutdown, by opening the directory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

CHAT_COST = Decimal("0.00075")  # gpt-4o: 100 x $2.50/M + 50 x $10/M (tests/genai/test_golden_prices.py)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProcess(tmp_path_factory.mktemp("e2e") / "data").start()
    yield c
    if c.proc is not None:
        assert c.stop() == 0


def _agent_run(provider: TracerProvider) -> None:
    """An agent (wrapper repeating its children's usage), 3 chats (one a retry), a tool, an outcome."""
    tracer = provider.get_tracer("agent")
    base = {
        "tenant.id": "acme",
        "user.id": "alice",
        "project.id": "support",
        "tokenbook.context.id": "ticket-42",
    }
    with tracer.start_as_current_span(
        "invoke_agent triage",
        attributes={**base, "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 300,
                    "gen_ai.usage.output_tokens": 150},
    ) as agent:  # fmt: skip
        for attempt in range(3):
            with tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    **base,
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 50,
                    "tokenbook.cost.total": 0.5,  # a client figure: kept, never billed
                    "gen_ai.prompt": "the customer's private question",
                    "http.request.resend_count": 1 if attempt == 2 else 0,
                },
            ):
                pass
        with tracer.start_as_current_span(
            "execute_tool lookup_order", attributes={**base, "gen_ai.operation.name": "execute_tool"}
        ):
            pass
        agent.add_event("tokenbook.outcome", {"tokenbook.outcome": "resolved"})


def test_sdk_batch_processor_over_grpc_bills_each_model_call_once(collector: CollectorProcess) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(
        BatchSpanProcessor(GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True))
    )
    _agent_run(provider)
    provider.shutdown()  # flushes through the official exporter

    collector.wait_for("SELECT count() FROM v_calls WHERE context_id = 'ticket-42'", 3)
    rows = collector.query(
        "SELECT operation, total_cost, client_cost, attempt, service_name, user_id, workflow_name,"
        " price_status, toString(tags) FROM v_calls WHERE context_id = 'ticket-42' ORDER BY attempt"
    )
    assert [r[0] for r in rows] == ["chat"] * 3  # the invoke_agent wrapper is not billed
    assert sum(r[1] for r in rows) == 3 * CHAT_COST
    assert {r[2] for r in rows} == {Decimal("0.5")}
    assert [r[3] for r in rows] == [0, 0, 1]
    assert {(r[4], r[5], r[6], r[7]) for r in rows} == {
        ("support-bot", "alice", "invoke_agent triage", "priced")
    }
    assert all("private question" not in r[8] for r in rows)  # content dropped by default
    steps = collector.query(
        "SELECT kind, outcome FROM v_context_steps WHERE context_id = 'ticket-42' ORDER BY kind"
    )
    assert steps == [("outcome", "resolved"), ("tool", "")]
    # The invoke_agent wrapper repeats its children's usage: a candidate, visible, never billed.
    collector.wait_for(
        "SELECT count() FROM v_call_candidates WHERE context_id = 'ticket-42' AND price_status = 'wrapper'", 1
    )
    collector.wait_for("SELECT count() FROM v_context_costs WHERE context_id = 'ticket-42' AND calls = 3", 1)
    (ctx,) = collector.query(
        "SELECT calls, retries, tool_calls, input_tokens, output_tokens, total_cost, outcome"
        " FROM v_context_costs WHERE context_id = 'ticket-42'"
    )
    assert ctx == (3, 1, 1, 300, 150, 3 * CHAT_COST, "resolved")


def test_http_protobuf_with_gzip(collector: CollectorProcess) -> None:
    spans = SpanFactory().chats(5, tenant="http-gzip")
    exporter = HttpExporter(endpoint=collector.http_url, compression=Compression.Gzip)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'http-gzip'", 5)
    assert (
        collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'http-gzip'") == 5 * CHAT_COST
    )


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_grpc_with_compression(collector: CollectorProcess, compression: grpc.Compression) -> None:
    """gzip is what an OpenTelemetry Collector's OTLP exporter sends by default."""
    tenant = f"grpc-{compression.name.lower()}"
    spans = SpanFactory().chats(5, tenant=tenant)
    exporter = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    collector.wait_for(f"SELECT count() FROM v_calls WHERE tenant_id = '{tenant}'", 5)
    total = collector.scalar(f"SELECT sum(total_cost) FROM v_calls WHERE tenant_id = '{tenant}'")
    assert total == 5 * CHAT_COST


def test_http_json(collector: CollectorProcess) -> None:
    now_ns = time.time_ns()
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": f"eee19b7ec3c1b17{i}",
                                "name": "chat claude-sonnet-4-5",
                                "startTimeUnixNano": str(now_ns),  # within limits.max_span_age
                                "endTimeUnixNano": str(now_ns + 1_000_000_000),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 50}},
                                    {"key": "tenant.id", "value": {"stringValue": "json"}},
                                ],
                            }
                            for i in range(3)
                        ]
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(doc).encode())
    request = urllib.request.Request(
        collector.http_url,
        data=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {}
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'json'", 3)
    assert collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'json'") == 3 * CHAT_COST


def test_duplicates_never_change_totals(collector: CollectorProcess) -> None:
    spans = SpanFactory().chats(25, tenant="dup")
    exporter = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True)
    before = collector.metric("deduplicated_spans_total")
    assert exporter.export(spans[:20]) == SpanExportResult.SUCCESS
    assert exporter.export(spans[:20]) == SpanExportResult.SUCCESS  # the same batch again
    assert exporter.export(spans[10:]) == SpanExportResult.SUCCESS  # overlapping
    assert exporter.export(spans[:3] + spans[:3]) == SpanExportResult.SUCCESS  # twice in one batch
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'dup'", 25)
    assert collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'dup'") == 25 * CHAT_COST
    # the collector itself dropped the re-deliveries: the raw table has each span once
    assert collector.scalar("SELECT count() FROM llm_calls WHERE tenant_id = 'dup'") == 25
    assert collector.metric("deduplicated_spans_total") - before == 20 + 10 + 6
    collector.wait_for("SELECT sum(calls) FROM v_context_costs WHERE tenant_id = 'dup'", 25)
    assert (
        collector.scalar("SELECT sum(total_cost) FROM v_context_costs WHERE tenant_id = 'dup'")
        == 25 * CHAT_COST
    )


def test_every_metric_the_collector_exposes_is_in_the_docs(collector: CollectorProcess) -> None:
    """Each metric family of ``/metrics`` is named in the docs: written out, or (in the collector
    guide's list) as its ``_<suffix>`` after the first ``tokenbook_collector_`` name; a latency
    summary's ``_max`` gauge with its summary."""
    with urllib.request.urlopen(collector.admin_url + "/metrics", timeout=10) as r:
        families = {line.split()[2] for line in r.read().decode().splitlines() if line.startswith("# TYPE ")}
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").rglob("*.md"))

    def named(family: str) -> bool:  # a summary's `_max` gauge is named with its summary
        name = family.removesuffix("_max") if family.endswith("_seconds_max") else family
        return name in docs or f"`_{name.removeprefix('tokenbook_collector_')}`" in docs

    assert len(families) > 40 and sorted(f for f in families if not named(f)) == []


def test_shutdown_drains_and_the_directory_reads_back(collector: CollectorProcess) -> None:
    spans = SpanFactory().chats(40, tenant="last")
    assert (
        GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True).export(spans)
        == SpanExportResult.SUCCESS
    )
    assert collector.stop() == 0  # SIGTERM: drains the log into the store
    lines = collector.log_lines()
    assert sum(1 for line in lines if line["msg"] == "collector started") == 1
    start = next(line for line in lines if line["msg"] == "collector started")
    assert start["otlp_grpc"] == collector.grpc_endpoint and "embedded" in start["store"]
    # the engine's start-up pages went back to the kernel before the spans above were stored and read
    assert start["engine_pages_released_mib"] > 100
    steps = ["log", "pipeline", "engine", "migrations", "budgets", "writer", "serve"]
    assert list(start["startup_steps_s"]) == steps
    assert any(line["msg"] == "collector summary" for line in lines)
    assert lines[-1]["msg"] == "collector stopped" and lines[-1]["drained"] is True
    script = (
        "import sys; from tokenbook.collector.storage.store import Store\n"
        "s = Store.open(data_dir=sys.argv[1])\n"
        "sql = \"SELECT count(), sum(total_cost) FROM v_calls WHERE tenant_id = 'last'\"\n"
        "n, total = s.query(sql)[2][0]\n"
        "print(n, total)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(collector.data_dir)], capture_output=True, text=True, check=True
    ).stdout
    n, total = out.split()
    assert (int(n), Decimal(total)) == (40, 40 * CHAT_COST)
    assert not (Path(collector.data_dir) / "collector.json").exists()  # ownership released
