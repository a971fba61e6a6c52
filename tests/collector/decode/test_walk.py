"""The envelope walked in C (``decode/_walk.c``) decodes every body as the Python walk does.

`decode_protobuf` hands the body to the C walk once upb has parsed it; the C walk answers, or says the
Python walk must read it (a declared field with another wire type, a group). Whatever it does, the
outcome is the Python walk's: the same records (every field, every attribute), rejections and first
reason, for the whole request and for each part of it. The comparisons run with the C walk and with
it set aside (`spans._walk = None`), on the same body and key filter.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tests.fuzz import strategies as fz
from tests.hypothesis_profiles import examples
from tests.protowire import field, varint
from tokenbook.collector.decode import spans
from tokenbook.collector.decode.spans import WHOLE, KeyFilter, MalformedRequest, Part, decode_protobuf
from tokenbook.collector.ingest.rows import pipeline_keys
from tokenbook.collector.limits import DEFAULT_LIMITS, AttributeLimits

pytestmark = pytest.mark.skipif(spans._walk is None, reason="the C walk was not built (no C compiler)")

KEYS = replace(pipeline_keys(("team.cost_centre",), "hash"), limits=DEFAULT_LIMITS.attributes)
TIGHT = replace(KEYS, limits=AttributeLimits(max_attributes=4, max_value_length=8, max_name_length=6))
PARTS = (WHOLE, Part(0, 2), Part(1, 2), Part(2, 3))
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def _python_walk() -> Iterator[None]:
    walk, spans._walk = spans._walk, None  # type: ignore[assignment]
    try:
        yield
    finally:
        spans._walk = walk


def _decoded(body: bytes, keys: KeyFilter, part: Part) -> str:
    """The decode's outcome as text (NaN != NaN): its records, rejections and reason, or why the
    request is malformed."""
    try:
        d = decode_protobuf(body, keys, part)
    except MalformedRequest as exc:
        return f"malformed: {exc}"
    return repr((d.records, d.rejected, d.reason))


def _same(body: bytes, keys: KeyFilter = KEYS) -> None:
    for part in PARTS:
        in_c = _decoded(body, keys, part)
        with _python_walk():
            in_python = _decoded(body, keys, part)
        assert in_c == in_python, (part, body)


def _walked(body: bytes, keys: KeyFilter = KEYS) -> bool:
    """Whether the C walk read `body` itself (rather than leaving it to the Python walk)."""
    assert spans._walk is not None
    return spans._walk.walk(body, spans._walk_context(spans._memo(keys)), 0, -1) is not None


def _sdk_body() -> bytes:
    """Spans as the SDK and the official encoder write them: two scopes, events, an error status,
    a parent, a long name, attributes of every kind."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for scope in ("openai.instrumentation", "langchain"):
        tracer = provider.get_tracer(scope, "1.2.3")
        with tracer.start_as_current_span("invoke_agent support") as agent:
            agent.set_attribute("tenant.id", "acme")
            with tracer.start_as_current_span("chat gpt-4o " + "x" * 300) as span:
                span.set_attribute("gen_ai.request.model", "gpt-4o")
                span.set_attribute("gen_ai.usage.input_tokens", 1200)
                span.set_attribute("gen_ai.usage.output_tokens", 80)
                span.set_attribute("team.cost_centre", "cc-7")
                span.set_attribute("gen_ai.prompt", "hello " * 50)
                span.set_attribute("tokenbook.tags", ("a", "b"))
                span.set_attribute("gen_ai.request.temperature", 0.5)
                span.add_event("First Token Stream Event", timestamp=1_700_000_000_500_000_000)
                span.add_event("gen_ai.content.completion.chunk", timestamp=1_700_000_000_400_000_000)
                span.add_event("tokenbook.outcome", {"tokenbook.outcome": "resolved"})
                span.set_status(Status(StatusCode.ERROR, "boom"))
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


def test_the_c_walk_reads_what_the_sdk_sends_as_the_python_walk_does() -> None:
    body = _sdk_body()
    assert _walked(body)
    _same(body)
    _same(body, TIGHT)  # the limits reject, truncate and count as in Python
    records = decode_protobuf(body, KEYS).records
    assert sorted(r.outcome for r in records) == ["", "", "resolved", "resolved"]  # children end first
    assert sum(r.error for r in records) == 2
    assert sorted(r.first_token_ns for r in records)[2:] == [1_700_000_000_400_000_000] * 2  # the earliest


def _kv(key: str, value: str) -> bytes:
    return field(1, 2, key.encode()) + field(2, 2, field(1, 2, value.encode()))


def _span(*extra: bytes, trace: bytes = bytes(range(1, 17)), span: bytes = bytes(range(1, 9))) -> bytes:
    return (
        field(1, 2, trace)
        + field(2, 2, span)
        + field(5, 2, b"chat")
        + field(7, 1, struct.pack("<Q", 1_700_000_000_000_000_000))
        + field(9, 2, _kv("gen_ai.request.model", "gpt-4o"))
        + b"".join(extra)
    )


def _request(span: bytes, *, resource: bytes = b"", scope: bytes = b"", rs_extra: bytes = b"") -> bytes:
    scope_spans = scope + field(2, 2, span)
    return field(1, 2, resource + field(2, 2, scope_spans) + rs_extra)


_RESOURCE = field(1, 2, field(1, 2, _kv("service.name", "support")))
_SCOPE = field(1, 2, field(1, 2, b"lib") + field(2, 2, b"1.0"))
_STATUS_ERROR = field(15, 2, field(3, 0, b"\x02"))

#: (name, body, whether the C walk reads it itself): singular fields repeated (a scalar's last value
#: wins, a message is parsed into the one before), fields in any order, unknown fields of every wire
#: type, and declared fields with another wire type (left to the Python walk).
SHAPES = [
    ("plain", _request(_span(), resource=_RESOURCE, scope=_SCOPE), True),
    (
        "resource twice",
        _request(_span(), resource=_RESOURCE + field(1, 2, field(1, 2, _kv("tenant.id", "t")))),
        True,
    ),
    ("resource after the spans", _request(_span(), rs_extra=_RESOURCE), True),
    ("scope twice", _request(_span(), scope=_SCOPE + field(1, 2, field(2, 2, b"2.0"))), True),
    ("scope after the spans", field(1, 2, field(2, 2, field(2, 2, _span()) + _SCOPE)), True),
    (
        "status twice, the last code wins",
        _request(_span(_STATUS_ERROR, field(15, 2, field(3, 0, b"\x00")))),
        True,
    ),
    ("status set in a second message", _request(_span(field(15, 2, b""), _STATUS_ERROR)), True),
    (
        "negative status code",
        _request(_span(field(15, 2, field(3, 0, b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01")))),
        True,
    ),
    ("name twice", _request(_span(field(5, 2, b"second"))), True),
    ("trace ID twice", _request(_span(field(1, 2, bytes(range(2, 18))))), True),
    ("IDs of the wrong size", _request(_span(trace=b"\x01" * 15)), True),
    ("all-zero span ID", _request(_span(span=bytes(8))), True),
    ("parent of 7 bytes", _request(_span(field(4, 2, b"\x01" * 7))), True),
    (
        "unknown varint, fixed32, fixed64, bytes",
        _request(
            _span(
                field(20, 0, b"\x05"),
                field(21, 5, b"1234"),
                field(22, 1, b"12345678"),
                field(23, 2, b"x"),
            )
        ),
        True,
    ),
    (
        "unknown fields in every message",
        field(9, 0, b"\x01")
        + _request(
            _span(),
            resource=_RESOURCE + field(9, 2, b"u"),
            scope=field(1, 2, field(3, 2, _kv("k", "v")) + field(4, 0, b"\x01")),
        ),
        True,
    ),
    (
        "an event with unknown fields",
        _request(
            _span(
                field(
                    11,
                    2,
                    field(2, 2, b"tokenbook.outcome")
                    + field(3, 2, _kv("tokenbook.outcome", "ok"))
                    + field(4, 0, b"\x01"),
                )
            )
        ),
        True,
    ),
    ("an event time as a varint", _request(_span(field(11, 2, field(1, 0, b"\x05")))), False),
    ("start time as a varint", _request(_span(field(7, 0, b"\x05"))), False),
    ("a span ID as a varint", _request(_span(field(2, 0, b"\x05"))), False),
    ("status code as bytes", _request(_span(field(15, 2, field(3, 2, b"\x02")))), False),
    ("spans as a varint", field(1, 2, field(2, 2, field(2, 0, b"\x01"))), False),
    ("resource spans as fixed64", field(1, 1, b"12345678"), False),
    ("a group", _request(_span(bytes((0xA3, 0x01, 0xA4, 0x01)))), False),
    ("empty request", b"", True),
    ("a scope with no spans", field(1, 2, field(2, 2, _SCOPE)), True),
]


@pytest.mark.parametrize(("body", "walked"), [(b, w) for _, b, w in SHAPES], ids=[n for n, _, _ in SHAPES])
def test_each_envelope_shape_decodes_as_in_python(body: bytes, walked: bool) -> None:
    ExportTraceServiceRequest.FromString(body)  # every shape is valid protobuf
    assert _walked(body) is walked
    _same(body)
    _same(body, TIGHT)


@FUZZ
@given(fz.requests())
def test_hostile_requests_decode_as_in_python(request: ExportTraceServiceRequest) -> None:
    _same(request.SerializeToString())


@FUZZ
@given(fz.mutated(_request(_span(_STATUS_ERROR), resource=_RESOURCE, scope=_SCOPE)))
def test_mutated_bodies_decode_as_in_python(body: bytes) -> None:
    _same(body, TIGHT)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_as_in_python(body: bytes) -> None:
    _same(body)


@pytest.mark.parametrize("name", [b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xff"])
def test_a_name_that_is_not_utf8_is_malformed_either_way(name: bytes) -> None:
    body = _request(_span(field(5, 2, name)))
    with pytest.raises(MalformedRequest):
        decode_protobuf(body, KEYS)
    _same(body)


# --- attribute memo misses read in C (`quick_learn`) ----------------------------------------------
#: Keys of every kind: kept, kept and length-limited, only measured (content), not kept, not UTF-8.
_MISS_KEYS = [
    b"tenant.id",
    b"gen_ai.request.model",
    b"gen_ai.usage.input_tokens",
    b"team.cost_centre",
    b"gen_ai.prompt",
    b"http.request.method",
    b"\xff\xfekey",
]
#: AnyValue bodies: strings (short and long, ASCII and not, one not UTF-8), integers of every size,
#: and other kinds (a double, a bool, bytes, an empty value).
_ANY_VALUES = st.one_of(
    st.text(max_size=200).map(lambda s: field(1, 2, s.encode())),
    st.binary(max_size=40).map(lambda b: field(1, 2, b"\xc3" + b)),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: field(3, 0, varint(n))),
    st.sampled_from([field(4, 1, struct.pack("<d", 0.5)), field(2, 0, b"\x01"), field(7, 2, b"\x00"), b""]),
)


def _cold(body: bytes, keys: KeyFilter, *, in_c: bool) -> tuple[str, dict[bytes, object]]:
    """`body` decoded whole with an empty attribute memo, and what the memo kept."""
    spans._memo.cache_clear()
    if in_c:
        out = _decoded(body, keys, WHOLE)
    else:
        with _python_walk():
            out = _decoded(body, keys, WHOLE)
    return out, dict(spans._memo(keys)._table)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_MISS_KEYS), _ANY_VALUES, _ANY_VALUES), min_size=1, max_size=12))
def test_memo_misses_read_in_c_are_what_the_python_memo_learns(
    attributes: list[tuple[bytes, bytes, bytes]],
) -> None:
    """The second span has the first one's keys with other values, so its misses are of keys the memo
    knows: read in C where they take the usual form. The records, rejections and the memo's table are
    the Python walk's, with and without the tight limits; decoded again, the warm memo gives the same."""
    first = [field(9, 2, field(1, 2, key) + field(2, 2, value)) for key, value, _ in attributes]
    second = [field(9, 2, field(1, 2, key) + field(2, 2, value)) for key, _, value in attributes]
    body = field(
        1, 2, field(2, 2, field(2, 2, _span(*first)) + field(2, 2, _span(*second, span=bytes(range(9, 17)))))
    )
    for keys in (KEYS, TIGHT):
        in_c = _cold(body, keys, in_c=True)
        assert in_c == _cold(body, keys, in_c=False)
        assert _decoded(body, keys, WHOLE) == in_c[0]  # the memo the C walk filled, read again
    spans._memo.cache_clear()
