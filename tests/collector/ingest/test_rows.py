"""Decoded spans -> ledger rows, with the processor's normalization, billing rule and pricing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import decode_fixture
from tests.loopback import serving_thread
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


_PARTS = ("system", "history", "retrieved", "tool_result", "user", "tool_definition", "overhead")


def _prompt_parts(call) -> dict[str, int]:
    return {p: getattr(call, f"prompt_{p}_tokens") for p in _PARTS}


def test_real_openai_spans_with_content_are_measured_then_dropped(monkeypatch) -> None:
    """The real client and instrumentation with content capture on, straight to the collector."""
    import http.server

    from openai import OpenAI
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider

    from tests.conversation import CONVERSATION, TEXTS, TOOLS
    from tests.processor.test_openai_instrumentation import _StubOpenAI

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubOpenAI)
    serving_thread(server).start()
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    client = OpenAI(api_key="test", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o", messages=CONVERSATION, tools=TOOLS)  # type: ignore[arg-type]
    finally:
        instrumentor.uninstrument()
        client.close()
        server.shutdown()
        server.server_close()
    (span,) = memory.get_finished_spans()
    assert "gen_ai.input.messages" in (span.attributes or {})  # the content really arrives
    body = encode_spans([span]).SerializeToString()
    for content in ("drop", "hash"):
        records = decode_protobuf(body, pipeline_keys((), content)).records
        (call,) = RowBuilder(CATALOG, content=content, salt="s").build(records).calls
        parts = _prompt_parts(call)
        assert sum(parts.values()) == call.input_tokens == 2000
        assert call.prompt_estimated is True and parts["overhead"] == 0
        assert all(parts[p] > 0 for p in ("system", "history", "tool_result", "user", "tool_definition"))
        stored = repr(call)
        for text in TEXTS:
            assert text not in stored
        if content == "drop":
            assert not any(k.startswith("gen_ai.") for k in call.tags)


def test_openinference_content_is_measured_and_the_app_measurement_wins() -> None:
    document = "Refunds are issued within 14 days of the return being received. " * 5

    def build(tracer) -> None:
        attrs = {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 997,
            "llm.token_count.completion": 20,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Answer from the documents only.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "How long do refunds take?\n" + document,
            "retrieval.documents.0.document.content": document,
        }
        with tracer.start_as_current_span("ChatCompletion", attributes=attrs):
            pass
        app = {**CHAT, "tokenbook.prompt.user_tokens": 60, "tokenbook.prompt.system_tokens": 40}
        app["tokenbook.prompt.estimated"] = False
        with tracer.start_as_current_span("chat", attributes=app):
            pass

    measured, from_app = _rows(build).calls
    parts = _prompt_parts(measured)
    assert sum(parts.values()) == 997 and parts["retrieved"] > parts["user"] > 0 and parts["system"] > 0
    assert document not in repr(measured)
    assert (from_app.prompt_user_tokens, from_app.prompt_system_tokens) == (60, 40)
    assert from_app.prompt_history_tokens == 0 and from_app.prompt_estimated is False


def test_calls_without_content_have_no_composition() -> None:
    def build(tracer) -> None:
        with tracer.start_as_current_span("chat", attributes=CHAT):
            pass

    (call,) = _rows(build).calls
    assert set(_prompt_parts(call).values()) == {None} and call.prompt_estimated is None


def test_context_saturation_from_the_catalog_window_and_null_when_unknown() -> None:
    def build(tracer) -> None:
        with tracer.start_as_current_span("chat", attributes={**CHAT, "gen_ai.usage.input_tokens": 96000}):
            pass
        with tracer.start_as_current_span(
            "chat", attributes={**CHAT, "gen_ai.request.model": "no-such-model"}
        ):
            pass

    known, unknown = sorted(_rows(build).calls, key=lambda c: c.model)
    assert (known.model, known.context_window, known.context_saturation) == ("gpt-4o", 128000, 0.75)
    assert (unknown.context_window, unknown.context_saturation) == (None, None)


def test_content_keys_in_extra_keys_are_never_tags_under_drop() -> None:
    def build(tracer) -> None:
        attrs = {**CHAT, "gen_ai.prompt": "secret", "input.value": "secret too", "cost.center": "cc-7"}
        with tracer.start_as_current_span("chat", attributes=attrs):
            pass

    (call,) = _rows(build, extra_keys=("cost.center", "gen_ai.prompt", "input.value")).calls
    assert call.tags == {"cost.center": "cc-7"}
    assert "input.value" not in pipeline_keys(("input.value",), "drop")


@pytest.mark.parametrize(
    ("fixture", "tool"),
    [
        # an `@observe(span_type="TOOL")` function between two model calls, under `@observe` functions
        ("lmnr-0.8.2-workflow", "get_weather"),
        # a traced tool (`SpanType.TOOL`) between two autologged calls, in a traced agent
        ("mlflow-3.17.2-workflow", "get_weather"),
        # Langfuse's LangChain callback: the tool run an observation of type "tool", its own root
        ("langfuse-5.2.0+langchain-anthropic_tool_call", "get_weather"),
        # the AI SDK's own spans (ai 5, and ai 7's legacy ones): the tool's execution between two calls
        ("ai-5.0.285-tool_loop", "ai.toolCall"),
        ("ai-7.0.185+legacy-tool_loop", "ai.toolCall"),
    ],
)
def test_other_sdks_recorded_tool_spans_are_tool_steps(fixture: str, tool: str) -> None:
    """Laminar's span type (lmnr 0.8.2), MLflow's (mlflow 3.17.2), Langfuse's observation type (langfuse
    5.2.0) and the AI SDK's operation ID (``ai.operationId``) say which span is a tool, as recorded: the
    one tool is a tool step (that the calls around it are billed once, exactly, is
    `tests/conformance/test_replay.py`'s). Failed before: no tool step (their span kinds were not read)."""
    records = [r for batch in decode_fixture(load(FIXTURES / f"{fixture}.json"), "acme") for r in batch]
    batch = RowBuilder(PriceCatalog()).build(records)
    assert [s.name for s in batch.steps if s.kind == "tool"] == [tool]


@pytest.mark.parametrize(
    "fixture",
    ["logfire-5.4.0-chat_stream", "logfire-5.4.0+anthropic-no-sdk-spans-messages_stream_async"],
)
def test_a_logfire_stream_request_span_is_no_call_unless_it_failed(fixture: str) -> None:
    """Logfire (5.4.0) records a stream as the request's span, without usage, and a log with the usage
    when the stream ends: one call row, the log's; the request span is a wrapper step. A request that
    failed (its span with an error, and no log) stays a call. Failed before: two calls."""
    records = [r for batch in decode_fixture(load(FIXTURES / f"{fixture}.json"), "acme") for r in batch]
    batch = RowBuilder(PriceCatalog()).build(records)
    assert [(c.price_status, c.input_tokens > 0) for c in batch.calls] == [("priced", True)]
    (request,) = [s for s in batch.steps if s.kind == "wrapper"]
    assert request.name.endswith("with {request_data[model]!r}")
    (sent,) = [r for r in records if r.name == request.name]
    again = RowBuilder(PriceCatalog()).build([sent._replace(error=True)])
    assert [(c.price_status, c.status) for c in again.calls] == [("not_billable", "error")]
