"""Decoder processes: the same `Decoded` as in-process decoding, malformed bodies, a child that dies."""

from __future__ import annotations

import json
import marshal
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.decode.test_spans import _json_request, _json_span, _spans, mixed_request
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.pool import (
    FORMAT_JSON,
    FORMAT_PROTOBUF,
    PARTS_FROM_BYTES,
    DecodedForLog,
    DecoderPool,
    SpanSummary,
    decode_for_log,
    records_of,
)
from tokenbook.collector.decode.spans import KeyFilter, MalformedRequest, decode_json, decode_protobuf
from tokenbook.collector.ingest.rows import pipeline_keys
from tokenbook.collector.limits import AttributeLimits

pytestmark = pytest.mark.e2e  # starts processes

KEYS = replace(pipeline_keys(("team.cost_centre",), "drop"), limits=AttributeLimits(64, 11))


def started_pool(size: int, keys: KeyFilter = KEYS) -> DecoderPool:
    """A `DecoderPool` of `size` children for `keys`, once every child is up and idle."""
    decoders = DecoderPool(keys, size)
    decoders.start()
    deadline = time.monotonic() + 30
    while decoders._idle.qsize() < size:  # the children start in the background
        assert time.monotonic() < deadline, "decoder processes did not start"
        time.sleep(0.05)
    return decoders


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    decoders = started_pool(1)
    yield decoders
    decoders.stop()


@pytest.fixture
def pool3() -> Iterator[DecoderPool]:
    decoders = started_pool(3)
    yield decoders
    decoders.stop()


#: Resources, scopes and rejected spans, repeated (protobuf concatenation appends the resource spans)
#: into a body large enough to be decoded in parts.
LARGE = mixed_request() * (PARTS_FROM_BYTES // len(mixed_request()) + 1)


def test_a_large_request_is_decoded_in_parts_on_the_idle_children(pool3: DecoderPool) -> None:
    """One part per idle child, logged side by side; the same records, summaries and rejections as
    the whole body decoded in-process; small bodies and JSON are decoded whole."""
    logged = pool3.decode_for_log(FORMAT_PROTOBUF, LARGE)
    whole = decode_for_log(FORMAT_PROTOBUF, LARGE, KEYS)
    assert len(marshal.loads(logged.records)) == 3  # three parts' payloads
    assert records_of(logged.records) == records_of(whole.records) and len(records_of(whole.records)) > 100
    assert logged.spans == whole.spans
    assert (logged.rejected, logged.reason) == (whole.rejected, whole.reason) and whole.rejected > 50
    small = pool3.decode_for_log(FORMAT_PROTOBUF, mixed_request())
    assert small == decode_for_log(FORMAT_PROTOBUF, mixed_request(), KEYS)
    assert marshal.loads(small.records).__class__ is list  # one payload
    assert pool3._idle.qsize() == 3


def test_a_large_malformed_body_raises_and_every_child_stays(pool3: DecoderPool) -> None:
    with pytest.raises(MalformedRequest, match="ExportTraceServiceRequest"):
        pool3.decode_for_log(FORMAT_PROTOBUF, b"\xff" * PARTS_FROM_BYTES)
    assert pool3._idle.qsize() == 3 and pool3.metrics.snapshot()["decoder_restarts"] == 0
    assert records_of(pool3.decode_for_log(FORMAT_PROTOBUF, LARGE).records)


def test_a_child_dead_before_its_part_is_replaced_and_the_request_decoded(pool3: DecoderPool) -> None:
    child = pool3._idle.queue[1]
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(10)
    logged = pool3.decode_for_log(FORMAT_PROTOBUF, LARGE)
    assert records_of(logged.records) == records_of(decode_for_log(FORMAT_PROTOBUF, LARGE, KEYS).records)
    assert pool3.metrics.snapshot()["decoder_restarts"] == 1
    assert pool3._idle.qsize() == 3 and child not in pool3._children


def test_a_child_decodes_exactly_what_the_collector_would(pool: DecoderPool) -> None:
    body = encode_spans(_spans()).SerializeToString()
    assert pool.decode(FORMAT_PROTOBUF, body) == decode_protobuf(body, KEYS)
    document = _json_request([_json_span(span_id="00f067aa0ba902b7"), _json_span(span_id="zz")])
    assert pool.decode(FORMAT_JSON, document) == decode_json(document, KEYS)
    rejected = pool.decode(FORMAT_PROTOBUF, body)  # the agent span's operation is over 11 characters
    assert rejected.rejected == 1 and "max_attribute_value_length=11" in rejected.reason


def _same_for_log(one: DecodedForLog, other: DecodedForLog) -> bool:
    """The same records, summaries and rejections. Not the same bytes: ``marshal`` flags an object
    that more than one reference holds when it writes it, and how many references hold an attribute's
    key depends on what the process's attribute memo has seen (a warm memo and a cold one give the
    same records in different bytes)."""
    return (records_of(one.records), one.spans, one.rejected, one.reason) == (
        records_of(other.records),
        other.spans,
        other.rejected,
        other.reason,
    )


def test_a_child_decodes_for_the_log_what_the_collector_would(pool: DecoderPool) -> None:
    """The records as logged and the summaries the answer is checked on, from a child and in-process."""
    body = encode_spans(_spans()).SerializeToString()
    logged = pool.decode_for_log(FORMAT_PROTOBUF, body)
    assert _same_for_log(logged, decode_for_log(FORMAT_PROTOBUF, body, KEYS))
    decoded = decode_protobuf(body, KEYS)
    LogContent().apply(decoded.records)  # prompt content measured and dropped before the log
    assert records_of(logged.records) == decoded.records
    assert (logged.rejected, logged.reason) == (decoded.rejected, decoded.reason)
    assert [s.ident for s in logged.spans] == [r.trace_id + r.span_id for r in decoded.records]
    assert [s.start_ns for s in logged.spans] == [r.start_ns for r in decoded.records]
    assert [(s.tenant, s.max_tokens) for s in logged.spans] == [("globex", 120)]  # the agent span: rejected
    in_process = decode_for_log(FORMAT_PROTOBUF, body, KEYS).spans  # built without the named tuple's checks
    assert all(len(s) == len(SpanSummary._fields) for s in in_process)
    with pytest.raises(MalformedRequest, match="ExportTraceServiceRequest"):
        pool.decode_for_log(FORMAT_PROTOBUF, b"\xff\xff\xff\xff")
    document = _json_request([_json_span(span_id="00f067aa0ba902b7"), _json_span(span_id="zz")])
    from_json = pool.decode_for_log(FORMAT_JSON, document)
    assert _same_for_log(from_json, decode_for_log(FORMAT_JSON, document, KEYS))
    assert pool.metrics.snapshot()["decoder_restarts"] == 0


def test_malformed_bodies_raise_and_the_child_stays(pool: DecoderPool) -> None:
    with pytest.raises(MalformedRequest, match="ExportTraceServiceRequest"):
        pool.decode(FORMAT_PROTOBUF, b"\xff\xff\xff\xff")
    with pytest.raises(MalformedRequest, match="invalid JSON"):
        pool.decode(FORMAT_JSON, b"{not json")
    assert pool.metrics.snapshot()["decoder_restarts"] == 0
    assert len(pool.decode(FORMAT_JSON, json.dumps({"resourceSpans": []}).encode()).records) == 0


def test_a_dead_child_is_replaced_and_its_request_decoded(pool: DecoderPool) -> None:
    child = pool._idle.queue[0]
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(10)
    body = encode_spans(_spans()).SerializeToString()
    assert pool.decode(FORMAT_PROTOBUF, body) == decode_protobuf(body, KEYS)
    assert pool.metrics.snapshot()["decoder_restarts"] == 1
    assert "tokenbook_collector_decoder_restarts_total 1" in pool.metrics.prometheus()


def test_without_processes_the_calling_thread_decodes() -> None:
    body = encode_spans(_spans()).SerializeToString()
    assert DecoderPool(KEYS, 0).decode(FORMAT_PROTOBUF, body) == decode_protobuf(body, KEYS)
