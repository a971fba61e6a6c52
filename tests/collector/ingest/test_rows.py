"""Decoded spans -> ledger rows, with the processor's normalization, billing rule and pricing."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.collector.decode.spans import decode_protobuf
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.genai.pricing.catalog import PriceCatalog

CATALOG = PriceCatalog()
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 50,
}


def _rows(build, *, content: str = "drop", reverse: bool = False, extra_keys=()):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("t"))
    spans = list(memory.get_finished_spans())
    if reverse:  # parents before children, as another exporter might send them
        spans.reverse()
    records = decode_protobuf(
        encode_spans(spans).SerializeToString(), pipeline_keys(extra_keys, content)
    ).records
    builder = RowBuilder(CATALOG, content=content, salt="pepper-and-salt", extra_keys=extra_keys)
    return builder.build(records)


def _agent(tracer, wrapper_usage: bool = True, children: int = 2) -> None:
    attrs: dict[str, str | int] = {"gen_ai.operation.name": "invoke_agent", "tenant.id": "acme"}
    if wrapper_usage:
        attrs |= {"gen_ai.usage.input_tokens": 100 * max(children, 1), "gen_ai.usage.output_tokens": 50}
    with tracer.start_as_current_span("invoke_agent planner", attributes=attrs):
        for _ in range(children):
            with tracer.start_as_current_span("chat gpt-4o", attributes={**CHAT, "tenant.id": "acme"}):
                pass


def test_wrapper_repeating_children_usage_is_not_billed_in_any_order() -> None:
    for reverse in (False, True):
        batch = _rows(_agent, reverse=reverse)
        billed = [c for c in batch.calls if c.price_status == "priced"]
        assert [c.operation for c in billed] == ["chat", "chat"]
        assert sum(c.total_cost for c in billed) == Decimal("0.0015")
        # The wrapper is a candidate row that does not bill: its children carry the usage.
        [wrapper] = [c for c in batch.calls if c.price_status == "wrapper"]
        assert (wrapper.operation, wrapper.billing_rule, wrapper.kind) == (
            "invoke_agent",
            "descendant_has_usage",
            "wrapper",
        )
        assert batch.steps == []
        assert {c.workflow_name for c in batch.calls} == {"invoke_agent planner"}


def test_wrapper_with_usage_and_no_model_child_is_billed() -> None:
    batch = _rows(lambda t: _agent(t, children=0))
    assert [c.operation for c in batch.calls] == ["invoke_agent"]
    assert batch.steps == []


def test_tool_outcome_retry_client_cost_and_issues() -> None:
    def build(tracer) -> None:
        with tracer.start_as_current_span(
            "execute_tool search", attributes={"gen_ai.operation.name": "execute_tool"}
        ):
            pass
        with tracer.start_as_current_span(
            "chat",
            attributes={**CHAT, "http.request.resend_count": 2, "gen_ai.usage.cost": 0.1234567,
                        "gen_ai.usage.output_tokens": "50", "tokenbook.outcome": "resolved"},
        ):  # fmt: skip
            pass
        with tracer.start_as_current_span(
            "chat", attributes={**CHAT, "gen_ai.request.model": "no-such-model-xyz"}
        ):
            pass

    batch = _rows(build)
    retry, unknown = batch.calls
    assert (retry.attempt, retry.client_cost, retry.total_cost) == (
        2,
        Decimal("0.1234567"),
        Decimal("0.00075"),
    )
    assert "numeric string" in retry.usage_issue
    assert unknown.price_status == "unpriced" and unknown.total_cost is None and unknown.input_cost is None
    assert (batch.billed, batch.unpriced) == (1, 1)
    assert sorted((s.kind, s.outcome) for s in batch.steps) == [("outcome", "resolved"), ("tool", "")]


def test_content_is_hashed_into_tags_only_when_configured() -> None:
    def build(tracer) -> None:
        attrs = {**CHAT, "gen_ai.prompt": "secret", "cost.center": "cc-7", "tokenbook.tag.team_lead": "bo"}
        with tracer.start_as_current_span("chat", attributes=attrs):
            pass

    (dropped,) = _rows(build, extra_keys=("cost.center",)).calls
    assert dropped.tags == {"cost.center": "cc-7", "team_lead": "bo"}
    (hashed,) = _rows(build, content="hash").calls
    assert hashed.tags["gen_ai.prompt"].startswith("sha256:") and "secret" not in str(hashed.tags)


def test_content_keys_in_extra_keys_are_never_tags_under_drop() -> None:
    def build(tracer) -> None:
        attrs = {**CHAT, "gen_ai.prompt": "secret", "input.value": "secret too", "cost.center": "cc-7"}
        with tracer.start_as_current_span("chat", attributes=attrs):
            pass

    (call,) = _rows(build, extra_keys=("cost.center", "gen_ai.prompt", "input.value")).calls
    assert call.tags == {"cost.center": "cc-7"}
    assert "input.value" not in pipeline_keys(("input.value",), "drop")
