"""Hypothesis strategies for hostile OTLP input (not a test module).

Three families, from least to most structured:

* raw bytes, and *mutations* of a valid request (bytes flipped, inserted, deleted, truncated): these
  reach the deep corners of the protobuf and JSON parsers;
* OTLP requests built field by field with hostile values: IDs of every length (including all-zero),
  times at the limits of fixed64, attribute values of every ``AnyValue`` kind (nested arrays, kvlists,
  bytes, huge and negative numbers, NaN, odd strings with lone surrogates) under the very keys the
  pipeline reads (usage, model, provider, attribution, cost, retry counts);
* OTLP/JSON documents where any field may be replaced by a value of the wrong JSON type.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tokenbook.genai import semconv

#: Keys the pipeline reads, so that hostile values reach normalization, pricing and attribution.
PIPELINE_KEYS: tuple[str, ...] = (
    *semconv.INPUT_TOKENS[:2],
    *semconv.OUTPUT_TOKENS[:2],
    *semconv.CACHE_READ_TOKENS[:1],
    *semconv.CACHE_WRITE_TOKENS[:1],
    *semconv.REASONING_TOKENS[:1],
    semconv.OPERATION,
    semconv.PROVIDER[0],
    semconv.MODEL[0],
    semconv.INPUT_EXCLUSIVE,
    semconv.CLIENT_COST[0],
    semconv.RESEND_COUNTS[0],
    semconv.TB.OUTCOME,
    semconv.TB.TAG_PREFIX + "k",
    "tenant.id",
    "tokenbook.context.id",
    "gen_ai.prompt",
    "gen_ai.input.messages",
    "service.name",
)

OPERATIONS = ("chat", "text_completion", "embeddings", "execute_tool", "invoke_agent", "")
MODELS = ("gpt-4o", "claude-sonnet-4-5", "no-such-model", "")
PROVIDERS = ("openai", "anthropic", "gcp.gemini", "", "nope")

odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\ud800", "é" * 3, "NaN", "-1", "1e400", "9" * 30, "0x10", "12.5"]),
)
hostile_int = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 10**12, 10**12 + 1, 2**63 - 1, -(2**63)]),
)
hostile_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e300]))


def _scalar_value() -> st.SearchStrategy[AnyValue]:
    return st.one_of(
        odd_text.map(lambda s: AnyValue(string_value=s.encode("utf-8", "replace").decode("utf-8"))),
        hostile_int.map(lambda i: AnyValue(int_value=i)),
        hostile_float.map(lambda f: AnyValue(double_value=f)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.binary(max_size=20).map(lambda b: AnyValue(bytes_value=b)),
        st.just(AnyValue()),
    )


def _nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    def array(values: list[AnyValue]) -> AnyValue:
        v = AnyValue()
        v.array_value.values.extend(values)
        return v

    def kvlist(values: list[AnyValue]) -> AnyValue:
        v = AnyValue()
        for i, x in enumerate(values):
            kv = v.kvlist_value.values.add(key=f"k{i}")
            kv.value.CopyFrom(x)
        return v

    return st.one_of(
        st.lists(children, max_size=4).map(array),
        st.lists(children, max_size=4).map(kvlist),
    )


any_value = st.recursive(_scalar_value(), _nest, max_leaves=12)
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=20), st.just(bytes(8)))
trace_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20), st.just(bytes(16)))
times = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.sampled_from([0, 2**64 - 1, 2**63]))
attribute_keys = st.one_of(st.sampled_from(PIPELINE_KEYS), st.text(max_size=12))


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """A structurally valid request full of hostile field values."""
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        for _ in range(draw(st.integers(0, 2))):
            kv = rs.resource.attributes.add(key=draw(attribute_keys))
            kv.value.CopyFrom(draw(any_value))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                span = ss.spans.add(
                    trace_id=draw(trace_ids),
                    span_id=draw(span_ids),
                    parent_span_id=draw(st.one_of(st.just(b""), span_ids)),
                    name=draw(odd_text).encode("utf-8", "replace").decode("utf-8"),
                    start_time_unix_nano=draw(times),
                    end_time_unix_nano=draw(times),
                )
                span.status.code = draw(st.integers(0, 3))
                for _ in range(draw(st.integers(0, 6))):
                    kv = span.attributes.add(key=draw(attribute_keys))
                    kv.value.CopyFrom(draw(any_value))
                if draw(st.booleans()):
                    ev = span.events.add(name=draw(st.sampled_from([semconv.TB.OUTCOME, "x"])))
                    kv = ev.attributes.add(key=semconv.TB.OUTCOME)
                    kv.value.CopyFrom(draw(any_value))
    return request


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few random byte-level edits."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


# --- OTLP/JSON -------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    hostile_int,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
json_any = st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=8,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a well-typed value, sometimes anything."""
    return st.one_of(valid, valid, valid, json_any)


hex_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20)).map(bytes.hex)
json_value = st.recursive(
    st.one_of(
        odd_text.map(lambda s: {"stringValue": s}),
        st.one_of(hostile_int, hostile_int.map(str), odd_text).map(lambda i: {"intValue": i}),
        st.one_of(hostile_float.map(str), st.floats(allow_nan=False), odd_text).map(
            lambda f: {"doubleValue": f}
        ),
        st.booleans().map(lambda b: {"boolValue": b}),
        json_any,
    ),
    lambda c: st.lists(c, max_size=3).map(lambda vs: {"arrayValue": {"values": vs}}),
    max_leaves=8,
)
json_attributes = _maybe(
    st.lists(st.fixed_dictionaries({"key": _maybe(attribute_keys), "value": json_value}), max_size=6)
)
json_spans = st.fixed_dictionaries(
    {},
    optional={
        "traceId": _maybe(hex_ids),
        "spanId": _maybe(st.binary(min_size=8, max_size=8).map(bytes.hex)),
        "parentSpanId": _maybe(st.one_of(st.just(""), st.binary(max_size=9).map(bytes.hex))),
        "name": _maybe(odd_text),
        "startTimeUnixNano": _maybe(st.one_of(times, times.map(str), json_scalars)),
        "endTimeUnixNano": _maybe(st.one_of(times, times.map(str), json_scalars)),
        "attributes": json_attributes,
        "status": _maybe(st.fixed_dictionaries({"code": _maybe(st.integers(0, 2))})),
        "events": _maybe(
            st.lists(
                st.fixed_dictionaries({"name": st.just(semconv.TB.OUTCOME), "attributes": json_attributes}),
                max_size=2,
            )
        ),
    },
)
json_documents = st.fixed_dictionaries(
    {
        "resourceSpans": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "resource": _maybe(st.fixed_dictionaries({"attributes": json_attributes})),
                        "scopeSpans": _maybe(
                            st.lists(
                                st.fixed_dictionaries({"spans": _maybe(st.lists(json_spans, max_size=3))}),
                                max_size=2,
                            )
                        ),
                    },
                ),
                max_size=2,
            )
        )
    }
)


def json_bytes(doc: Any) -> bytes:
    """`doc` as OTLP/JSON bytes; non-finite floats as JSON does not allow them literally."""
    return json.dumps(doc, allow_nan=True, default=str).encode("utf-8", "surrogatepass")
