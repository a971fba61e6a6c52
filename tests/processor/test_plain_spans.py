"""Spans with nothing for tokenbook: handed on as they are, with no attribution and no state kept.

Each test runs three times: through the plain-span path in C (`PlainSpans`, the default where it is
built), with the SDK's span fields read in place in Python (a build without a C compiler), and through
the public properties only (as with an SDK that keeps them elsewhere); all must give the same results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from tokenbook.processor import TokenbookSpanProcessor, attribute, budget
from tokenbook.processor import span_processor as module

from .conftest import Collect, chat_attrs

HTTP: dict[str, Any] = {
    "http.request.method": "GET",
    "http.route": "/orders/{id}",
    "url.path": "/orders/42",
    "server.address": "api.example.com",
    "server.port": 443,
    "http.response.status_code": 200,
}
DB: dict[str, Any] = {"db.system": "postgresql", "db.query.text": "SELECT 1"}


@pytest.fixture(params=["c-path", "sdk-fields", "public-properties"], autouse=True)
def span_reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run each test through the C path, then the in-place reads in Python, then the public properties."""
    assert module._SDK_LIVE is not module._Unmatched  # this SDK keeps them where the processor looks
    assert module._SDK_ENDED is ReadableSpan
    if request.param == "c-path" and module.PlainSpans is None:
        pytest.skip("the C path was not built (no C compiler)")
    if request.param != "c-path":  # as a build without a C compiler
        monkeypatch.setattr(module, "PlainSpans", None)
    if request.param == "public-properties":  # no span is of the SDK's classes any more
        monkeypatch.setattr(module, "_SDK_LIVE", module._Unmatched)
        monkeypatch.setattr(module, "_SDK_ENDED", module._Unmatched)
    yield request.param


def _setup(**options: Any) -> tuple[trace.Tracer, Collect, Collect, TokenbookSpanProcessor]:
    """A tracer whose first processor sees the SDK's ended spans and whose second is tokenbook's."""
    provider = TracerProvider()
    before, after = Collect(), Collect()
    provider.add_span_processor(before)
    processor = TokenbookSpanProcessor(after, **options)
    provider.add_span_processor(processor)
    return provider.get_tracer("t"), before, after, processor


@pytest.mark.parametrize("with_baggage", [False, True], ids=["", "baggage"])
@pytest.mark.parametrize("with_budget", [False, True], ids=["", "budget"])
def test_a_span_without_genai_keys_is_exported_unchanged_and_untagged(with_baggage, with_budget):
    tracer, before, after, processor = _setup()
    with contextlib.ExitStack() as stack:
        if with_baggage:
            stack.enter_context(attribute(tenant="acme", user="alice"))
        if with_budget:
            stack.enter_context(budget(max_tokens=10))
        for _ in range(3):  # the first time keys and names are learned, then the one-check path
            with (
                tracer.start_as_current_span("GET /orders/{id}", attributes=HTTP),
                tracer.start_as_current_span("SELECT", attributes=DB) as db,
            ):
                db.add_event("retry", {"attempt": 1})
    assert len(after.spans) == 6
    assert all(out is ended for out, ended in zip(after.spans, before.spans, strict=True))  # no copy
    for out in after.spans:
        assert dict(out.attributes or {}) in (HTTP, DB)  # nothing added: no attribution, no kind
    assert processor._start_cache is None  # not calls, even when first seen: their contexts were never read
    assert not processor._started_calls and not processor._workflows and len(processor._tracker) == 0
    assert processor.errors == 0 and processor.downstream_errors == 0


def test_tag_all_spans_puts_the_attribution_on_every_span():
    tracer, _, after, _ = _setup(tag_all_spans=True)
    with attribute(tenant="acme", user="alice"), tracer.start_as_current_span("GET", attributes=HTTP):
        pass
    assert dict(after.spans[0].attributes or {}) == {**HTTP, "tenant.id": "acme", "user.id": "alice"}


def test_calls_beside_plain_spans_are_still_enriched():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = TokenbookSpanProcessor(BatchSpanProcessor(exporter))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with attribute(tenant="acme"), budget(max_tokens=10**6) as b:
        for _ in range(2):
            with (
                tracer.start_as_current_span("GET /orders/{id}", attributes=HTTP),
                tracer.start_as_current_span("chat gpt-4o", attributes=chat_attrs()),
            ):
                pass
    provider.force_flush()
    spans = exporter.get_finished_spans()
    chats = [dict(s.attributes or {}) for s in spans if s.name == "chat gpt-4o"]
    assert len(chats) == 2 and b.used_tokens == 2200
    for a in chats:
        assert (a["tenant.id"], a["tokenbook.price.status"]) == ("acme", "priced")
        assert a["tokenbook.workflow.name"] == "GET /orders/{id}"
    assert all(dict(s.attributes or {}) == HTTP for s in spans if s.name.startswith("GET"))
    assert not processor._started_calls and not processor._workflows
    provider.shutdown()


def test_content_in_an_event_of_a_plain_span_is_redacted():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TokenbookSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("t")
    for _ in range(2):  # the second time the span's keys and name are known
        with tracer.start_as_current_span("GET", attributes=HTTP) as span:
            span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "SECRET"})
    for out in exporter.get_finished_spans():
        assert "SECRET" not in repr([dict(e.attributes or {}) for e in out.events])


def test_a_call_recognised_at_its_end_takes_its_own_context():
    """Not a call when it started; ended where its own span is current: that context's attribution."""
    tracer, _, after, _ = _setup()
    with (
        attribute(tenant="acme"),
        budget(max_tokens=10**6) as b,
        tracer.start_as_current_span("step", end_on_exit=False) as span,
    ):
        span.set_attributes(chat_attrs())
        span.end()
    a = dict(after.spans[0].attributes or {})
    assert a["tenant.id"] == "acme" and a["tokenbook.budget.state"] == "within_budget"
    assert b.used_tokens == 1100


def test_a_call_recognised_at_its_end_elsewhere_gets_nothing_guessed():
    """Started under one parent and ended while another span is current: neither that span's attribution
    nor its budget is taken."""
    tracer, _, after, processor = _setup()
    with attribute(tenant="acme"), tracer.start_as_current_span("parent"):
        span = tracer.start_span("step")
    with attribute(tenant="other"), budget(max_tokens=10**6) as b, tracer.start_as_current_span("elsewhere"):
        span.set_attributes(chat_attrs())
        span.end()
    a = {s.name: dict(s.attributes or {}) for s in after.spans}["step"]
    assert "tenant.id" not in a and "tokenbook.budget.state" not in a and b.used_tokens == 0
    assert a["tokenbook.price.status"] == "priced" and processor.errors == 0


def test_the_wrapped_on_start_is_called_when_it_does_something():
    tracer, _, after, processor = _setup()
    with tracer.start_as_current_span("GET", attributes=HTTP):
        pass
    assert len(after.started) == 1 and processor._wrapped_on_start is not None
    assert TokenbookSpanProcessor(BatchSpanProcessor(InMemorySpanExporter()))._wrapped_on_start is None
    assert TokenbookSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))._wrapped_on_start is None


def test_tag_all_spans_under_a_budget_charges_the_calls_only():
    tracer, _, after, processor = _setup(tag_all_spans=True)
    with (
        attribute(tenant="acme"),
        budget(max_tokens=10**6) as b,
        tracer.start_as_current_span("GET", attributes=HTTP),
    ):
        assert not processor._started_calls  # a plain span is tagged, not remembered
        with tracer.start_as_current_span("chat gpt-4o", attributes=chat_attrs()):
            assert len(processor._started_calls) == 1
    spans = {s.name: dict(s.attributes or {}) for s in after.spans}
    assert spans["GET"] == {**HTTP, "tenant.id": "acme"}
    assert spans["chat gpt-4o"]["tokenbook.budget.state"] == "within_budget" and b.used_tokens == 1100
    assert not processor._started_calls and processor.errors == 0


def test_ended_spans_built_by_other_code_from_plain_mappings_are_read_through_the_public_properties():
    """A ReadableSpan built by another processor from a dict and a list: not the SDK's own fields."""
    exporter = InMemorySpanExporter()
    processor = TokenbookSpanProcessor(SimpleSpanProcessor(exporter))
    context = SpanContext(0xABC, 0xDEF, False, TraceFlags(TraceFlags.SAMPLED))
    secret = {**HTTP, "gen_ai.prompt": "SECRET"}
    built = [
        ReadableSpan("GET", context, attributes=dict(HTTP), events=[]),
        ReadableSpan("GET", context, attributes=secret, events=[Event("e", {"gen_ai.completion": "SECRET"})]),
    ]
    for span in [*built, built[0]]:  # the plain one again once its keys and name are known
        processor.on_end(span)
    plain, redacted, plain_again = exporter.get_finished_spans()
    assert plain_again is built[0] and dict(plain.attributes or {}) == HTTP
    assert "SECRET" not in repr(dict(redacted.attributes or {})) + repr(
        [dict(e.attributes or {}) for e in redacted.events]
    )
    assert processor.errors == 0 and processor.downstream_errors == 0


def test_the_probe_finds_the_sdk_span_classes_and_falls_back_when_they_differ(monkeypatch):
    live, ended = module._sdk_span_types()
    assert ended is ReadableSpan and issubclass(live, Span)
    assert type(TracerProvider().get_tracer("t").start_span("s")) is live
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # the app's sampling: not the probe's
    assert module._sdk_span_types() == (live, ended)

    class Moved(ReadableSpan):  # an SDK that keeps the fields elsewhere: the probe's spans lack them
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise TypeError("not this SDK")

    monkeypatch.setattr(module, "TracerProvider", Moved)
    assert module._sdk_span_types() == (module._Unmatched, module._Unmatched)
