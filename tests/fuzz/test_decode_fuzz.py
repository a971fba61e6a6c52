"""Fuzzing the OTLP decoders and the row builder (bounded: a few hundred cases per property).

Contract: for ANY body, `decode_protobuf`/`decode_json` return a `Decoded` or raise `MalformedRequest`
(-> 400 / INVALID_ARGUMENT); nothing else escapes. Every span of a parsable request is either kept or
counted as rejected (-> ``partial_success``). The rows built from whatever was kept never raise, survive
the write-ahead-log codec, and are accepted by ClickHouse (a row that storage refuses would block the
log forever).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, Final

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fuzz import strategies as fz
from tests.hypothesis_profiles import examples
from tests.protowire import delimited
from tests.stores import DatabasePool
from tokenbook.collector.decode import spans
from tokenbook.collector.decode.spans import (
    Decoded,
    KeyFilter,
    MalformedRequest,
    decode_json,
    decode_protobuf,
)
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.rowcodec import decode_rows, encode_rows
from tokenbook.genai.pricing.catalog import PriceCatalog

KEYS = pipeline_keys(("team.cost_centre",), "hash")
BUILDER = RowBuilder(PriceCatalog(), content="hash", salt="fuzz-salt-0123")
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "support"
    span = rs.scope_spans.add().spans.add(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        name="chat gpt-4o",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_000_000_000,
    )
    for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o")):
        span.attributes.add(key=key).value.string_value = value
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 100
    span.attributes.add(key="tenant.id").value.string_value = "acme"
    return request


VALID_PB = _valid_request().SerializeToString()
VALID_JSON = json.dumps(
    {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": bytes(range(1, 17)).hex(),
                                "spanId": bytes(range(1, 9)).hex(),
                                "name": "chat",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001000000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
).encode()


def outcome(decode: Callable[[bytes, KeyFilter], Decoded], body: bytes) -> Decoded | None:
    """The decoder's answer: `Decoded`, or None for `MalformedRequest`. Anything else fails the test."""
    try:
        decoded = decode(body, KEYS)
    except MalformedRequest as exc:
        assert str(exc)  # the 400 body says why
        return None
    assert decoded.rejected >= 0
    assert bool(decoded.reason) == (decoded.rejected > 0)
    return decoded


def built(decoded: Decoded | None) -> tuple[list[CallRow], list[StepRow]]:
    """Rows of the kept spans; they must survive the write-ahead-log codec unchanged."""
    if decoded is None:
        return [], []
    batch = BUILDER.build(decoded.records)
    calls, steps = decode_rows(encode_rows(batch.calls, batch.steps))
    assert calls == batch.calls and steps == batch.steps
    for row in batch.calls:
        assert min(row.input_tokens, row.output_tokens, row.cache_read_tokens, row.reasoning_tokens) >= 0
        if row.total_cost is not None:
            parts = (row.input_cost, row.output_cost, row.cache_read_cost, row.cache_write_cost)
            assert sum(p for p in parts if p is not None) == row.total_cost
    return calls, steps


# --- protobuf ------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
@example(b"\n" + b"\xff" * 10)
@example(b"\x0a\x80\x80\x80\x80\x10")  # a length far beyond the body
def test_protobuf_random_bytes(body: bytes) -> None:
    built(outcome(decode_protobuf, body))


@FUZZ
@given(fz.mutated(VALID_PB))
def test_protobuf_mutations_of_a_valid_request(body: bytes) -> None:
    built(outcome(decode_protobuf, body))


@FUZZ
@given(fz.requests())
def test_protobuf_hostile_fields_keep_or_reject_every_span(request: ExportTraceServiceRequest) -> None:
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    decoded = outcome(decode_protobuf, request.SerializeToString())
    assert decoded is not None  # a well-formed message is never malformed as a whole
    assert len(decoded.records) + decoded.rejected == total
    built(decoded)


def _reference_value(v: Any) -> Any:
    """A generated ``AnyValue`` as the decoder reads it (the walk the views must agree with)."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return tuple(_reference_value(x) for x in v.array_value.values)
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which in ("string_value", "int_value", "double_value", "bool_value"):
        return getattr(v, which)
    return None


def _reference(request: ExportTraceServiceRequest, keys: KeyFilter) -> list[tuple[bytes, dict[str, object]]]:
    """(span ID, kept attributes) of each span with valid IDs, walked on the generated classes."""
    out = []
    _pb_value = _reference_value
    for rs in request.resource_spans:
        res = {
            kv.key: _pb_value(kv.value)
            for kv in rs.resource.attributes
            if kv.key in keys and kv.key != "service.name"
        }
        for ss in rs.scope_spans:
            for span in ss.spans:
                ok_ids = len(span.trace_id) == 16 and len(span.span_id) == 8 and any(span.trace_id)
                if ok_ids and any(span.span_id) and len(span.parent_span_id) in (0, 8):
                    attrs = dict(res)
                    attrs.update((kv.key, _pb_value(kv.value)) for kv in span.attributes if kv.key in keys)
                    out.append((span.span_id, attrs))
    return out


@FUZZ
@given(fz.requests())
def test_protobuf_view_and_memo_decode_as_the_generated_classes(request: ExportTraceServiceRequest) -> None:
    """The reading view (attributes as bytes, memoized) keeps exactly what a walk of the full message
    keeps, whether the memo is cold or warm (the same body decoded twice)."""
    body = request.SerializeToString()
    expected = _reference(request, KEYS)
    for _ in range(2):
        decoded = decode_protobuf(body, KEYS)
        assert repr([(r.span_id, r.attrs) for r in decoded.records]) == repr(expected)  # NaN != NaN


#: Bytes where the sliced encodings decide: a length or varint byte below 128, at 128 or above.
_edge_byte = st.one_of(st.sampled_from([0, 1, 2, 3, 0x7E, 0x7F, 0x80, 0x81, 0xFE, 0xFF]), st.integers(0, 255))
_edge_bytes = st.lists(_edge_byte, max_size=4).map(bytes)


@st.composite
def _shaped(draw: st.DrawFn, tags: list[int]) -> bytes:
    """A tag, a length byte, then about as many bytes as it says (a little more or less, or any)."""
    tag, length = draw(st.sampled_from(tags)), draw(_edge_byte)
    size = draw(st.one_of(st.integers(max(length - 2, 0), length + 2), st.integers(0, 300)))
    return bytes((tag, length)) + draw(st.binary(min_size=size, max_size=size))


#: Serialized AnyValues around the sliced encodings' bounds, valid or not: real messages (strings of
#: every length and script, integers of every size), then fields whose length byte or varint may lie.
ANY_VALUES = st.one_of(
    st.text(max_size=200).map(lambda t: AnyValue(string_value=t).SerializeToString()),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i).SerializeToString()),
    st.integers(0, 2**15).map(lambda i: AnyValue(int_value=i).SerializeToString()),
    st.booleans().map(lambda b: AnyValue(bool_value=b).SerializeToString()),
    _shaped([0x0A, 0x0A, 0x12, 0x2A]),
    _edge_bytes.map(lambda b: b"\x18" + b),  # int_value's varint, ended or not
    st.tuples(_shaped([0x0A]), _edge_bytes).map(lambda t: t[0] + b"\x18" + t[1]),  # two fields
    st.binary(max_size=40),
)
KEY_VALUES = st.one_of(
    st.tuples(st.text(max_size=140), ANY_VALUES).map(
        lambda kv: (
            KeyValue(key=kv[0], value=AnyValue.FromString(kv[1])).SerializeToString()
            if _parses(kv[1])
            else delimited(1, kv[0].encode()) + delimited(2, kv[1])
        )
    ),
    st.tuples(_shaped([0x0A]), _shaped([0x12, 0x12, 0x1A, 0x0A]), st.binary(max_size=3)).map(b"".join),
    st.tuples(_shaped([0x12]), _shaped([0x0A])).map(b"".join),  # value first
    st.binary(max_size=200),
)


def _parses(raw: bytes) -> bool:
    try:
        AnyValue.FromString(raw)
    except DecodeError:
        return False
    return True


def _read(read: Callable[[bytes], Any], raw: bytes) -> str:
    """What reading `raw` gives: the value's repr (NaN != NaN), or why it cannot be read."""
    try:
        return repr(read(raw))
    except spans._BadValue as exc:
        return f"bad: {exc}"


@FUZZ
@given(ANY_VALUES)
def test_a_sliced_value_reads_as_the_view_reads_it(raw: bytes) -> None:
    """The decoder slices the usual AnyValue encodings; any encoding reads as through the view."""
    assert _read(spans._value, raw) == _read(spans._view_value, raw)


@FUZZ
@given(KEY_VALUES)
def test_a_sliced_key_value_splits_as_the_view_splits_it(raw: bytes) -> None:
    """The decoder slices the usual KeyValue encoding; any encoding splits as through the view."""
    assert spans._split_key_value(raw) == spans._view_key_value(raw)


_EDGES: Final = (0, 1, 2, 0x7E, 0x7F, 0x80, 0x81, 0xFF)  # length or varint bytes around 128


def _edge_fields(tags: tuple[int, ...], fills: tuple[bytes, ...]) -> list[bytes]:
    """Every field of one of `tags` with a length byte from `_EDGES` followed by about as many bytes
    as it says (two fewer to two more), made of each of `fills`."""
    return [
        bytes((tag, length)) + fill * size
        for tag in tags
        for length in _EDGES
        for size in range(max(length - 2, 0), length + 3)
        for fill in fills
    ]


def test_every_encoding_at_the_slicing_bounds_reads_as_through_the_views() -> None:
    """Exhaustive over the bytes the sliced paths test: tags, length bytes below and above 128,
    lengths that lie by up to two bytes, varints of up to three bytes ended or not, two fields."""
    strings = _edge_fields((0x0A, 0x12, 0x18, 0x2A), (b"\0", b"a", b"\x80", b"\xc3", b"\xff"))
    varints = [b"\x18" + bytes(v) for n in range(4) for v in itertools.product(_EDGES, repeat=n)]
    values = [*strings, *varints, *(a + b for a in varints[:9] for b in (b"\x0a\x01a", b"\x18\x01"))]
    for raw in values:
        assert _read(spans._value, raw) == _read(spans._view_value, raw), raw
    keys = _edge_fields((0x0A,), (b"k", b"\xff"))
    for raw in (k + v for k in keys for v in _edge_fields((0x12, 0x1A, 0x0A), (b"\0", b"\x80"))):
        assert spans._split_key_value(raw) == spans._view_key_value(raw), raw


def test_sdk_spans_at_the_sliced_encodings_bounds_decode_as_the_generated_classes() -> None:
    """Values and keys on both sides of the sliced encodings' bounds (one- and two-byte lengths and
    varints, UTF-8 of every width), as the SDK encodes them, decode as a walk of the full message."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bounds")
    values: list[object] = [0, 1, 127, 128, 16383, 16384, 2**21, 2**40, -1, -(2**63), 2**63 - 1]
    values += ["", "a", "é", "日本", "🙂"] + ["x" * n for n in (125, 126, 127, 128, 129, 300)]
    values += ["é" * 63, "é" * 64, True, False, 0.5, ("a", "b"), (1, 2)]
    keys = [
        "tenant.id",
        "gen_ai.usage.input_tokens",
        "tokenbook.tag." + "k" * 113,
        "tokenbook.tag." + "k" * 114,
    ]
    for i, value in enumerate(values):
        with tracer.start_as_current_span(f"chat {i}") as span:
            for key in keys:
                span.set_attribute(key, value)  # type: ignore[arg-type]
            span.set_attribute("gen_ai.request.model", "gpt-4o")
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    expected = _reference(ExportTraceServiceRequest.FromString(body), KEYS)
    for _ in range(2):  # cold, then from the attribute memo
        decoded = decode_protobuf(body, KEYS)
        assert decoded.rejected == 0
        assert repr([(r.span_id, r.attrs) for r in decoded.records]) == repr(expected)


# --- OTLP/JSON -----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
@example(b"[" * 100_000)  # nesting beyond the JSON parser's recursion limit
@example(b'{"resourceSpans": ' + b"[" * 5000 + b"]" * 5000 + b"}")
@example(b'{"resourceSpans": [{"scopeSpans": 5}]}')
@example(b'{"resourceSpans": [{"scopeSpans": [{"spans": [5]}]}]}')
def test_json_random_bytes(body: bytes) -> None:
    built(outcome(decode_json, body))


@FUZZ
@given(fz.mutated(VALID_JSON))
def test_json_mutations_of_a_valid_request(body: bytes) -> None:
    built(outcome(decode_json, body))


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool):

    with database_pool.store() as s:
        yield s


_ID = bytes(range(1, 17)).hex()


_CHAT = [
    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
]


def _span_doc(**fields: object) -> bytes:
    """A model-call span (so that a row is built) with `fields` overriding the defaults."""
    span = {"traceId": _ID, "spanId": _ID[:16], "attributes": _CHAT, **fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@FUZZ
@given(fz.json_documents)
@example({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": _ID, "spanId": _ID[:16]}]}]}]})
def test_json_hostile_documents(doc: object) -> None:
    built(outcome(decode_json, fz.json_bytes(doc)))


@pytest.mark.parametrize(
    "body",
    [
        _span_doc(startTimeUnixNano=1e999),  # JSON "Infinity" from an overflowing literal
        _span_doc(startTimeUnixNano="-5"),
        _span_doc(startTimeUnixNano=10**30, endTimeUnixNano=10**30),
        _span_doc(startTimeUnixNano=str(2**64 - 1)),
        _span_doc(attributes=[{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9" * 5000}}]),
        _span_doc(
            attributes=[
                *_CHAT,
                {"key": "gen_ai.response.model", "value": {"stringValue": "\ud800"}},
                {"key": "tenant.id", "value": {"stringValue": "a\udfffb"}},
            ]
        ),
        _span_doc(attributes="DEEP").replace(
            b'"DEEP"',
            b'[{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}, '
            b'{"key": "gen_ai.usage.input_tokens", "value": '
            + b'{"arrayValue": {"values": [' * 300
            + b"]}}" * 300
            + b"}]",
        ),
    ],
    ids=[
        "inf-time",
        "negative-time",
        "huge-time",
        "max-fixed64-time",
        "4300-digit-int",
        "lone-surrogates",
        "deep-array",
    ],
)
def test_json_edge_cases_are_rejected_or_kept_and_storable(store, body: bytes) -> None:
    store.write(*built(outcome(decode_json, body)))


# --- rows reach ClickHouse -----------------------------------------------------------------------


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(fz.requests().map(lambda r: (decode_protobuf, r.SerializeToString())),
                 fz.json_documents.map(lambda d: (decode_json, fz.json_bytes(d)))))  # fmt: skip
def test_rows_of_hostile_requests_are_accepted_by_clickhouse(store, case) -> None:
    decode, body = case
    calls, steps = built(outcome(decode, body))
    store.write(calls, steps)  # a refused row would be retried forever by the ledger writer
