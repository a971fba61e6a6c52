"""Optional metrics: gen_ai.client.token.usage and tokenbook.cost with attribution."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tokenbook.processor import attribute

from .conftest import chat_attrs


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        m.name: list(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }


def test_metrics_are_off_by_default(pipeline):
    reader = InMemoryMetricReader()
    p = pipeline(meter_provider=MeterProvider(metric_readers=[reader]))
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs()):
        pass
    assert _points(reader) == {}


def test_token_histogram_and_cost_counter(pipeline):
    reader = InMemoryMetricReader()
    p = pipeline(metrics=True, meter_provider=MeterProvider(metric_readers=[reader]))
    with attribute(tenant="acme", project="support"):
        for _ in range(2):
            with p.tracer.start_as_current_span("chat", attributes=chat_attrs()):
                pass
    exported = p.exporter.get_finished_spans()
    assert _points(reader) == {}  # not priced on the thread that ended the spans
    assert all(span.attributes["tokenbook.price.status"] == "priced" for span in exported)
    points = _points(reader)  # recorded where the spans were first read (normally the export thread)
    tokens = {dict(pt.attributes)["gen_ai.token.type"]: pt for pt in points["gen_ai.client.token.usage"]}
    assert (tokens["input"].sum, tokens["input"].count) == (2000, 2)
    assert tokens["output"].sum == 200
    assert dict(tokens["input"].attributes)["gen_ai.request.model"] == "gpt-4o"
    (cost,) = points["tokenbook.cost"]
    assert abs(cost.value - 0.007) < 1e-12
    assert dict(cost.attributes)["tenant.id"] == "acme"
    assert dict(cost.attributes)["project.id"] == "support"
