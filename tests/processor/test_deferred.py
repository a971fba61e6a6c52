"""What runs where: the no-op path, attribution only on calls, and the lazy view read by the exporter."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import pytest
from opentelemetry import context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.processor import TokenbookSpanProcessor, attribute, budget

from .conftest import Collect, chat_attrs

HTTP: dict[str, Any] = {
    "http.request.method": "GET",
    "http.route": "/orders/{id}",
    "http.response.status_code": 200,
}
CONTENT: dict[str, Any] = {
    "gen_ai.input.messages": '[{"role":"user","content":"SECRET-1"}]',
    "gen_ai.completion.0.content": "SECRET-2",
    "llm.input_messages.0.message.content": "SECRET-3",
}


def _setup(**options: Any) -> tuple[TracerProvider, Collect, Collect, TokenbookSpanProcessor]:
    """A provider whose first processor sees the SDK's ended spans and whose second is tokenbook's."""
    provider = TracerProvider()
    before, after = Collect(), Collect()
    provider.add_span_processor(before)
    processor = TokenbookSpanProcessor(after, **options)
    provider.add_span_processor(processor)
    return provider, before, after, processor


# --- spans with nothing for tokenbook -------------------------------------------------------------
@pytest.mark.parametrize("with_baggage", [False, True])
def test_plain_spans_are_handed_on_as_they_are_and_leave_no_state(with_baggage):
    provider, before, after, processor = _setup()
    tracer = provider.get_tracer("t")
    with attribute(tenant="acme") if with_baggage else contextlib.nullcontext(), budget(max_tokens=10):
        for i in range(50):
            with (
                tracer.start_as_current_span("GET /orders", attributes=HTTP),
                tracer.start_as_current_span(f"SELECT {i}", attributes={"db.system": "postgresql"}),
            ):
                pass
    assert len(after.spans) == 100
    assert all(out is ended for out, ended in zip(after.spans, before.spans, strict=True))  # no copy
    assert all("tenant.id" not in (s.attributes or {}) for s in after.spans)  # not a call: not tagged
    assert not processor._started_calls and not processor._workflows
    assert len(processor._tracker) == 0 and processor.errors == 0


def test_tag_all_spans_tags_every_span(monkeypatch):
    provider, _, after, processor = _setup(tag_all_spans=True)
    assert processor.settings.tag_all_spans
    with attribute(tenant="acme"), provider.get_tracer("t").start_as_current_span("GET", attributes=HTTP):
        pass
    assert dict(after.spans[0].attributes or {})["tenant.id"] == "acme"
    monkeypatch.setenv("TOKENBOOK_TAG_ALL_SPANS", "true")
    assert TokenbookSpanProcessor(SpanProcessor()).settings.tag_all_spans
    assert not TokenbookSpanProcessor(SpanProcessor(), tag_all_spans=False).settings.tag_all_spans
    monkeypatch.setenv("TOKENBOOK_TAG_ALL_SPANS", "sometimes")
    with pytest.raises(ValueError, match="TOKENBOOK_TAG_ALL_SPANS"):
        TokenbookSpanProcessor(SpanProcessor())
    with pytest.raises(ValueError, match="tag_all_spans"):
        TokenbookSpanProcessor(SpanProcessor(), tag_all_spans="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("chat gpt-4o", {}),  # by name
        ("step", {"gen_ai.operation.name": "execute_tool"}),
        ("step", {"openinference.span.kind": "AGENT"}),
        ("step", {"llm.request.type": "chat"}),
        ("step", {"traceloop.span.kind": "workflow"}),
    ],
)
def test_calls_recognised_at_start_are_tagged_on_the_live_span(name, attrs):
    provider, before, after, _ = _setup()
    with attribute(tenant="acme"), provider.get_tracer("t").start_as_current_span(name, attributes=attrs):
        pass
    assert dict(before.spans[0].attributes or {})["tenant.id"] == "acme"  # set in on_start
    assert dict(after.spans[0].attributes or {})["tokenbook.call.kind"] in {"model", "tool", "wrapper"}


def test_call_recognised_at_end_gets_attribution_and_budget_in_the_exported_view(pipeline):
    p = pipeline()
    with attribute(tenant="acme", user="alice"), budget(max_tokens=10**6) as b:
        span = p.tracer.start_span("llm call")  # nothing says "model" yet
        span.set_attributes({"tenant.id": "set-by-app", **chat_attrs()})
        span.end()
    a = p.attrs("llm call")
    assert (a["tenant.id"], a["user.id"]) == ("set-by-app", "alice")  # the app's own value wins
    assert a["tokenbook.budget.state"] == "within_budget" and b.used_tokens == 1100
    assert not p.processor._started_calls


def test_usage_mark_climbs_through_spans_that_need_nothing(pipeline):
    p = pipeline()
    agent = {**chat_attrs(), "gen_ai.operation.name": "invoke_agent"}
    for i in range(2):  # the second time, the HTTP spans take the no-op path (keys and names known)
        with (
            p.tracer.start_as_current_span(f"agent {i}", attributes=agent),
            p.tracer.start_as_current_span("GET a", attributes=HTTP),
            p.tracer.start_as_current_span("GET b", attributes=HTTP),
            p.tracer.start_as_current_span(f"chat {i}", attributes=chat_attrs()),
        ):
            pass
        assert p.attrs(f"agent {i}")["tokenbook.billable"] is False  # its child's usage climbed to it
        assert p.attrs(f"chat {i}")["tokenbook.price.status"] == "priced"
    assert "tokenbook.call.kind" not in p.attrs("GET a")
    assert len(p.processor._tracker) == 0


# --- content is never skipped ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["attributes", "event", "late-attribute", "new-indexed-key"])
def test_content_on_spans_with_no_genai_signal_is_redacted(where):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TokenbookSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("t")
    for _ in range(3):  # the key memos have learned the plain keys before the content arrives
        tracer.start_span("GET", attributes=HTTP).end()
    span = tracer.start_span("GET", attributes=HTTP)
    if where == "attributes":
        span.set_attributes(CONTENT)
    elif where == "event":
        span.add_event("log", {"gen_ai.prompt": "SECRET-4", "level": "info"})
    elif where == "late-attribute":
        span.set_attribute("input.value", "SECRET-5")
    else:
        span.set_attribute("llm.output_messages.7.message.content", "SECRET-6")
    span.end()
    out = exporter.get_finished_spans()[-1]
    _assert_no_secret(out)
    assert dict(out.attributes or {})["http.route"] == "/orders/{id}"


def _assert_no_secret(span: ReadableSpan) -> None:
    """No public or private path of `span` shows content, nor does its OTLP encoding."""
    assert "SECRET" not in json.dumps(dict(span.attributes or {}))
    assert all("SECRET" not in json.dumps(dict(e.attributes or {})) for e in span.events)
    assert "SECRET" not in span.to_json()
    assert b"SECRET" not in encode_spans([span]).SerializeToString()
    private_attrs = span._attributes  # what ReadableSpan's own methods read
    assert "SECRET" not in json.dumps(dict(private_attrs or {}))
    assert all("SECRET" not in json.dumps(dict(e.attributes or {})) for e in span._events)


def test_no_exporter_sees_content_through_the_batch_processor():
    seen: list[bytes] = []

    class _Encoding(InMemorySpanExporter):
        def export(self, spans):
            seen.append(encode_spans(spans).SerializeToString())
            for span in spans:
                _assert_no_secret(span)
            return super().export(spans)

    exporter = _Encoding()
    provider = TracerProvider()
    provider.add_span_processor(TokenbookSpanProcessor(BatchSpanProcessor(exporter)))
    tracer = provider.get_tracer("t")
    with attribute(tenant="acme"), budget(max_tokens=10**9):
        for i in range(20):
            attrs: dict[str, Any] = chat_attrs(**CONTENT) if i % 2 else {**HTTP, **CONTENT}
            with tracer.start_as_current_span(f"s{i}", attributes=attrs) as s:
                s.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "SECRET-7"})
    provider.force_flush()
    provider.shutdown()
    assert len(exporter.get_finished_spans()) == 20 and seen
    assert all(b"SECRET" not in batch for batch in seen)
    priced = [s for s in exporter.get_finished_spans() if "tokenbook.cost.total" in (s.attributes or {})]
    assert len(priced) == 10


# --- the lazy view --------------------------------------------------------------------------------
class _CountingCatalog(PriceCatalog):
    def __init__(self) -> None:
        super().__init__()
        self.quotes = 0
        self.threads: set[str] = set()

    def quote(self, *args: Any, **kwargs: Any) -> Any:
        self.quotes += 1
        self.threads.add(threading.current_thread().name)
        return super().quote(*args, **kwargs)


def test_pricing_runs_where_the_span_is_first_read_and_once():
    catalog = _CountingCatalog()
    provider, before, after, _ = _setup(catalog=catalog)
    with provider.get_tracer("t").start_as_current_span("chat", attributes=chat_attrs()):
        pass
    assert catalog.quotes == 0  # nothing priced on the thread that ended the span
    (view,) = after.spans
    (ended,) = before.spans
    results: list[Any] = []
    readers = [
        threading.Thread(target=lambda: results.append(view.attributes), name=f"r{i}") for i in range(8)
    ]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    assert catalog.quotes == 1 and len({id(r) for r in results}) == 1
    assert catalog.threads <= {f"r{i}" for i in range(8)}
    assert dict(view.attributes or {})["tokenbook.cost.total"] == "0.003500000000"
    for field in ("name", "context", "parent", "resource", "kind", "status", "start_time", "end_time"):
        assert getattr(view, field) == getattr(ended, field), field
    assert view.get_span_context() == ended.get_span_context()
    assert view.instrumentation_scope == ended.instrumentation_scope
    assert (view.links, view.events) == (ended.links, ended.events)
    assert (view.dropped_attributes, view.dropped_events, view.dropped_links) == (0, 0, 0)
    assert json.loads(view.to_json())["attributes"]["tokenbook.call.kind"] == "model"
    assert "tokenbook.cost.total" not in (ended.attributes or {})  # the ended span is untouched


def test_a_budget_prices_on_the_ending_thread():
    catalog = _CountingCatalog()
    provider, _, after, _ = _setup(catalog=catalog)
    tracer = provider.get_tracer("t")
    with budget(max_tokens=100) as b:
        tracer.start_span("chat", attributes=chat_attrs()).end()
        assert b.state == "over_budget"  # known as soon as end() returns
    assert catalog.quotes == 1 and catalog.threads == {threading.current_thread().name}
    assert dict(after.spans[0].attributes or {})["tokenbook.price.status"] == "priced"
    assert catalog.quotes == 1


def test_metrics_price_where_the_view_is_first_read():
    catalog = _CountingCatalog()
    provider, _, after, _ = _setup(catalog=catalog, metrics=True)
    provider.get_tracer("t").start_span("chat", attributes=chat_attrs()).end()
    assert catalog.quotes == 0  # nothing priced on the thread that ended the span
    reader = threading.Thread(target=lambda: after.spans[0].attributes, name="exporter")
    reader.start()
    reader.join()
    assert catalog.quotes == 1 and catalog.threads == {"exporter"}
    assert dict(after.spans[0].attributes or {})["tokenbook.price.status"] == "priced"
    assert catalog.quotes == 1


def test_deferred_errors_fall_back_to_redacted_attributes(pipeline, monkeypatch):
    p = pipeline()
    monkeypatch.setattr(p.processor, "_price", _boom)
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**CONTENT)):
        pass
    (out,) = p.exporter.get_finished_spans()
    a = dict(out.attributes or {})
    assert "tokenbook.call.kind" not in a and a["gen_ai.operation.name"] == "chat"
    _assert_no_secret(out)
    assert p.processor.errors == 1


def test_failing_redaction_in_the_deferred_part_exports_no_content(pipeline, monkeypatch):
    p = pipeline(redaction="hash")
    monkeypatch.setattr(p.processor._redactor, "apply", _boom)
    with p.tracer.start_as_current_span("chat", attributes=chat_attrs(**CONTENT)) as s:
        s.add_event("e", {"gen_ai.prompt": "SECRET-8"})
    (out,) = p.exporter.get_finished_spans()
    _assert_no_secret(out)
    assert dict(out.attributes or {})["gen_ai.operation.name"] == "chat"
    assert out.events == () and p.processor.errors == 1


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a bug")


def test_parent_context_cache_does_not_leak_attribution_between_contexts(pipeline):
    """A span started in a context without Baggage after one with it gets nothing."""
    p = pipeline()
    with attribute(tenant="acme"):
        p.tracer.start_span("llm 1").end()
    span = p.tracer.start_span("llm 2", context=context.Context())
    span.set_attributes(chat_attrs())
    span.end()
    assert "tenant.id" not in p.attrs("llm 2")
