"""TokenbookSpanProcessor with the real SDK: enrichment, billing rule, failures, redaction."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.genai.billing import money, money_text
from tokenbook.genai.pricing.catalog import CATALOG_NAME
from tokenbook.genai.redaction import Redactor
from tokenbook.processor import PriceCatalog, TokenbookSpanProcessor, attribute, budget, context_id_of

from .conftest import chat_attrs


def test_chat_span_is_priced_and_attributed(pipeline):
    p = pipeline()
    with (
        attribute(tenant="acme", user="alice", project="support", team="t1", feature="triage"),
        p.tracer.start_as_current_span("chat gpt-4o", attributes=chat_attrs(inp=2000, out=100)) as s,
    ):
        s.set_attribute("gen_ai.usage.cache_read.input_tokens", 1500)
    a = p.attrs("chat gpt-4o")
    assert a["tokenbook.price.status"] == "priced"
    assert a["tokenbook.cost.total"] == "0.004125000000"
    assert Decimal(a["tokenbook.cost.total"]) == sum(
        Decimal(a[f"tokenbook.cost.{k}"]) for k in ("input", "output", "cache_read")
    )
    assert "tokenbook.cost.cache_write" not in a  # zero components are omitted
    assert a["tokenbook.cost.currency"] == "USD"
    assert a["tokenbook.price.source"] == f"{CATALOG_NAME} openai/gpt-4o"
    assert a["tokenbook.call.kind"] == "model"
    assert "tokenbook.billable" not in a  # only non-billed spans are marked
    assert (a["tenant.id"], a["user.id"], a["project.id"], a["team.id"], a["app.feature"]) == (
        "acme",
        "alice",
        "support",
        "t1",
        "triage",
    )
    span = p.spans()["chat gpt-4o"]
    assert context_id_of(a, format(span.context.trace_id, "032x")) == format(span.context.trace_id, "032x")
    assert a["tokenbook.workflow.id"] == format(span.context.span_id, "016x")  # it is the root
    assert p.processor.errors == 0


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {"tokenbook.context.id": "ticket-42", "gen_ai.conversation.id": "c", "session.id": "s"},
            "ticket-42",
        ),
        ({"gen_ai.conversation.id": "conv-1", "session.id": "s"}, "conv-1"),
        ({"session.id": "sess-9"}, "sess-9"),
    ],
)
def test_context_id_precedence(pipeline, attrs, expected):
    """The exported span carries what `context_id_of` (and the collector) needs to resolve it."""
    p = pipeline()
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**attrs)):
        pass
    assert context_id_of(p.attrs("chat"), "trace") == expected


def test_wrapper_repeating_children_is_not_billed(pipeline):
    p = pipeline()
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.usage.input_tokens": 3000,
        "gen_ai.usage.output_tokens": 300,
    }
    with p.tracer.start_as_current_span("invoke_agent planner", attributes=agent):
        with p.tracer.start_as_current_span("step"):  # an unrelated intermediate span
            for i in range(3):
                with p.tracer.start_as_current_span(f"chat {i}", attributes=chat_attrs()):
                    pass
        with p.tracer.start_as_current_span(
            "execute_tool search", attributes={"gen_ai.operation.name": "execute_tool"}
        ):
            pass
    wrapper = p.attrs("invoke_agent planner")
    assert wrapper["tokenbook.billable"] is False
    assert wrapper["tokenbook.price.status"] == "not_billable"
    assert "tokenbook.cost.total" not in wrapper
    assert all(p.attrs(f"chat {i}")["tokenbook.price.status"] == "priced" for i in range(3))
    assert all(p.attrs(f"chat {i}")["tokenbook.workflow.name"] == "invoke_agent planner" for i in range(3))
    tool = p.attrs("execute_tool search")
    assert tool["tokenbook.call.kind"] == "tool"
    assert "tokenbook.price.status" not in tool
    assert "tokenbook.call.kind" not in p.attrs("step")


def test_wrapper_with_usage_and_no_model_children_is_billed(pipeline):
    p = pipeline()
    attrs = {
        "openinference.span.kind": "CHAIN",
        "llm.provider": "anthropic",
        "llm.model_name": "claude-sonnet-4-5",
        "llm.token_count.prompt": 1000,
        "llm.token_count.completion": 10,
    }
    with p.tracer.start_as_current_span("chain", attributes=attrs):
        pass
    a = p.attrs("chain")
    assert a["tokenbook.call.kind"] == "wrapper"
    assert a["tokenbook.price.status"] == "priced"
    assert a["tokenbook.cost.total"] == "0.003150000000"


def test_unknown_model_is_unpriced_without_costs(pipeline):
    p = pipeline()
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(model="in-house-9000")):
        pass
    a = p.attrs("chat")
    assert a["tokenbook.price.status"] == "unpriced"
    assert "in-house-9000" in a["tokenbook.price.source"]
    assert not any(k.startswith("tokenbook.cost.") and k != "tokenbook.cost.currency" for k in a)


def test_an_openai_client_span_on_an_azure_host_is_priced_as_azure(pipeline):
    """The official OpenAI instrumentation (genai-openai 1.3b0) names ``openai`` on an AzureOpenAI
    client too; its ``server.address`` is the Azure resource. Failed before: priced from openai's list."""
    p = pipeline()
    attrs = chat_attrs(model="prod-chat", **{"gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                                             "server.address": "my-resource.openai.azure.com"})  # fmt: skip
    with p.tracer.start_as_current_span("chat prod-chat", attributes=attrs):
        pass
    a = p.attrs("chat prod-chat")
    assert a["tokenbook.price.status"] == "priced"
    assert a["tokenbook.price.source"].startswith(f"{CATALOG_NAME} azure/gpt-4o-mini")


def test_cache_hit_is_zero_cost(pipeline):
    p = pipeline()
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**{"tokenbook.cache_hit": True})):
        pass
    a = p.attrs("chat")
    assert (a["tokenbook.price.status"], a["tokenbook.cost.total"]) == ("cache_hit", "0.000000000000")


@pytest.mark.parametrize(
    ("value", "issue"),
    [
        ("1000", "numeric string"),
        (1000.7, "fractional"),
        (-3, "negative"),
        (True, "bool"),
        (float("nan"), "not finite"),
        (10**13, "over 10^12"),
    ],
)
def test_wrong_typed_usage_is_recorded(pipeline, value, issue):
    p = pipeline()
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(inp=value)):
        pass
    a = p.attrs("chat")
    assert issue in a["tokenbook.usage.issue"]
    assert a["tokenbook.price.status"] == "priced"  # output is still priced; a rejected input counts 0


def test_spans_without_genai_pass_through_unchanged(pipeline):
    p = pipeline()
    with p.tracer.start_as_current_span("GET /", attributes={"http.method": "GET"}):
        pass
    assert p.attrs("GET /") == {"http.method": "GET"}


def test_extra_keys_become_tags(pipeline):
    p = pipeline(extra_keys=["cost_center"])
    with (
        attribute(tenant="acme", cost_center="cc-7", ignored="x"),
        p.tracer.start_as_current_span("chat", attributes=chat_attrs()),
    ):
        pass
    a = p.attrs("chat")
    assert a["tokenbook.tag.cost_center"] == "cc-7"
    assert "ignored" not in a and "tokenbook.tag.ignored" not in a


def test_dropped_attribute_counts_survive_the_copy(pipeline):
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=6))
    provider.add_span_processor(TokenbookSpanProcessor(SimpleSpanProcessor(exporter)))
    with provider.get_tracer("t").start_as_current_span("chat", attributes=chat_attrs(a=1, b=2, c=3)):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.dropped_attributes == 2
    assert dict(span.attributes or {})["tokenbook.price.status"] == "priced"


class _Exploding(SpanProcessor):
    def on_start(self, span, parent_context=None):
        raise RuntimeError("downstream start")

    def on_end(self, span):
        raise RuntimeError("downstream end")


class _BrokenCatalog(PriceCatalog):
    def quote(self, *args, **kwargs):  # what the processor calls
        raise ZeroDivisionError("a bug")


def test_failing_downstream_never_raises_into_the_app(pipeline, caplog):
    from opentelemetry.sdk.trace import TracerProvider

    processor = TokenbookSpanProcessor(_Exploding())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            with provider.get_tracer("t").start_as_current_span("chat", attributes=chat_attrs()):
                pass
    assert processor.downstream_errors == 6
    assert processor.errors == 0
    logged = [r for r in caplog.records if r.name == "tokenbook.processor.span_processor"]
    assert len(logged) == 2  # once per kind


def test_internal_bug_never_raises_and_content_still_redacted(pipeline):
    p = pipeline(catalog=_BrokenCatalog())
    for _ in range(2):
        with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**{"gen_ai.prompt": "secret"})):
            pass
    (span, other) = p.exporter.get_finished_spans()
    assert p.processor.errors == 0  # pricing is deferred to the first read of the exported span
    assert "gen_ai.prompt" not in span.attributes
    assert "tokenbook.price.status" not in span.attributes
    assert p.processor.errors == 1
    assert "gen_ai.prompt" not in span.to_json() and "secret" not in other.to_json()
    assert p.processor.errors == 2  # once per span, however often it is read
    assert dict(span.attributes)["gen_ai.operation.name"] == "chat"


CONTENT = {
    "gen_ai.input.messages": '[{"role":"user","content":"hi"}]',
    "gen_ai.completion.0.content": "yo",
    "llm.input_messages.0.message.content": "hi",
}


def test_redaction_drop_is_the_default(pipeline):
    p = pipeline()
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**CONTENT)) as s:
        s.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hi", "other": 1})
    span = p.spans()["chat"]
    assert not set(CONTENT) & set(span.attributes)
    assert dict(span.events[0].attributes) == {"other": 1}


def test_redaction_keep(pipeline):
    p = pipeline(redaction="keep")
    with p.tracer.start_as_current_span("GET", attributes=CONTENT):
        pass
    assert p.attrs("GET") == CONTENT


def test_redaction_hash_with_tenant_salt(pipeline):
    q = pipeline(redaction="hash", redaction_salt="global", tenant_salts={"acme": "acme-salt"})
    with attribute(tenant="acme"), q.tracer.start_as_current_span("a", attributes=CONTENT):
        pass
    with q.tracer.start_as_current_span("b", attributes=CONTENT):
        pass
    a, b = q.attrs("a"), q.attrs("b")
    for key, value in CONTENT.items():
        assert a[key] == Redactor.digest(value, b"acme-salt")
        assert b[key] == Redactor.digest(value, b"global")
        assert a[key].startswith("sha256:") and a[key] != b[key]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redaction": "blur"}, "redaction"),
        ({"extra_keys": "cost_center"}, "extra_keys"),
        ({"tracker_size": 0}, "tracker_size"),
        ({"catalog": PriceCatalog(), "price_overrides": "x.yaml"}, "price_overrides"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenbookSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()), **kwargs)
    with pytest.raises(ValueError, match="wrapped"):
        TokenbookSpanProcessor(InMemorySpanExporter())  # type: ignore[arg-type]


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENBOOK_REDACTION", "keep")
    monkeypatch.setenv("TOKENBOOK_EXTRA_KEYS", "cost_center, region")
    monkeypatch.setenv("TOKENBOOK_PRICE_OVERRIDES", "tests/testdata/prices.yaml")
    p = TokenbookSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert p.settings.redaction == "keep"
    assert p.settings.extra_keys == ("cost_center", "region")
    assert len(p.catalog.overrides) == 3
    assert (
        TokenbookSpanProcessor(
            SimpleSpanProcessor(InMemorySpanExporter()), redaction="drop"
        ).settings.redaction
        == "drop"
    )
    monkeypatch.setenv("TOKENBOOK_METRICS", "maybe")
    with pytest.raises(ValueError, match="TOKENBOOK_METRICS"):
        TokenbookSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))


def test_cost_text_is_the_decimal_string():
    """Costs are formatted from integer pico-dollars exactly as the 12-place Decimal prints."""
    rng = random.Random(7)
    picos = [0, 1, 999_999_999_999, 10**12, 4_125_000_000, -5, -(10**13) - 3]
    picos += [rng.randint(0, 10**26) for _ in range(2000)]
    for pico in picos:
        assert money_text(pico) == format(Decimal(pico).scaleb(-12), "f") == format(money(pico), "f")


@pytest.mark.parametrize(
    ("options", "attrs", "after_start"),
    [
        ({}, chat_attrs(), False),  # calls are tagged by default
        ({}, chat_attrs(), True),  # a call recognised only when it ends: tagged in the exported view
        ({"tag_all_spans": True}, {}, False),  # with tag_all_spans, every span
    ],
    ids=["call", "call-recognised-at-end", "tag-all-spans"],
)
def test_attribution_follows_each_spans_context(pipeline, options, attrs, after_start):
    """Spans started alternately in different contexts (cached per context) get their own values."""
    p = pipeline(**options)
    outer = context.get_current()
    with attribute(tenant="a", user="u1"):
        ctx_a = context.get_current()
        with attribute(user="u2"):
            ctx_b = context.get_current()

    def start(name: str, ctx: context.Context | None = None) -> None:
        span = p.tracer.start_span(name, context=ctx, attributes=None if after_start else attrs)
        if after_start:
            span.set_attributes(attrs)
        span.end()

    for i, ctx in enumerate([ctx_a, ctx_b, ctx_a, outer, ctx_b, ctx_b]):
        start(f"s{i}", ctx)
        token = context.attach(ctx)  # and through the current context (parent_context None)
        try:
            start(f"c{i}")
        finally:
            context.detach(token)
    expected = [("a", "u1"), ("a", "u2"), ("a", "u1"), (None, None), ("a", "u2"), ("a", "u2")]
    for i, (tenant, user) in enumerate(expected):
        for name in (f"s{i}", f"c{i}"):
            a = p.attrs(name)
            if after_start and name.startswith("s"):
                # not a call when it started, and ended outside its context (the parent's): the
                # attribution of the context it ends in is not its own, so none is guessed
                assert "tenant.id" not in a and "user.id" not in a, name
                continue
            assert (a.get("tenant.id"), a.get("user.id")) == (tenant, user), name


def test_budgets_follow_each_spans_context(pipeline):
    p = pipeline()
    with budget(max_tokens=10_000) as b1:
        ctx_1 = context.get_current()
    with budget(max_tokens=10_000) as b2:
        ctx_2 = context.get_current()
    for ctx in [ctx_1, ctx_1, ctx_2, context.get_current(), ctx_2, ctx_1]:
        p.tracer.start_span("chat", context=ctx, attributes=chat_attrs(inp=100, out=10)).end()
    assert (b1.used_tokens, b1.calls, b2.used_tokens, b2.calls) == (330, 3, 220, 2)


def test_dated_prices_apply_per_span_start(pipeline):
    """o3 changed price on 2025-06-10: each span is priced at its own start time, also when cached."""
    p = pipeline()
    before = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1e9)
    after = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp() * 1e9)
    for name, start in [("b1", before), ("a1", after), ("b2", before), ("a2", after)]:
        span = p.tracer.start_span(name, start_time=start, attributes=chat_attrs("o3", inp=10**6, out=0))
        span.end(end_time=start + 1)
    assert p.attrs("b1")["tokenbook.cost.total"] == p.attrs("b2")["tokenbook.cost.total"] == "10.000000000000"
    assert p.attrs("a1")["tokenbook.cost.total"] == p.attrs("a2")["tokenbook.cost.total"] == "2.000000000000"


def test_enriched_copy_keeps_every_other_field(pipeline):
    p = pipeline()
    with p.tracer.start_as_current_span("parent"):
        link = trace.Link(trace.SpanContext(1, 2, is_remote=True), {"why": "retry"})
        span = p.tracer.start_span("chat", kind=trace.SpanKind.CLIENT, links=[link], attributes=chat_attrs())
        span.add_event("e", {"k": 1})
        span.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
        span.end()
    out = p.spans()["chat"]
    assert "tokenbook.cost.total" in (out.attributes or {})  # it is the enriched copy
    for field in ("name", "context", "parent", "resource", "kind", "start_time", "end_time"):
        assert getattr(out, field) == getattr(span, field), field
    assert out.instrumentation_scope == span.instrumentation_scope
    assert (out.status.status_code, out.status.description) == (trace.StatusCode.ERROR, "boom")
    assert [(lk.context, dict(lk.attributes or {})) for lk in out.links] == [(link.context, {"why": "retry"})]
    assert [(e.name, dict(e.attributes or {})) for e in out.events] == [("e", {"k": 1})]
    assert out.to_json()  # the SDK's own serialisation reads the copy's fields


def test_enriched_copy_keeps_links_and_drop_counts_of_the_source():
    """The copy reads the links from the ended span when asked; every drop count is the source's."""
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    collected: list = []

    class _Keep(SpanProcessor):
        def on_end(self, span):
            collected.append(span)

    exporter = InMemorySpanExporter()
    source = _Keep()
    provider = TracerProvider(span_limits=SpanLimits(max_links=1, max_events=1))
    provider.add_span_processor(source)  # sees the SDK's ended span, before tokenbook's copy
    provider.add_span_processor(TokenbookSpanProcessor(SimpleSpanProcessor(exporter)))
    links = [trace.Link(trace.SpanContext(1, n, is_remote=True), {"n": n}) for n in (2, 3)]
    span = provider.get_tracer("t").start_span("chat", links=links, attributes=chat_attrs())
    span.add_event("first", {"k": 1})
    span.add_event("second", {"k": 2})
    span.end()
    (out,) = exporter.get_finished_spans()
    (ended,) = collected
    assert out is not ended and "tokenbook.cost.total" in (out.attributes or {})
    assert (out.dropped_links, out.dropped_events) == (ended.dropped_links, ended.dropped_events) == (1, 1)
    assert [(lk.context.span_id, dict(lk.attributes or {})) for lk in out.links] == [(3, {"n": 3})]
    assert [e.name for e in out.events] == ["second"]
    assert '"links"' in out.to_json() and out.links == ended.links


def test_service_tiers_are_priced_at_their_own_rates_or_not_at_all(pipeline):
    """gpt-5 at the flex tier is priced at the catalog's flex rate; gpt-4o has no flex price: unpriced,
    never priced at the standard rate."""
    p = pipeline()
    start = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1e9)
    for name, model in (("flex-5", "gpt-5"), ("flex-4o", "gpt-4o")):
        attrs = {**chat_attrs(model, inp=10**6, out=0), "openai.response.service_tier": "flex"}
        span = p.tracer.start_span(name, start_time=start, attributes=attrs)
        span.end(end_time=start + 1)
    flex = p.attrs("flex-5")
    assert flex["tokenbook.cost.total"] == "0.625000000000" and "flex tier" in flex["tokenbook.price.source"]
    unpriced = p.attrs("flex-4o")
    assert unpriced["tokenbook.price.status"] == "unpriced"
    assert "no flex tier price for openai/gpt-4o" in unpriced["tokenbook.price.source"]
