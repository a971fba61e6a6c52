"""Conformance replay through the real collector process: recorded OTLP bodies over OTLP/HTTP, in
reverse order across separate requests and a restart, bill each true call once at its true price."""

from __future__ import annotations

import base64
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.collector.collector_process import CollectorProcess
from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import judge

pytestmark = pytest.mark.e2e  # starts processes

#: A call recorded by two layers in one trace, one across traces with a shared response ID, and one
#: across traces with no shared ID (a cross-layer match), each with its own tenant.
CASES = (
    "opentelemetry-instrumentation-genai-anthropic-1.3b0-messages",
    "opentelemetry-instrumentation-anthropic-0.62.4-messages_stream",
    "openinference-instrumentation-langchain-0.1.80-chain",
)
_COLUMNS = (
    "tenant_id, span_id, scope_name, timestamp, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, total_cost, price_status, price_source"
)


def _one_request_per_span(body: bytes, tenant: str) -> list[bytes]:
    """The recorded request split into one request per span, each with its own resource and scope,
    and ``tenant.id`` added to every span (nothing else changed)."""
    out = []
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                request = ExportTraceServiceRequest()
                one = request.resource_spans.add()
                one.resource.CopyFrom(resource_spans.resource)
                scope = one.scope_spans.add()
                scope.scope.CopyFrom(scope_spans.scope)
                copy = scope.spans.add()
                copy.CopyFrom(span)
                copy.attributes.append(KeyValue(key="tenant.id", value=AnyValue(string_value=tenant)))
                out.append(request.SerializeToString())
    return out


def _post(collector: CollectorProcess, body: bytes) -> None:
    request = urllib.request.Request(
        collector.http_url, data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def _billed(collector: CollectorProcess, tenant: str) -> list[dict[str, Any]]:
    rows = collector.query(
        f"SELECT {_COLUMNS} FROM v_calls WHERE tenant_id = {{t:String}} "
        "AND price_status != 'not_billable' ORDER BY input_tokens, span_id",
        t=tenant,
    )
    names = [c.strip() for c in _COLUMNS.split(",")]
    return [dict(zip(names, r, strict=True)) for r in rows]


def test_recorded_libraries_are_billed_once_through_the_collector(tmp_path: Path) -> None:
    # The fixtures keep the time they were recorded at: accept spans of any age, as a backfill does.
    collector = CollectorProcess(tmp_path / "data", limits={"max_span_age": 0}).start()
    try:
        fixtures = {name: load(FIXTURES / f"{name}.json") for name in CASES}
        bodies = [
            request
            for name, f in fixtures.items()
            for b in f["otlp"]
            for request in _one_request_per_span(base64.b64decode(b), name)
        ]
        # Every span in its own request, in reverse order, with a restart half-way: the billing
        # decision must converge to the same calls whatever the order and the batch split.
        ordered = list(reversed(bodies))
        assert len(ordered) >= 6
        for i, body in enumerate(ordered):
            if i == len(ordered) // 2:
                assert collector.stop() == 0
                collector.start()
            _post(collector, body)
        deadline = time.monotonic() + 60
        verdicts: dict[str, Any] = {}
        while time.monotonic() < deadline:
            verdicts = {name: judge(f, _billed(collector, name), 0) for name, f in fixtures.items()}
            if all(v.exact for v in verdicts.values()):
                break
            time.sleep(0.5)
        assert all(v.exact for v in verdicts.values()), {n: v.why for n, v in verdicts.items()}
    finally:
        assert collector.stop() == 0
