"""Connections the gRPC receiver closes: one idle for ``limits.grpc_idle_timeout`` gets an HTTP/2
GOAWAY and is closed, so idle connections (each an open file and its buffers) do not pile up, while
an exporter simply reconnects for its next export."""

from __future__ import annotations

import socket
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.limits import LimitsConfig
from tokenbook.collector.receive import GrpcReceiver

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")  # and empty SETTINGS
_GOAWAY = 0x7


def _frame_types(data: bytes) -> list[int]:
    types, at = [], 0
    while at + 9 <= len(data):
        types.append(data[at + 3])
        at += 9 + int.from_bytes(data[at : at + 3], "big")
    return types


def test_an_idle_connection_is_sent_away_and_an_exporter_reconnects(ingestor: Ingestor) -> None:
    receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20, idle_timeout=0.3)
    receiver.start()
    try:
        idle = socket.create_connection(("127.0.0.1", receiver.port), timeout=10)
        idle.sendall(_PREFACE)
        started, received = time.monotonic(), b""
        while chunk := idle.recv(4096):  # until the receiver closes it
            received += chunk
        assert _GOAWAY in _frame_types(received) and time.monotonic() - started < 5
        idle.close()
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{receiver.port}", insecure=True, timeout=10)
        assert exporter.export(SpanFactory().chats(2, tenant="before")) == SpanExportResult.SUCCESS
        time.sleep(0.6)  # its connection is idle past the timeout, and sent away
        assert exporter.export(SpanFactory().chats(2, tenant="after")) == SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        receiver.stop(1)
    assert ingestor.metrics.snapshot()["received_spans"] == 4


def test_idle_connections_are_closed_after_five_minutes_by_default() -> None:
    assert LimitsConfig().grpc_idle_timeout == 300.0
