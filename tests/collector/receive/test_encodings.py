"""Compressed OTLP requests: every coding the OpenTelemetry SDK exporters and the Collector's exporters
send, made by the real compressors (and the real exporters), decoded within the body limit.

The Collector's ``otlphttp`` exporter writes zstd as a stream (no content size in the frame header),
snappy as a block (framed before, and as ``x-snappy-framed``), zlib/deflate in the zlib format and lz4
as a frame; the Python SDK's OTLP/HTTP exporter sends ``deflate`` as zlib too."""

from __future__ import annotations

import gzip
import io
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable

import cramjam
import grpc
import lz4.frame
import pytest
import zstandard
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.decode.spans import MalformedRequest
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.receive.encodings import (
    ENCODINGS,
    BodyTooLarge,
    UnsupportedEncoding,
    check_encoding,
    decode_body,
)

LIMIT = 64 * 1024


def _zstd_stream(data: bytes) -> bytes:
    """As a streaming encoder writes it (Go's zstd.NewWriter): no content size in the frame header."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


#: coding -> the real compressors a client may use for it
COMPRESSORS: dict[str, list[Callable[[bytes], bytes]]] = {
    "gzip": [gzip.compress],
    "x-gzip": [gzip.compress],
    "deflate": [zlib.compress, _raw_deflate],
    "zlib": [zlib.compress],
    "zstd": [_zstd_stream, zstandard.ZstdCompressor().compress],
    "snappy": [lambda d: bytes(cramjam.snappy.compress_raw(d)), lambda d: bytes(cramjam.snappy.compress(d))],
    "x-snappy-framed": [lambda d: bytes(cramjam.snappy.compress(d))],
    "lz4": [lz4.frame.compress],
}
CASES = [(name, i) for name, makers in COMPRESSORS.items() for i in range(len(makers))]


def test_every_coding_is_listed() -> None:
    assert set(COMPRESSORS) == set(ENCODINGS)


@pytest.mark.parametrize(("name", "maker"), CASES)
def test_a_body_decodes_to_what_was_compressed(name: str, maker: int) -> None:
    body = encode_spans(SpanFactory().chats(20, tenant="codings")).SerializeToString()
    assert decode_body(COMPRESSORS[name][maker](body), check_encoding(name), LIMIT) == body


@pytest.mark.parametrize("name", ["zstd", "lz4"])
def test_a_body_of_several_frames_decodes_whole(name: str) -> None:
    compress = COMPRESSORS[name][0]
    assert decode_body(compress(b"first ") + compress(b"second"), name, LIMIT) == b"first second"


@pytest.mark.parametrize(("name", "maker"), CASES)
def test_a_bomb_is_too_large_before_it_is_decoded_whole(name: str, maker: int) -> None:
    bomb = COMPRESSORS[name][maker](b"\0" * (16 * LIMIT))
    with pytest.raises(BodyTooLarge):
        decode_body(bomb, check_encoding(name), LIMIT)
    exact = COMPRESSORS[name][maker](b"\0" * LIMIT)
    assert len(decode_body(exact, check_encoding(name), LIMIT)) == LIMIT


@pytest.mark.parametrize(("name", "maker"), CASES)
def test_a_truncated_or_corrupt_body_is_malformed(name: str, maker: int) -> None:
    body = COMPRESSORS[name][maker](bytes(range(256)) * 64)
    with pytest.raises(MalformedRequest):
        decode_body(body[: len(body) // 2], check_encoding(name), LIMIT)
    with pytest.raises(MalformedRequest):
        decode_body(b"\x00\x01not compressed at all\xff" * 3, check_encoding(name), LIMIT)


def test_a_framed_snappy_chunk_with_a_wrong_checksum_is_malformed() -> None:
    body = bytearray(cramjam.snappy.compress(b"spans " * 100))
    body[10 + 4] ^= 0xFF  # the first data chunk's CRC-32C (after the 10-byte stream identifier)
    with pytest.raises(MalformedRequest):
        decode_body(bytes(body), "x-snappy-framed", LIMIT)


@pytest.mark.parametrize("header", ["br", "compress", "gzip, zstd", "identity; q=1"])
def test_another_coding_is_unsupported_and_named(header: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="zstd"):
        check_encoding(header)


@pytest.mark.parametrize("header", ["", "identity", "none", " Identity "])
def test_no_coding_is_the_body_itself(header: str) -> None:
    assert decode_body(b"body", check_encoding(header), LIMIT) == b"body"


# --- the receivers, with the real exporters ----------------------------------------------------------


@pytest.mark.parametrize("compression", [HttpCompression.Deflate, HttpCompression.Gzip])
def test_the_sdk_http_exporter_compressed_is_accepted(
    ingestor: Ingestor, compression: HttpCompression
) -> None:
    """Failed before with ``deflate``: 400 "unsupported Content-Encoding", and the exporter dropped
    the batch."""
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    receiver.start()
    try:
        exporter = HttpSpanExporter(
            endpoint=f"http://127.0.0.1:{receiver.port}/v1/traces", compression=compression, timeout=10
        )
        assert exporter.export(SpanFactory().chats(7, tenant="sdk-http")) == SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        receiver.stop(1)
    assert ingestor.metrics.snapshot()["received_spans"] == 7


def _post(port: int, body: bytes, encoding: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": encoding},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_http_receiver_answers_each_coding(ingestor: Ingestor) -> None:
    receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT)
    receiver.start()
    try:
        body = encode_spans(SpanFactory().chats(3, tenant="codings")).SerializeToString()
        for name, makers in COMPRESSORS.items():
            for make in makers:
                assert _post(receiver.port, make(body), name) == 200, name
                assert _post(receiver.port, make(b"\0" * (4 * LIMIT)), name) == 413, name
                assert _post(receiver.port, make(body)[:-8], name) == 400, name
        assert _post(receiver.port, body, "br") == 400
    finally:
        receiver.stop(1)
    assert ingestor.metrics.snapshot()["received_spans"] == 3 * len(CASES)


@pytest.mark.parametrize("compression", [grpc.Compression.Deflate, grpc.Compression.Gzip])
def test_the_sdk_grpc_exporter_compressed_is_accepted(
    ingestor: Ingestor, compression: grpc.Compression
) -> None:
    receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT)
    receiver.start()
    try:
        exporter = GrpcSpanExporter(
            endpoint=f"127.0.0.1:{receiver.port}", insecure=True, compression=compression, timeout=10
        )
        assert exporter.export(SpanFactory().chats(5, tenant="sdk-grpc")) == SpanExportResult.SUCCESS
        exporter.shutdown()
        # a message that decompresses past the limit is refused, whatever it weighs on the wire
        channel = grpc.insecure_channel(f"127.0.0.1:{receiver.port}", compression=compression)
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\0" * (4 * LIMIT), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
    finally:
        receiver.stop(1)
    assert ingestor.metrics.snapshot()["received_spans"] == 5
