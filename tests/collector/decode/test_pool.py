"""Decoder processes: the same `Decoded` as in-process decoding, malformed bodies, a child that dies."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.decode.test_spans import _json_request, _json_span, _spans
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.pool import (
    FORMAT_JSON,
    FORMAT_PROTOBUF,
    DecoderPool,
    decode_for_log,
    records_of,
)
from tokenbook.collector.decode.spans import MalformedRequest, decode_json, decode_protobuf
from tokenbook.collector.ingest.rows import pipeline_keys
from tokenbook.collector.limits import AttributeLimits

pytestmark = pytest.mark.e2e  # starts processes

KEYS = replace(pipeline_keys(("team.cost_centre",), "drop"), limits=AttributeLimits(64, 11))


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    decoders = DecoderPool(KEYS, 1)
    decoders.start()
    deadline = time.monotonic() + 30
    while decoders._idle.empty():  # the child starts in the background
        assert time.monotonic() < deadline, "decoder process did not start"
        time.sleep(0.05)
    yield decoders
    decoders.stop()


def test_a_child_decodes_exactly_what_the_collector_would(pool: DecoderPool) -> None:
    body = encode_spans(_spans()).SerializeToString()
    assert pool.decode(FORMAT_PROTOBUF, body) == decode_protobuf(body, KEYS)
    document = _json_request([_json_span(span_id="00f067aa0ba902b7"), _json_span(span_id="zz")])
    assert pool.decode(FORMAT_JSON, document) == decode_json(document, KEYS)
    rejected = pool.decode(FORMAT_PROTOBUF, body)  # the agent span's operation is over 11 characters
    assert rejected.rejected == 1 and "max_attribute_value_length=11" in rejected.reason


def test_a_child_decodes_for_the_log_what_the_collector_would(pool: DecoderPool) -> None:
    """The records as logged and the summaries the answer is checked on, from a child and in-process."""
    body = encode_spans(_spans()).SerializeToString()
    logged = pool.decode_for_log(FORMAT_PROTOBUF, body)
    assert logged == decode_for_log(FORMAT_PROTOBUF, body, KEYS)
    decoded = decode_protobuf(body, KEYS)
    LogContent().apply(decoded.records)  # prompt content measured and dropped before the log
    assert records_of(logged.records) == decoded.records
    assert (logged.rejected, logged.reason) == (decoded.rejected, decoded.reason)
    assert [s.ident for s in logged.spans] == [r.trace_id + r.span_id for r in decoded.records]
    assert [s.start_ns for s in logged.spans] == [r.start_ns for r in decoded.records]
    with pytest.raises(MalformedRequest, match="ExportTraceServiceRequest"):
        pool.decode_for_log(FORMAT_PROTOBUF, b"\xff\xff\xff\xff")
    document = _json_request([_json_span(span_id="00f067aa0ba902b7"), _json_span(span_id="zz")])
    assert pool.decode_for_log(FORMAT_JSON, document) == decode_for_log(FORMAT_JSON, document, KEYS)
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
