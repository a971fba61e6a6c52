"""The event-driven HTTP server under slow and abusive clients, in-process with a real ingestor."""

from __future__ import annotations

import gzip
import http.client
import socket
import time
import urllib.error
import urllib.request
from dataclasses import replace

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.limits import DEFAULT_LIMITS
from tokenbook.collector.receive import HttpReceiver


def _post(port: int, body: bytes, headers: dict[str, str] | None = None, timeout: float = 5.0) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _stalled(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # headers that never end
        out.append(s)
    return out


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slow_clients_do_not_delay_a_legitimate_export(ingestor: Ingestor) -> None:
    """Failed before: 200 connections stuck in their headers held every thread slot (and the accept
    loop waited read_timeout on each), so the export below timed out."""
    limits = replace(DEFAULT_LIMITS, read_timeout=20.0)
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20, limits=limits)
    receiver.start()
    stalled = _stalled(receiver.port, 200)
    try:
        started = time.monotonic()
        body = encode_spans(SpanFactory().chats(5, tenant="patient")).SerializeToString()
        assert _post(receiver.port, body) == 200
        assert time.monotonic() - started < 2.0
    finally:
        for s in stalled:
            s.close()
        receiver.stop(1)


def test_connections_beyond_the_cap_are_closed_at_once(ingestor: Ingestor) -> None:
    limits = replace(DEFAULT_LIMITS, max_open_connections=5, read_timeout=30.0)
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20, limits=limits)
    receiver.start()
    stalled = _stalled(receiver.port, 5)
    try:
        deadline = time.monotonic() + 10
        while receiver.open_connections < 5 and time.monotonic() < deadline:  # all five accepted
            time.sleep(0.005)
        extra = socket.create_connection(("127.0.0.1", receiver.port))
        assert _closed_within(extra, 2.0)
        assert receiver.refused_connections == 1
        assert not _closed_within(stalled[0], 0.2)  # the others are kept until their deadline
    finally:
        for s in stalled:
            s.close()
        receiver.stop(1)


def test_headers_and_bodies_have_deadlines(ingestor: Ingestor) -> None:
    limits = replace(DEFAULT_LIMITS, read_timeout=0.2, request_timeout=0.2)
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20, limits=limits)
    receiver.start()
    try:
        (slow_headers,) = _stalled(receiver.port, 1)
        slow_body = socket.create_connection(("127.0.0.1", receiver.port))
        slow_body.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 100\r\n\r\n0123456789"
        )
        idle = socket.create_connection(("127.0.0.1", receiver.port))
        started = time.monotonic()
        assert all(_closed_within(s, 5.0) for s in (slow_headers, slow_body, idle))
        assert time.monotonic() - started < 3.0
        assert receiver.timed_out_connections == 3
        # closed at once, the stalled body too: not held open lingering for the rest of its body
        # (before: 2 s more, and a stop waited for it)
        deadline = time.monotonic() + 1.0
        while receiver.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.open_connections == 0
    finally:
        receiver.stop(1)


def test_gzip_bodies_and_oversized_bodies(ingestor: Ingestor) -> None:
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=64 * 1024)
    receiver.start()
    try:
        body = encode_spans(SpanFactory().chats(5, tenant="gz")).SerializeToString()
        assert _post(receiver.port, gzip.compress(body), {"Content-Encoding": "gzip"}) == 200
        bomb = gzip.compress(b"\0" * (1 << 20))
        assert _post(receiver.port, bomb, {"Content-Encoding": "gzip"}) == 413
        # a declared length above the limit is answered before the body is sent
        s = socket.create_connection(("127.0.0.1", receiver.port))
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        s.settimeout(5)
        assert s.recv(1024).startswith(b"HTTP/1.1 413")
        s.close()
    finally:
        receiver.stop(1)


def _post_chunked(port: int, pieces: list[bytes], headers: dict[str, str] | None = None) -> int:
    """POST `pieces` as a chunked body (``Transfer-Encoding: chunked``, no ``Content-Length``), as the
    OpenTelemetry JS exporter sends."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "POST",
            "/v1/traces",
            body=iter(pieces),
            headers={"Content-Type": "application/x-protobuf", **(headers or {})},
            encode_chunked=True,
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_chunked_bodies_are_read_whole_and_held_to_the_limit(ingestor: Ingestor) -> None:
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=64 * 1024)
    receiver.start()
    try:
        body = encode_spans(SpanFactory().chats(5, tenant="chunked")).SerializeToString()
        pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
        assert _post_chunked(receiver.port, pieces) == 200
        packed = gzip.compress(body)
        assert _post_chunked(receiver.port, [packed[:10], packed[10:]], {"Content-Encoding": "gzip"}) == 200
        assert ingestor.metrics.snapshot()["received_spans"] == 10
        assert _post_chunked(receiver.port, [b"\0" * 4096] * 20) == 413
    finally:
        receiver.stop(1)


def test_a_client_still_sending_an_oversized_body_reads_the_413(ingestor: Ingestor) -> None:
    """An exporter writes its whole body before it reads the answer: the server answers 413 as soon as
    the declared length is over the limit, then reads and drops what the client still sends (a lingering
    close) instead of resetting the connection under it, so the client gets the 413 (not retried)
    rather than a broken pipe (retried with the same body)."""
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=64 * 1024)
    receiver.start()
    try:
        s = socket.create_connection(("127.0.0.1", receiver.port))
        s.settimeout(5)
        size = 4 << 20
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        time.sleep(0.3)  # the 413 is sent and the server is done with the request
        s.sendall(b"\0" * size)  # before: ConnectionResetError / BrokenPipeError
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        s.close()
        for _ in range(20):  # and a chunked body the server reads until it is over the limit
            assert _post_chunked(receiver.port, [b"\0" * 4096] * 40) == 413
    finally:
        receiver.stop(1)
