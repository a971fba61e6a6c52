"""Fuzzing the OTLP receivers end to end: every hostile body gets an OTLP status, never a dropped connection.

The real `HttpReceiver` and `GrpcReceiver` run in-process over a real `Ingestor` and write-ahead log
(no storage is needed to acknowledge: the log is the durability point). Every answer must be one the
OTLP spec allows: HTTP 200 / 400 / 413 / 415 (429 / 503 under pressure); gRPC OK / INVALID_ARGUMENT /
RESOURCE_EXHAUSTED / UNAVAILABLE. After the run, the receivers still accept a valid request.
"""

from __future__ import annotations

import http.client
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz import strategies as fz
from tests.fuzz.test_decode_fuzz import VALID_JSON, VALID_PB
from tests.hypothesis_profiles import examples
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog

pytestmark = pytest.mark.e2e  # starts processes

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HTTP_OK = {200, 400, 413, 415, 429, 503}
GRPC_OK = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def receivers(tmp_path_factory: pytest.TempPathFactory):
    wal = WriteAheadLog(Path(tmp_path_factory.mktemp("fuzz-wal")), max_bytes=64 << 20, segment_bytes=1 << 20)
    wal.open()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(10_000),
        wal,
        IngestMetrics(),
        max_inflight_spans=100_000,
        storage_up=lambda: True,
    )
    http_receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT)
    grpc_receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT)
    http_receiver.start()
    grpc_receiver.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_receiver.port}")
    yield http_receiver.port, channel.unary_unary(EXPORT)
    channel.close()
    grpc_receiver.stop(grace=1)
    http_receiver.stop()
    wal.close()


def _http_status(port: int, body: bytes, content_type: str, encoding: str | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _grpc_status(export, body: bytes) -> grpc.StatusCode:
    try:
        export(body, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


bodies = st.one_of(
    st.binary(max_size=1024),
    fz.mutated(VALID_PB),
    fz.mutated(VALID_JSON),
    fz.requests().map(lambda r: r.SerializeToString()),
    fz.json_documents.map(fz.json_bytes),
)


@settings(
    max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bodies,
    st.sampled_from(["application/x-protobuf", "application/json", "text/plain", ""]),
    st.sampled_from([None, "gzip", "br"]),
)
@example(b'{"resourceSpans": [{"scopeSpans": 5}]}', "application/json", None)
@example(b"[" * 100_000, "application/json", None)
def test_every_hostile_body_gets_an_otlp_status(receivers, body: bytes, content_type: str, encoding) -> None:
    port, export = receivers
    assert _http_status(port, body, content_type, encoding) in HTTP_OK
    assert _grpc_status(export, body) in GRPC_OK


def test_receivers_still_accept_valid_requests_after_the_fuzzing(receivers) -> None:
    port, export = receivers
    assert _http_status(port, VALID_PB, "application/x-protobuf", None) == 200
    assert _http_status(port, VALID_JSON, "application/json", None) == 200
    assert _grpc_status(export, VALID_PB) == grpc.StatusCode.OK
