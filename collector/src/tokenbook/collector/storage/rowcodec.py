"""Ledger rows <-> write-ahead-log payload bytes, which are also ClickHouse insert blocks.

A payload holds one block per table in ClickHouse's ``JSONCompactColumns`` input format (one JSON
array per column, in `CallRow`/`StepRow` field order), so a row is encoded once, on the request
path, and the writer inserts the logged bytes as they are: blocks of several records are joined
with newlines (`join_blocks`) and ClickHouse parses them (`Store.write(..., blocks=...)`).

Column encodings (exact, and parsed by ClickHouse without settings): datetimes as RFC 3339 text
(microseconds unless zero, ``+00:00``), `Decimal`s as their string form (``"1E-12"`` included), NULL as
``null``, the ``tags`` Map as a JSON object. Blocks are written by ``orjson`` (about 5x faster than
the standard library here); a block holding a lone surrogate (only OTLP/JSON can carry one), which
UTF-8 cannot encode, is written by the standard library with ``\\uXXXX`` escapes instead, so any
Python string round-trips. The payload wraps the two blocks with ``marshal``, which executes
nothing on load. The format is internal
to one collector version; `decode_rows` rejects payloads of another version with `ValueError`.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from tokenbook.collector.storage.ledger import CallRow, StepRow

__all__ = [
    "BLOCK_FORMAT",
    "RowRecord",
    "decode_block",
    "decode_record",
    "decode_rows",
    "encode_block",
    "encode_record",
    "encode_rows",
    "join_blocks",
]

BLOCK_FORMAT: Final = "JSONCompactColumns"
_VERSION: Final = 6
#: Versions written before columns were added at the end of `CallRow`: read with their defaults.
_OLDER: Final = (3, 4, 5)
_CALL_TIMES: Final = tuple(i for i, f in enumerate(CallRow._fields) if f in ("timestamp", "ingested_at"))
_CALL_MONEY: Final = tuple(i for i, f in enumerate(CallRow._fields) if f.endswith("_cost"))
_STEP_TIMES: Final = tuple(i for i, f in enumerate(StepRow._fields) if f in ("timestamp", "ingested_at"))
_dumps: Final = json.JSONEncoder(separators=(",", ":")).encode
_loads: Final = json.loads


class RowRecord(NamedTuple):
    """One logged record: its rows and the ClickHouse blocks of them (b"" for no rows)."""

    calls: list[CallRow]
    steps: list[StepRow]
    call_block: bytes
    step_block: bytes


def _block(rows: Sequence[tuple[Any, ...]], times: tuple[int, ...], money: tuple[int, ...]) -> bytes:
    if not rows:
        return b""
    cols: list[Any] = list(zip(*rows, strict=True))
    for i in money:
        cols[i] = [None if v is None else str(v) for v in cols[i]]
    try:
        return orjson.dumps(cols)  # datetimes natively, as RFC 3339 with microseconds and offset
    except orjson.JSONEncodeError:  # a lone surrogate (only OTLP/JSON can carry one): escape it
        for i in times:
            cols[i] = [v.isoformat() for v in cols[i]]
        return _dumps(cols).encode("ascii")


def encode_block(table: str, rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The `BLOCK_FORMAT` block of `rows` of ``llm_calls`` or ``context_steps`` (b"" for no rows)."""
    if table == "llm_calls":
        return _block(rows, _CALL_TIMES, _CALL_MONEY)
    if table == "context_steps":
        return _block(rows, _STEP_TIMES, ())
    raise ValueError(f"no block encoding for table {table!r}")


def join_blocks(blocks: Sequence[bytes]) -> bytes:
    """One insert body of several blocks of the same table (ClickHouse reads them in sequence)."""
    return b"\n".join(b for b in blocks if b)


def encode_record(calls: list[CallRow], steps: list[StepRow]) -> tuple[bytes, RowRecord]:
    """The payload to log for these rows, and the in-memory record the writer inserts from."""
    call_block = _block(calls, _CALL_TIMES, _CALL_MONEY)
    step_block = _block(steps, _STEP_TIMES, ())
    payload = marshal.dumps((_VERSION, call_block, step_block))
    return payload, RowRecord(calls, steps, call_block, step_block)


def encode_rows(calls: Sequence[CallRow], steps: Sequence[StepRow]) -> bytes:
    """The payload of `encode_record`."""
    return encode_record(list(calls), list(steps))[0]


def _rows(block: bytes, times: tuple[int, ...], money: tuple[int, ...]) -> list[tuple[Any, ...]]:
    if not block:
        return []
    cols = _loads(block)
    for i in times:
        cols[i] = [datetime.fromisoformat(v) for v in cols[i]]
    for i in money:
        if i < len(cols):  # a payload of an older version has fewer columns
            cols[i] = [None if v is None else Decimal(v) for v in cols[i]]
    return list(zip(*cols, strict=True))


def decode_block(table: str, block: bytes) -> list[Any]:
    """Inverse of `encode_block`: the `CallRow`s or `StepRow`s of a block."""
    if table == "llm_calls":
        return [CallRow._make(r) for r in _rows(block, _CALL_TIMES, _CALL_MONEY)]
    if table == "context_steps":
        return [StepRow._make(r) for r in _rows(block, _STEP_TIMES, ())]
    raise ValueError(f"no block encoding for table {table!r}")


def decode_record(payload: bytes) -> RowRecord:
    """Inverse of `encode_record`. Raises `ValueError` for a payload it did not write."""
    try:
        version, call_block, step_block = marshal.loads(payload)
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"not a row payload: {exc}") from exc
    if version in _OLDER and call_block:  # written before an upgrade: add the new columns' defaults
        calls = [CallRow(*r) for r in _rows(call_block, _CALL_TIMES, _CALL_MONEY)]
        call_block = _block(calls, _CALL_TIMES, _CALL_MONEY)
        steps = [StepRow._make(r) for r in _rows(step_block, _STEP_TIMES, ())]
        return RowRecord(calls, steps, call_block, step_block)
    if version not in (*_OLDER, _VERSION):
        raise ValueError(f"row payload version {version!r}, expected {_VERSION}")
    calls = [CallRow._make(r) for r in _rows(call_block, _CALL_TIMES, _CALL_MONEY)]
    steps = [StepRow._make(r) for r in _rows(step_block, _STEP_TIMES, ())]
    return RowRecord(calls, steps, call_block, step_block)


def decode_rows(payload: bytes) -> tuple[list[CallRow], list[StepRow]]:
    """The rows of a payload (see `decode_record`)."""
    record = decode_record(payload)
    return record.calls, record.steps
