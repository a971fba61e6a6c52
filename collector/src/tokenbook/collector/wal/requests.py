"""Logged requests: export requests acknowledged before their rows were built, as the log holds them.

A payload is ``marshal`` of ``("spans", 1, credential tenant or None, dropped span IDs, records)``:
`records` are the request's decoded span records as the decoder serialized them
(`decode.pool.records_payload`), and the dropped IDs (trace + span, 24 bytes each) are the spans
not to build (rejected by the answer's bounds, or already delivered). It cannot be mistaken for a row
payload (`storage.rowcodec`: a 3-tuple), and a collector that predates it sets it aside as
undecodable instead of misreading it.
"""

from __future__ import annotations

import marshal
import threading
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LoggedRequest", "decode_logged", "encode_logged"]

_TAG: Final = "spans"
_VERSION: Final = 1
_PREFIXES: Final = (b"\xa9\x05", b")\x05")  # marshal of a 5-tuple: TYPE_SMALL_TUPLE (maybe flagged), 5


@dataclass(slots=True)
class LoggedRequest:
    """An acknowledged request as logged: built into rows behind the answer."""

    tenant: str | None  # the credential's tenant (overrides the spans' own)
    dropped: frozenset[bytes]  # trace_id + span_id of spans not to build (rejected, already delivered)
    records: bytes  # the decoded span records (`decode.pool.records_payload`)
    #: span keys this collector remembered first (budgets count only those); None: every built call
    counted: frozenset[bytes] | None = field(default=None, compare=False)
    #: set once the append returned (or failed): `counted` is final then; None for a replayed record
    settled: threading.Event | None = field(default=None, compare=False)
    #: the dedup memory's horizon when the request was logged (`Ingestor.unsure`); None: replayed
    horizon: float | None = field(default=None, compare=False)


def encode_logged(request: LoggedRequest) -> bytes:
    """The write-ahead log payload of `request`."""
    return marshal.dumps((_TAG, _VERSION, request.tenant, tuple(sorted(request.dropped)), request.records))


def decode_logged(payload: bytes) -> LoggedRequest | None:
    """The `LoggedRequest` of a payload `encode_logged` wrote; None for any other payload (rows).
    Raises ValueError for a logged request of another version."""
    if not payload.startswith(_PREFIXES):
        return None
    try:
        doc = marshal.loads(payload)
    except (EOFError, TypeError, ValueError):
        return None
    if not (isinstance(doc, tuple) and len(doc) == 5 and doc[0] == _TAG):
        return None
    _tag, version, tenant, dropped, records = doc
    if version != _VERSION or not isinstance(records, bytes):
        raise ValueError(f"logged request version {version!r}: not readable here")
    return LoggedRequest(tenant, frozenset(dropped), records)
