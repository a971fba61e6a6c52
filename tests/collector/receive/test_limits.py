"""Limits against the real collector process: the per-tenant rate limit (429 / RESOURCE_EXHAUSTED with
a retry hint), attribute limits (partial success), slow clients that cannot exhaust the workers, and
idle connections that cannot use up the open files."""

from __future__ import annotations

import contextlib
import http.client
import resource
import socket
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProcess(
        tmp_path_factory.mktemp("limits") / "data",
        limits={
            "tenant_rate": {"spans_per_second": 2, "burst": 40},
            "max_attributes_per_span": 24,
            "max_attribute_value_length": 64,
            "max_connections": 4,
            "read_timeout": "1s",
            "request_timeout": "3s",
        },
    ).start()
    yield c
    assert c.stop() == 0


def _post(collector: CollectorProcess, spans) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        collector.http_url,
        data=encode_spans(spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_tenant_over_its_rate_gets_429_with_a_retry_hint(collector: CollectorProcess) -> None:
    factory = SpanFactory()
    assert _post(collector, factory.chats(40, tenant="noisy"))[0] == 200  # the burst
    status, headers, _ = _post(collector, factory.chats(10, tenant="noisy"))
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert _post(collector, factory.chats(10, tenant="quiet"))[0] == 200  # neighbours are unaffected
    body = encode_spans(factory.chats(10, tenant="noisy")).SerializeToString()
    with grpc.insecure_channel(collector.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(EXPORT)(body, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(info.value.trailing_metadata())
    assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds >= 1
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id IN ('noisy', 'quiet')", 50)


def test_spans_over_the_attribute_limits_are_rejected_alone(collector: CollectorProcess) -> None:
    factory = SpanFactory()
    spans = factory.chats(2, tenant="attrs")
    spans += factory.chats(1, tenant="attrs", **{f"tokenbook.tag.t{i}": str(i) for i in range(30)})
    spans += factory.chats(1, tenant="attrs", **{"user.id": "u" * 100})
    # attributes the collector does not read do not count: the call is kept
    spans += factory.chats(1, tenant="attrs", **{f"extra.{i}": str(i) for i in range(30)})
    status, _, reply = _post(collector, spans)
    response = ExportTraceServiceResponse.FromString(reply)
    assert status == 200 and response.partial_success.rejected_spans == 2
    assert "max_attributes_per_span" in response.partial_success.error_message
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'attrs'", 3)


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(60)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_slow_clients_cannot_exhaust_the_http_workers(collector: CollectorProcess) -> None:
    stalled = []
    for _ in range(8):  # twice limits.max_connections, each stuck in the middle of its headers
        s = socket.create_connection(("127.0.0.1", collector.http_port))
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        stalled.append(s)
    try:
        # a well-behaved client gets through, retrying refused connections as OTLP exporters do
        status = 0
        for _attempt in range(20):
            try:
                status = _post(collector, SpanFactory().chats(1, tenant="patient"))[0]
                break
            except (http.client.HTTPException, OSError):
                continue
        assert status == 200
        assert all(_closed_by_server(s) for s in stalled)  # cut off by the read timeout
    finally:
        for s in stalled:
            s.close()


def test_a_client_trickling_bytes_is_cut_off_at_the_request_timeout(collector: CollectorProcess) -> None:
    """Each byte arrives well within read_timeout (1 s), but the request must be read within 3 s."""
    s = socket.create_connection(("127.0.0.1", collector.http_port))
    try:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server may close while we still send
            while time.monotonic() - started < 20:
                s.sendall(b"X")  # a header line that never ends
                time.sleep(0.4)
                s.settimeout(0.01)
                try:
                    if s.recv(1024) == b"":
                        break
                except TimeoutError:
                    pass
        assert time.monotonic() - started < 10  # cut near 3 s, not after 20 s of trickling
        assert _closed_by_server(s)
    finally:
        s.close()


def _soft_open_files(pid: int) -> int:
    """A process's soft limit of open files, as the kernel reports it."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        (line,) = [line for line in limits if line.startswith("Max open files")]
    return int(line.split()[3])


def test_idle_connections_cannot_use_up_the_collectors_open_files(tmp_path, clickhouse_url: str) -> None:
    """A collector started under the usual soft limit of open files (here 256) raises it to the hard
    limit: 600 idle HTTP/2 connections to its gRPC port (each a file, held until the client closes
    it) leave room for an exporter's call, the write-ahead log and the store's connections. With a
    ClickHouse server the collector loads no embedded engine (which raises the limit itself), and the
    accepts past 256 failed (EMFILE), the exporter's call with them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit of open files is {hard}: no room to raise the soft one")
    database = f"tb_files_{uuid.uuid4().hex[:8]}"
    collector = CollectorProcess(
        tmp_path / "data", storage={"clickhouse": {"url": clickhouse_url, "database": database}}
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        collector.start()  # the child inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle = []
    try:
        assert collector.proc is not None and _soft_open_files(collector.proc.pid) > 256
        for _ in range(600):
            s = socket.create_connection(("127.0.0.1", collector.grpc_port), timeout=5)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))  # preface
            idle.append(s)
        exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=20)
        assert exporter.export(SpanFactory().chats(3, tenant="beside-idle")) == SpanExportResult.SUCCESS
        exporter.shutdown()
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'beside-idle'", 3)
    finally:
        for s in idle:
            s.close()
        assert collector.stop() == 0
