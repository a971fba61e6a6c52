"""The request body codings of OTLP/HTTP: every ``Content-Encoding`` an OpenTelemetry SDK or Collector
sends, decoded within a size limit.

The OpenTelemetry Collector's ``otlphttp`` exporter compresses with ``gzip`` (its default), ``zstd``,
``snappy`` (the block format; framed in earlier releases), ``x-snappy-framed``, ``zlib``/``deflate``
(both the zlib format) or ``lz4`` (the frame format); the Python SDK's exporter with ``gzip`` or
``deflate``. `decode_body` reads each of them (``snappy`` in either format, told apart by the framed
format's stream identifier; ``deflate`` also as raw deflate, which some clients send), and never
holds more than `limit` decoded bytes plus one step of the decoder: a body that decodes to more is
refused as `BodyTooLarge` before it is decoded whole, a body that is not what its coding says as
`MalformedRequest`, and a coding not listed as `UnsupportedEncoding`.

Not thread-affine; blocks only on CPU; the codecs (zstandard, cramjam, lz4) are imported on first use.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

from tokenbook.collector.decode.spans import MalformedRequest

__all__ = ["ENCODINGS", "BodyTooLarge", "UnsupportedEncoding", "check_encoding", "decode_body"]


class BodyTooLarge(ValueError):
    """The body decodes to more than the limit."""


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` that `decode_body` does not read (or a list of several)."""


_ZSTD_STEP: Final = 256  # compressed bytes per zstd step: at most 8 MiB out (RLE blocks of 128 KiB)
_SNAPPY_IDENTIFIER: Final = b"\xff\x06\x00\x00sNaPpY"  # the framed format's first chunk


def _gzip(body: bytes, limit: int) -> bytes:
    return _zlib(body, limit, 16 + zlib.MAX_WBITS, "gzip")


def _deflate(body: bytes, limit: int) -> bytes:
    try:
        return _zlib(body, limit, zlib.MAX_WBITS, "deflate")
    except MalformedRequest:  # raw deflate (RFC 1951) without the zlib wrapper, as some clients send
        return _zlib(body, limit, -zlib.MAX_WBITS, "deflate")


def _zlib(body: bytes, limit: int, wbits: int, name: str) -> bytes:
    d = zlib.decompressobj(wbits=wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedRequest(f"invalid {name} body: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLarge(f"decompressed body above {limit} bytes")
    if not d.eof:
        raise MalformedRequest(f"truncated {name} body")
    return out


def _zstd(body: bytes, limit: int) -> bytes:
    import zstandard

    out = bytearray()
    rest = body
    try:
        while rest:  # one frame per decompressor; a body may hold several
            d = zstandard.ZstdDecompressor().decompressobj()
            for at in range(0, len(rest), _ZSTD_STEP):
                out += d.decompress(rest[at : at + _ZSTD_STEP])
                if len(out) > limit:
                    raise BodyTooLarge(f"decompressed body above {limit} bytes")
                if d.eof:
                    break
            if not d.eof:
                raise MalformedRequest("truncated zstd body")
            rest = d.unused_data
    except zstandard.ZstdError as exc:
        raise MalformedRequest(f"invalid zstd body: {exc}") from exc
    return bytes(out)


def _snappy(body: bytes, limit: int) -> bytes:
    if body.startswith(_SNAPPY_IDENTIFIER):
        return _snappy_framed(body, limit)
    import cramjam

    try:
        size = cramjam.snappy.decompress_raw_len(body)  # the block format states its decoded length first
        if size > limit:
            raise BodyTooLarge(f"decompressed body above {limit} bytes")
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise MalformedRequest(f"invalid snappy body: {exc}") from exc


def _snappy_framed(body: bytes, limit: int) -> bytes:
    """The framed format: chunks of a type byte and a 3-byte length; the decoded size is the sum of the
    compressed chunks' stated lengths and the uncompressed chunks' own, checked before decoding (which
    also checks every chunk's CRC-32C)."""
    import cramjam

    size = 0
    at = 0
    try:
        while at < len(body):
            if at + 4 > len(body):
                raise MalformedRequest("truncated snappy frame")
            kind, length = body[at], int.from_bytes(body[at + 1 : at + 4], "little")
            chunk = body[at + 4 : at + 4 + length]
            if len(chunk) < length:
                raise MalformedRequest("truncated snappy frame")
            if kind == 0x00:  # compressed: a CRC, then a block
                size += cramjam.snappy.decompress_raw_len(chunk[4:])
            elif kind == 0x01:  # uncompressed: a CRC, then the data
                size += max(0, length - 4)
            if size > limit:
                raise BodyTooLarge(f"decompressed body above {limit} bytes")
            at += 4 + length
        return bytes(cramjam.snappy.decompress(body))
    except cramjam.DecompressionError as exc:
        raise MalformedRequest(f"invalid snappy body: {exc}") from exc


def _lz4(body: bytes, limit: int) -> bytes:
    import lz4.frame

    out = bytearray()
    rest = body
    try:
        while rest:  # one frame per decompressor; a body may hold several
            d = lz4.frame.LZ4FrameDecompressor()
            out += d.decompress(rest, max_length=limit + 1 - len(out))
            if len(out) > limit or (not d.eof and not d.needs_input):
                raise BodyTooLarge(f"decompressed body above {limit} bytes")
            if not d.eof:
                raise MalformedRequest("truncated lz4 body")
            rest = d.unused_data
    except RuntimeError as exc:  # lz4.frame's errors
        raise MalformedRequest(f"invalid lz4 body: {exc}") from exc
    return bytes(out)


#: ``Content-Encoding`` (lower case) -> its decoder; the identity is not listed.
ENCODINGS: Final[dict[str, Callable[[bytes, int], bytes]]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "zlib": _deflate,
    "zstd": _zstd,
    "snappy": _snappy,
    "x-snappy-framed": _snappy_framed,
    "lz4": _lz4,
}
_IDENTITY: Final = frozenset({"", "identity", "none"})


def check_encoding(content_encoding: str) -> str:
    """The coding a ``Content-Encoding`` header names, normalised (``""`` for none); raises
    `UnsupportedEncoding` for a coding not in `ENCODINGS` or for several codings."""
    name = content_encoding.strip().lower()
    if name in _IDENTITY:
        return ""
    if name not in ENCODINGS:
        supported = ", ".join(sorted(ENCODINGS))
        message = f"unsupported Content-Encoding {content_encoding!r}; use {supported} or none"
        raise UnsupportedEncoding(message)
    return name


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decoded from `encoding` (as `check_encoding` returns it), at most `limit` bytes; raises
    `BodyTooLarge` beyond it and `MalformedRequest` for a body its coding does not decode."""
    if not encoding:
        return body
    return ENCODINGS[encoding](body, limit)
