"""Protobuf fields written by hand, for bodies an SDK would never send (tests of the decoders)."""

from __future__ import annotations

__all__ = ["delimited", "field", "fixed64", "varint"]

_LEN = 2


def varint(n: int) -> bytes:
    """`n` (non-negative) as a base-128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    """Field `number` of `wire_type` with `payload` as its value's bytes (a length-delimited one gets
    its length in front)."""
    tag = varint(number << 3 | wire_type)
    return tag + (varint(len(payload)) + payload if wire_type == _LEN else payload)


def delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited field (bytes, a string or a message)."""
    return field(number, _LEN, payload)


def fixed64(number: int, value: int) -> bytes:
    """A fixed64 field."""
    return field(number, 1, value.to_bytes(8, "little"))
