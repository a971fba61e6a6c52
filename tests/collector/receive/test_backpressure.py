"""Backpressure (429 / RESOURCE_EXHAUSTED with a retry delay) from the real receivers, in-process.

The log is a real `WriteAheadLog` whose appends are held at a gate, so a request stays in flight
deterministically while a second one arrives. No store is needed: rows stay in the log.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog

pytestmark = pytest.mark.e2e  # starts processes


class GatedLog(WriteAheadLog):
    """Appends wait for `gate` (a slow disk, on demand)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def append(self, payload: bytes, obj: Any = None) -> None:
        self.waiting.set()
        self.gate.wait(30)
        super().append(payload, obj)


@pytest.fixture
def receivers(tmp_path: Path):
    wal = GatedLog(tmp_path / "wal", max_bytes=1 << 24, segment_bytes=1 << 20)
    wal.open()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(10_000),
        wal,
        IngestMetrics(),
        max_inflight_spans=10,
        storage_up=lambda: True,
    )
    http = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    grpc_receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    http.start()
    grpc_receiver.start()
    yield wal, http, grpc_receiver, ingestor
    wal.gate.set()
    grpc_receiver.stop(1)
    http.stop()
    wal.close()


def _post(port: int, body: bytes) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


@pytest.mark.parametrize("limit", ["spans", "bytes"])
def test_saturated_collector_answers_429_and_resource_exhausted(receivers, limit: str) -> None:
    wal, http, grpc_receiver, ingestor = receivers
    factory = SpanFactory()
    first = encode_spans(factory.chats(8, tenant="first")).SerializeToString()
    second = encode_spans(factory.chats(8, tenant="second")).SerializeToString()
    if limit == "bytes":  # receivers.otlp.max_inflight_bytes: both bodies at once are one byte too many
        ingestor.max_inflight_spans = 10_000
        ingestor.max_inflight_bytes = len(first) + len(second) - 1
    held: list[tuple[int, str | None]] = []
    holder = threading.Thread(target=lambda: held.append(_post(http.port, first)))
    holder.start()
    assert wal.waiting.wait(10)  # 8 spans (and the first body) in flight; the limit is 10

    status, retry_after = _post(http.port, second)
    assert status == 429 and retry_after is not None and int(retry_after) >= 1
    with grpc.insecure_channel(f"127.0.0.1:{grpc_receiver.port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(second, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailer = dict(err.value.trailing_metadata())["google.rpc.retryinfo-bin"]
    assert RetryInfo.FromString(trailer).retry_delay.seconds >= 1

    wal.gate.set()  # the disk catches up: the held request succeeds, and the refused one now fits
    holder.join(10)
    assert held == [(200, None)]
    assert _post(http.port, second) == (200, None)
    assert ingestor.metrics.snapshot()["refused_requests"] == 2


@pytest.fixture
def limited(tmp_path: Path):
    """A gRPC receiver that serves one call at a time, its log held at a gate."""
    wal = GatedLog(tmp_path / "wal", max_bytes=1 << 24, segment_bytes=1 << 20)
    wal.open()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(10_000),
        wal,
        IngestMetrics(),
        max_inflight_spans=10_000,
        storage_up=lambda: True,
    )
    receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20, max_concurrent_rpcs=1)
    receiver.start()
    yield wal, receiver
    wal.gate.set()
    receiver.stop(1)
    wal.close()


def test_grpc_concurrency_limit_answers_with_retry_info_and_the_exporter_retries(limited) -> None:
    """Failed before: grpcio's maximum_concurrent_rpcs answered RESOURCE_EXHAUSTED without RetryInfo."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    wal, receiver = limited
    factory = SpanFactory()
    holder = threading.Thread(
        target=lambda: _grpc(receiver.port, encode_spans(factory.chats(2, tenant="a")).SerializeToString())
    )
    holder.start()
    assert wal.waiting.wait(10)  # the one slot is taken
    with pytest.raises(grpc.RpcError) as err:
        _grpc(receiver.port, encode_spans(factory.chats(2, tenant="b")).SerializeToString())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailer = dict(err.value.trailing_metadata())["google.rpc.retryinfo-bin"]
    assert RetryInfo.FromString(trailer).retry_delay.seconds >= 1

    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.port}", insecure=True, timeout=30)
    threading.Timer(0.5, wal.gate.set).start()  # the slot frees while the exporter waits to retry
    try:
        assert exporter.export(factory.chats(3, tenant="c")) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    holder.join(10)


def _grpc(port: int, body: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(body, timeout=10)
