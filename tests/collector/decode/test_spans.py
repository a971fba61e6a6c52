"""OTLP decoding: real SDK spans encoded by the exporter's encoder, OTLP/JSON per the spec, bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import replace

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tests.protowire import delimited, fixed64, varint
from tokenbook.collector.decode import spans as spans_module
from tokenbook.collector.decode.spans import (
    KeyFilter,
    MalformedRequest,
    Part,
    SpanRecord,
    decode_json,
    decode_protobuf,
)
from tokenbook.collector.ingest.rows import pipeline_keys
from tokenbook.collector.limits import NAME_TRUNCATED, AttributeLimits, LimitsConfig

KEYS = pipeline_keys((), "drop")


def _spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", "tenant.id": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span(
            "invoke_agent triage", attributes={"gen_ai.operation.name": "invoke_agent"}
        ),
        tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": "40",
                "gen_ai.completion": "my secret answer",  # output content: never decoded under drop
                "http.url": "https://api.openai.com",
                "tenant.id": "globex",
            },
        ) as span,
    ):
        span.add_event("tokenbook.outcome", {"tokenbook.outcome": "resolved"})
        span.set_status(Status(StatusCode.ERROR))
    return exporter.get_finished_spans()


def test_protobuf_keeps_only_needed_keys_and_raw_ids() -> None:
    spans = _spans()
    decoded = decode_protobuf(encode_spans(spans).SerializeToString(), KEYS)
    assert decoded.rejected == 0
    assert all(len(r) == len(SpanRecord._fields) for r in decoded.records)  # built without its checks
    chat, agent = decoded.records
    ctx = spans[0].context
    assert chat.trace_id == ctx.trace_id.to_bytes(16, "big")
    assert chat.span_id == ctx.span_id.to_bytes(8, "big")
    assert chat.parent_span_id == agent.span_id and agent.parent_span_id == b""
    assert chat.service_name == "support-bot"
    assert chat.attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": "40",
        "tenant.id": "globex",  # the span's value wins over the resource's
    }
    assert agent.attrs["tenant.id"] == "acme"
    assert chat.outcome == "resolved" and chat.error
    assert chat.start_ns == spans[0].start_time and chat.end_ns == spans[0].end_time


def test_content_is_decoded_only_when_configured() -> None:
    body = encode_spans(_spans()).SerializeToString()
    kept = decode_protobuf(body, pipeline_keys((), "hash")).records[0]
    assert kept.attrs["gen_ai.completion"] == "my secret answer"


def _json_request(spans: list[dict]) -> bytes:
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}],
            }
        ]
    }
    return json.dumps(doc).encode()


def _json_span(span_id: str = "00f067aa0ba902b7", **extra) -> dict:
    span = {
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": span_id,
        "parentSpanId": "",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000001500000000,
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1500"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 20}},
            {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.25}},
            {"key": "llm.is_streaming", "value": {"boolValue": True}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
        ],
        "status": {"code": 2},
    }
    span.update(extra)
    return span


def test_json_follows_the_otlp_json_mapping() -> None:
    decoded = decode_json(_json_request([_json_span()]), KEYS)
    (rec,) = decoded.records
    assert rec.trace_id == bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    assert rec.span_id == bytes.fromhex("00f067aa0ba902b7")
    assert rec.start_ns == 1_700_000_000_000_000_000 and rec.end_ns == 1_700_000_001_500_000_000
    assert rec.attrs["gen_ai.usage.input_tokens"] == 1500
    assert rec.attrs["gen_ai.usage.cost"] == 0.25
    assert "llm.is_streaming" not in rec.attrs
    assert rec.service_name == "svc" and rec.error


def test_json_bad_span_is_rejected_and_its_siblings_kept() -> None:
    bad_id = _json_span(span_id="zz")
    bad_int = _json_span(
        span_id="00f067aa0ba902b8",
        attributes=[{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "twelve"}}],
    )
    good = _json_span(span_id="00f067aa0ba902b9")
    decoded = decode_json(_json_request([bad_id, good, bad_int]), KEYS)
    assert [r.span_id.hex() for r in decoded.records] == ["00f067aa0ba902b9"]
    assert decoded.rejected == 2
    assert "spanId" in decoded.reason or "hex" in decoded.reason


def test_protobuf_span_with_bad_ids_is_rejected() -> None:
    request = encode_spans(_spans())
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 5
    decoded = decode_protobuf(request.SerializeToString(), KEYS)
    assert decoded.rejected == 1 and len(decoded.records) == 1
    assert decoded.reason.startswith("invalid trace_id")


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        (decode_protobuf, encode_spans(_spans()).SerializeToString()[:-7]),
        (decode_protobuf, b"\xff\xff\xff\xff"),
        (decode_json, b"{not json"),
        (decode_json, b"[1, 2]"),
        (decode_json, b'{"resourceSpans": {"a": 1}}'),
    ],
)
def test_malformed_requests_raise(decode, body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        decode(body, KEYS)


def test_an_attribute_key_that_is_not_utf8_is_ignored() -> None:
    request = encode_spans(_spans())
    body = request.SerializeToString().replace(b"gen_ai.request.model", b"gen_ai.request.mod\xff\xfe")
    decoded = decode_protobuf(body, KEYS)
    assert decoded.rejected == 0 and len(decoded.records) == 2
    assert all("gen_ai.request.model" not in r.attrs for r in decoded.records)


# --- hand-encoded protobuf: what an SDK would never send -------------------------------------------


def _string_value(raw: bytes) -> bytes:
    return delimited(1, raw)  # AnyValue.string_value


def _int_value(n: int) -> bytes:
    return varint(3 << 3) + varint(n)  # AnyValue.int_value


def _nested(levels: int) -> bytes:
    value = _string_value(b"deep")
    for _ in range(levels):
        value = delimited(5, delimited(1, value))  # AnyValue.array_value -> ArrayValue.values
    return value


def _nested_kvlist(levels: int) -> bytes:
    value = _string_value(b"deep")
    for _ in range(levels):
        value = delimited(6, delimited(1, _kv("k", value)))  # AnyValue.kvlist_value -> values -> KeyValue
    return value


def _kv(key: str, any_value: bytes) -> bytes:
    return delimited(1, key.encode()) + delimited(2, any_value)


def _span(span_id: int, *attributes: bytes, now: int = 1_700_000_000_000_000_000) -> bytes:
    body = (
        delimited(1, bytes(range(1, 17)))
        + delimited(2, span_id.to_bytes(8, "big"))
        + delimited(5, b"chat gpt-4o")
    )
    body += fixed64(7, now) + fixed64(8, now + 10**9)
    usage = (
        _kv("gen_ai.operation.name", _string_value(b"chat")),
        _kv("gen_ai.usage.input_tokens", _int_value(7)),
    )
    for kv in (*usage, *attributes):
        body += delimited(9, kv)
    return body


def _request(*spans: bytes) -> bytes:
    resource = delimited(1, _kv("service.name", _string_value(b"svc")))
    scope_spans = b"".join(delimited(2, s) for s in spans)
    return delimited(1, delimited(1, resource) + delimited(2, scope_spans))  # Request.resource_spans


BAD_CONTENT = {
    "kvlist nested 34 levels": _kv("gen_ai.prompt", _nested_kvlist(34)),
    "array nested 60 levels": _kv("gen_ai.completion", _nested(60)),
    "invalid UTF-8": _kv("gen_ai.prompt", _string_value(b"caf\xc3(\xff\xfe")),
    "not an AnyValue": _kv("input.value", b"\xff\xff\xff"),
}


@pytest.mark.parametrize("bad", list(BAD_CONTENT), ids=list(BAD_CONTENT))
def test_a_bad_content_value_is_never_decoded_under_drop(bad: str) -> None:
    body = _request(_span(1), _span(2, BAD_CONTENT[bad]), _span(3))
    decoded = decode_protobuf(body, KEYS)
    assert (len(decoded.records), decoded.rejected) == (3, 0)
    # Input content is decoded only to measure the prompt's composition; an unreadable value is left
    # out (a kvlist is never read: None), and nothing of it is a reason to reject the span.
    readable = {k: v for k, v in decoded.records[1].attrs.items() if v is not None}
    assert readable == {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7}


UNREADABLE = [k for k in BAD_CONTENT if "kvlist" not in k]  # a kvlist value is never read: no error


@pytest.mark.parametrize("bad", UNREADABLE, ids=UNREADABLE)
@pytest.mark.parametrize("mode", ["keep", "hash"])
def test_a_bad_content_value_rejects_only_its_span_when_content_is_read(bad: str, mode: str) -> None:
    keys = pipeline_keys((), mode)
    body = _request(_span(1), _span(2, BAD_CONTENT[bad]), _span(3))
    for _ in range(2):  # cold, then from the attribute memo
        decoded = decode_protobuf(body, keys)
        assert [r.span_id[-1] for r in decoded.records] == [1, 3]
        assert decoded.rejected == 1 and decoded.reason.startswith("span rejected: attribute")


@pytest.mark.parametrize("mode", ["keep", "hash"])
def test_a_deep_kvlist_content_value_keeps_its_span_when_content_is_read(mode: str) -> None:
    body = _request(_span(1), _span(2, BAD_CONTENT["kvlist nested 34 levels"]), _span(3))
    decoded = decode_protobuf(body, pipeline_keys((), mode))
    assert (len(decoded.records), decoded.rejected) == (3, 0)
    assert decoded.records[1].attrs["gen_ai.prompt"] is None  # kvlist values are not read


def test_kept_values_decode_through_the_views_as_before() -> None:
    array = delimited(
        5, delimited(1, _int_value(1)) + delimited(1, _string_value("é".encode())) + delimited(1, _nested(2))
    )
    decoded = decode_protobuf(_request(_span(1, _kv("tokenbook.tag.x", array))), KEYS)
    assert decoded.records[0].attrs["tokenbook.tag.x"] == (1, "é", (("deep",),))
    assert decoded.records[0].service_name == "svc"
    body = _request(_span(1, _kv("tokenbook.tag.x", _nested(17))), _span(2))
    decoded = decode_protobuf(body, KEYS)
    assert (len(decoded.records), decoded.rejected) == (1, 1) and "deeper than 16" in decoded.reason


def test_a_bad_kept_resource_value_rejects_the_resource_spans_not_the_request() -> None:
    bad = delimited(1, _kv("service.name", _string_value(b"\xff")))
    good = delimited(1, _kv("service.name", _string_value(b"svc")))
    body = delimited(1, delimited(1, bad) + delimited(2, delimited(2, _span(1)))) + delimited(
        1, delimited(1, good) + delimited(2, delimited(2, _span(2)))
    )
    decoded = decode_protobuf(body, KEYS)
    assert [r.span_id[-1] for r in decoded.records] == [2] and decoded.rejected == 1


def test_kept_values_over_the_length_limit_reject_their_span_only() -> None:
    spans = _spans()  # the agent span's operation is "invoke_agent" (12 characters); the chat's are shorter
    limited = replace(KEYS, limits=AttributeLimits(max_attributes=64, max_value_length=11))
    body = encode_spans(spans).SerializeToString()
    for _ in range(2):  # cold, then from the attribute memo
        decoded = decode_protobuf(body, limited)
        assert [r.name for r in decoded.records] == ["chat gpt-4o"]
        assert decoded.rejected == 1
        assert "max_attribute_value_length=11" in decoded.reason


def _long_conversation(n_messages: int, extra: Mapping[str, AttributeValue]) -> list:
    """An OpenInference-shaped chat span (each message flattened into role, content and name
    attributes), with its usage and `extra` attributes."""
    exporter = InMemorySpanExporter()
    # the SDK's own limit (128 attributes by default) would drop them at the source: an app that raised it
    provider = TracerProvider(
        resource=Resource.create({"service.name": "agent"}),
        span_limits=SpanLimits(max_span_attributes=10_000),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.provider": "openai",
        "llm.token_count.prompt": 90_000,
        "llm.token_count.completion": 300,
        "tenant.id": "acme",
    }
    for i in range(n_messages):
        attributes[f"llm.input_messages.{i}.message.role"] = "user" if i % 2 else "assistant"
        attributes[f"llm.input_messages.{i}.message.content"] = f"message {i}"
        attributes[f"llm.input_messages.{i}.message.name"] = "n"
    attributes.update(extra)
    with provider.get_tracer("openinference.instrumentation.langchain").start_as_current_span(
        "ChatOpenAI", attributes=attributes
    ):
        pass
    return list(exporter.get_finished_spans())


def test_a_span_is_refused_for_the_attributes_the_collector_keeps_not_for_those_it_does_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long conversation flattened into 1,200 message attributes (content, measured then dropped)
    and 30 attributes the collector does not read are no reason to lose the call (it was rejected
    with "span has 1236 attributes"); 30 tags, which the collector keeps, over a limit of 24 are."""
    limited = replace(KEYS, limits=AttributeLimits(max_attributes=24, max_value_length=1000))
    unread = {f"app.field.{i}": i for i in range(30)}
    kept = _long_conversation(400, unread)
    tags = _long_conversation(2, {f"tokenbook.tag.t{i}": "v" for i in range(30)})
    body = encode_spans(kept + tags).SerializeToString()
    walks = [None] if spans_module._walk is None else [spans_module._walk, None]
    for walk in walks:  # the C walk, then the Python one
        monkeypatch.setattr(spans_module, "_walk", walk)
        for decoded in (decode_protobuf(body, limited), decode_json(_otlp_json(body), limited)):
            (record,) = decoded.records
            assert record.attrs["llm.token_count.prompt"] == 90_000
            assert decoded.rejected == 1
            # the 30 tags and the 6 attributes of the call (kind, model, provider, usage, tenant)
            assert (
                "span has 36 attributes the collector keeps (limits.max_attributes_per_span=24)"
                in decoded.reason
            )


def test_key_filter_matches_names_and_prefixes() -> None:
    keys = KeyFilter(frozenset({"a.b"}), ("tokenbook.tag.",))
    assert "a.b" in keys and "tokenbook.tag.x" in keys and "a.c" not in keys


def test_long_span_names_are_truncated_with_a_marker_and_the_span_kept() -> None:
    limited = replace(
        KEYS, limits=AttributeLimits(max_attributes=64, max_value_length=1000, max_name_length=32)
    )
    long_name = "chat " + "x" * 15_000_000
    pb = encode_spans(_spans())
    (chat,) = [s for s in pb.resource_spans[0].scope_spans[0].spans if s.name == "chat gpt-4o"]
    chat.name = long_name
    decoded = decode_protobuf(pb.SerializeToString(), limited)
    names = sorted(r.name for r in decoded.records)
    assert decoded.rejected == 0 and len(names) == 2
    assert names[0] == "chat " + "x" * 13 + NAME_TRUNCATED and len(names[0]) == 32
    assert names[1] == "invoke_agent triage"  # within the limit: unchanged
    decoded = decode_json(_json_request([_json_span(name=long_name)]), limited)
    assert [r.name for r in decoded.records] == ["chat " + "x" * 13 + NAME_TRUNCATED]
    assert LimitsConfig().attributes.max_name_length == 1024


def test_the_span_name_limit_reaches_the_decoder_processes() -> None:
    from tokenbook.collector.decode.content import LogContent
    from tokenbook.collector.decode.pool import _key_filter, _settings_json

    limited = replace(KEYS, limits=AttributeLimits(64, 100, 7))
    assert _key_filter(json.loads(_settings_json(limited, LogContent()))).limits == limited.limits


def test_the_first_first_token_event_is_kept_in_protobuf_and_json() -> None:
    """OpenInference's "First Token Stream Event", OpenLLMetry's per-chunk events: the earliest counts."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    start = 1_700_000_000_000_000_000
    span = provider.get_tracer("test").start_span("openai.chat", start_time=start)
    span.add_event("gen_ai.content.completion.chunk", timestamp=start + 30_000_000)
    span.add_event("gen_ai.content.completion.chunk", timestamp=start + 20_000_000)  # out of order
    span.add_event("something else", timestamp=start + 1_000)
    span.end(end_time=start + 90_000_000)
    (rec,) = decode_protobuf(encode_spans(exporter.get_finished_spans()).SerializeToString(), KEYS).records
    assert rec.first_token_ns == start + 20_000_000
    events = [
        {"name": "First Token Stream Event", "timeUnixNano": "1700000000250000000"},
        {"name": ["not", "a", "name"], "timeUnixNano": "1"},  # ignored, the span kept
    ]
    (json_rec,) = decode_json(_json_request([_json_span(events=events)]), KEYS).records
    assert json_rec.first_token_ns == 1_700_000_000_250_000_000
    (none,) = decode_json(_json_request([_json_span()]), KEYS).records
    assert none.first_token_ns == 0


def mixed_request() -> bytes:
    """Four resources (the second's kept value unreadable, the third with no spans), scopes of none to
    three spans, a span with an all-zero trace ID and one with a kept value over the length limit."""

    def resource(name: bytes) -> bytes:  # ResourceSpans.resource, whose one attribute is service.name
        return delimited(1, delimited(1, _kv("service.name", _string_value(name))))

    def scope(*spans: bytes) -> bytes:
        return delimited(2, b"".join(delimited(2, s) for s in spans))

    zero_trace = _span(9)[:2] + bytes(16) + _span(9)[18:]
    too_long = _span(10, _kv("gen_ai.request.model", _string_value(b"m" * 40)))
    resource_spans = (
        resource(b"a") + scope(_span(1), _span(2)) + scope() + scope(_span(3), zero_trace, _span(4)),
        resource(b"\xff") + scope(_span(5), _span(6)),
        resource(b"empty"),
        resource(b"b") + scope(_span(7)) + scope(too_long, _span(8)),
    )
    return b"".join(delimited(1, rs) for rs in resource_spans)


def test_the_parts_of_a_request_decode_to_the_whole_request() -> None:
    """Decoded in 1 to 12 parts (more parts than spans included), the parts in order give the whole
    request's records, rejections and first reason, each span in exactly one part."""
    limited = replace(KEYS, limits=AttributeLimits(max_attributes=64, max_value_length=20))
    body = mixed_request()
    whole = decode_protobuf(body, limited)
    assert [r.span_id[-1] for r in whole.records] == [1, 2, 3, 4, 7, 8] and whole.rejected == 4
    for count in range(1, 13):
        parts = [decode_protobuf(body, limited, Part(i, count)) for i in range(count)]
        assert [r for p in parts for r in p.records] == whole.records
        assert sum(p.rejected for p in parts) == whole.rejected
        assert next((p.reason for p in parts if p.reason), "") == whole.reason


def _otlp_json(request_pb: bytes) -> bytes:
    """A protobuf `ExportTraceServiceRequest` in OTLP/JSON: protobuf's JSON mapping, with the IDs as
    hex strings (as OTLP/JSON requires) where the mapping writes base64; `bytesValue` stays base64."""
    doc = MessageToDict(ExportTraceServiceRequest.FromString(request_pb))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def test_every_kind_of_value_decodes_alike_from_json_and_protobuf() -> None:
    """A real SDK span with a value of every AnyValue kind (arrays, bytes, big and negative integers,
    non-finite doubles, empty strings): OTLP/JSON and protobuf give the same records."""
    values: dict[str, AttributeValue] = {
        "s": "text",
        "empty": "",
        "unicode": "naïve ☃",
        "i": 2**62,
        "neg": -7,
        "d": 0.1,
        "inf": float("inf"),
        "b": True,
        "strs": ("a", ""),
        "ints": (1, -2, 2**40),
        "doubles": (1.5, -0.0),
        "bools": (True, False),
        "raw": b"\x00\xffbytes",
    }
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "r": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("lib", "1.2").start_as_current_span("outer"):
        provider.get_tracer("lib", "1.2").start_span("chat", attributes=values).end()
    keys = KeyFilter(frozenset(values) | {"r"})
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    from_protobuf = decode_protobuf(body, keys)
    from_json = decode_json(_otlp_json(body), keys)
    assert from_protobuf.rejected == from_json.rejected == 0
    assert from_json.records == from_protobuf.records
    chat = from_json.records[0]
    assert chat.attrs["raw"] == b"\x00\xffbytes".hex() and chat.attrs["i"] == 2**62 and chat.attrs["r"] == 3


def test_a_json_bytes_value_that_is_not_base64_rejects_its_span_alone() -> None:
    bad = _json_span(attributes=[{"key": "raw", "value": {"bytesValue": "not base64!"}}])
    raw = [{"key": "raw", "value": {"bytesValue": "AP8="}}]
    good = _json_span(span_id="00f067aa0ba902b8", attributes=raw)
    decoded = decode_json(_json_request([bad, good]), KeyFilter(frozenset({"raw"})))
    assert decoded.rejected == 1 and "bytesValue" in decoded.reason
    assert [r.attrs for r in decoded.records] == [{"raw": "00ff"}]
