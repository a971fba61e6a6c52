"""Ledger rows <-> write-ahead-log payload bytes.

A payload is ``marshal`` of the calls and the steps *by column* (one list per field), with datetimes
as float epoch seconds (microsecond-exact round trip) and `Decimal`s as their string form (exact).
``marshal`` of primitives is about 5x faster than pickling `Decimal`/`datetime` objects and executes
nothing on load. The format is internal to one collector version; `decode_rows` rejects payloads of
another version with `ValueError`.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from tokenbook.collector.ledger import CallRow, StepRow

__all__ = ["decode_rows", "encode_rows"]

_VERSION: Final = 2
_CALL_TIMES: Final = tuple(i for i, f in enumerate(CallRow._fields) if f in ("timestamp", "ingested_at"))
_CALL_MONEY: Final = tuple(i for i, f in enumerate(CallRow._fields) if f.endswith("_cost"))
_STEP_TIMES: Final = tuple(i for i, f in enumerate(StepRow._fields) if f in ("timestamp", "ingested_at"))


def _columns(
    rows: Sequence[tuple[Any, ...]], width: int, times: tuple[int, ...], money: tuple[int, ...]
) -> list[list[Any]]:
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    for i in times:
        cols[i] = [v.timestamp() for v in cols[i]]
    for i in money:
        cols[i] = [None if v is None else str(v) for v in cols[i]]
    return cols


def _rows(cols: list[list[Any]], times: tuple[int, ...], money: tuple[int, ...]) -> list[tuple[Any, ...]]:
    for i in times:
        cols[i] = [datetime.fromtimestamp(v, tz=UTC) for v in cols[i]]
    for i in money:
        cols[i] = [None if v is None else Decimal(v) for v in cols[i]]
    return list(zip(*cols, strict=True))


def encode_rows(calls: Sequence[CallRow], steps: Sequence[StepRow]) -> bytes:
    """Column-wise: one list per field, so conversions run as list comprehensions, not per row."""
    return marshal.dumps(
        (
            _VERSION,
            len(calls),
            _columns(calls, len(CallRow._fields), _CALL_TIMES, _CALL_MONEY),
            len(steps),
            _columns(steps, len(StepRow._fields), _STEP_TIMES, ()),
        )
    )


def decode_rows(payload: bytes) -> tuple[list[CallRow], list[StepRow]]:
    """Inverse of `encode_rows`. Raises `ValueError` for a payload it did not write."""
    try:
        version, *body = marshal.loads(payload)
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"not a row payload: {exc}") from exc
    if version != _VERSION:
        raise ValueError(f"row payload version {version!r}, expected {_VERSION}")
    n_calls, call_cols, n_steps, step_cols = body
    calls = [CallRow._make(r) for r in _rows(call_cols, _CALL_TIMES, _CALL_MONEY)] if n_calls else []
    steps = [StepRow._make(r) for r in _rows(step_cols, _STEP_TIMES, ())] if n_steps else []
    return calls, steps
