"""The OTLP trace request's envelope walked in C (``_walk.c``; `tokenbook.collector.decode.spans`)."""

from typing import Any

def walk(
    body: bytes, context: tuple[Any, ...], first: int, last: int, /
) -> tuple[list[Any], int, str] | None:
    """The spans of `body` (which upb has parsed) at positions [first, last), or every one when `last`
    is negative, as `decode_protobuf` gives them; None where the Python walk must read the body."""
