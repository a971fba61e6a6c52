"""Acknowledge first, build later: the checks an answer depends on, and building a logged request.

With ``receivers.otlp.ack: logged`` (the default) an export request is answered once it is checked
(`check`) and its decoded records are in the write-ahead log (`wal.requests.LoggedRequest`); pricing
and building rows happen behind the answer (`LoggedBuilder.build`, in worker processes:
`buildpool.BuildPool`), and the writer inserts the rows of each logged request before it commits the
record.

Before the answer the request is decoded once, as before, by the decoder processes
(`decode.pool.DecoderPool.decode_for_log`): structural validity and the decoder's per-span rejections
(invalid IDs, too many attributes, a kept value that cannot be read or is over the length limit) are
the decoder's own. The decoder hands back the records already serialized for the log and a summary
per span (`decode.pool.SpanSummary`), so the collector's interpreter never rebuilds them: `check`
applies to the summaries the rejections the row builder made before the answer, a start time outside
``limits.max_span_age``/``limits.max_span_future`` and a token count over
``limits.max_tokens_per_call``, and derives the span keys (`ingest.dedup.ident_key`) for the dedup memory
and the tenants for the rate limit. Two differences from building rows first: every span outside the
time window is rejected (also one that would have become no row), and a token count over the limit
is rejected in any usage attribute (also one a later rule would not have read).

One rejection needs pricing and is made behind the answer: a call whose cost does not fit
``Decimal(18, 12)`` (possible only with a price override). Such a span is set aside when its rows are
built: counted in ``tokenbook_collector_rejected_after_ack_spans_total`` and logged with its IDs.

The logged record lists the dropped spans (rejected by the bounds, or already delivered), which the
builder skips; a span repeated inside one request is built once (the first one).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from tokenbook.collector.decode.pool import DecodedForLog, records_of
from tokenbook.collector.decode.spans import SpanRecord
from tokenbook.collector.ingest.dedup import ident_key, record_key, span_key
from tokenbook.collector.ingest.rows import RowBatch, RowBuilder, SpanBounds
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.rowcodec import RowRecord, decode_block, decode_record, encode_record
from tokenbook.collector.storage.touched import Touched
from tokenbook.collector.wal.requests import LoggedRequest, decode_logged
from tokenbook.genai.semconv import ATTRIBUTION_KEYS

__all__ = [
    "Built",
    "Checked",
    "LoggedBuilder",
    "PendingSpans",
    "check",
    "pending_spans",
    "spans_of",
    "unbounded_in_time",
]

_TENANT: Final = ATTRIBUTION_KEYS["tenant"]


# --- before the answer -------------------------------------------------------------------------------


@dataclass(slots=True)
class Checked:
    """What `check` found: per accepted span its key and ID; rejections; the records to log."""

    keys: list[bytes]  # dedup keys (`ingest.dedup.ident_key`), one per accepted span, in request order
    ids: list[bytes]  # trace_id + span_id of the same spans
    span_tenants: list[str]  # the tenant of the same spans (the credential's, else their own)
    rejected: int
    reason: str  # the first rejection reason, "" when none
    dropped: set[bytes]  # IDs of spans rejected by the bounds (the decoder's are not in `records`)
    records: bytes  # the decoded records, as logged

    def tenants(self) -> Counter[str]:
        """Accepted spans per tenant."""
        return Counter(self.span_tenants)


def check(
    decoded: DecodedForLog, tenant: str | None, bounds: SpanBounds, *, now_ns: int | None = None
) -> Checked:
    """The answer's checks on a decoded request (see the module docstring); `tenant` is the
    credential's (it overrides the spans' own)."""
    now = time.time_ns() if now_ns is None else now_ns
    keys: list[bytes] = []
    ids: list[bytes] = []
    span_tenants: list[str] = []
    dropped: set[bytes] = set()
    rejected, reason = decoded.rejected, decoded.reason
    limit = bounds.max_tokens_per_call
    future_ns = bounds.max_span_future * 1e9
    age_ns = bounds.max_span_age * 1e9
    for ident, span_tenant, start, tokens in decoded.spans:
        problem = ""
        if start - now > future_ns or (age_ns and now - start > age_ns):
            problem = bounds.time_violation(start, now)
        if not problem and tokens > limit:
            problem = f"a token count of {tokens} (limits.max_tokens_per_call={limit})"
        if problem:
            dropped.add(ident)
            rejected += 1
            reason = reason or problem
            continue
        owner = span_tenant if tenant is None else tenant
        keys.append(ident_key(ident, owner))
        ids.append(ident)
        span_tenants.append(owner)
    return Checked(keys, ids, span_tenants, rejected, reason, dropped, decoded.records)


# --- behind the answer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Built:
    """The rows of one logged request as a worker built them: the ClickHouse blocks, what the rows
    touch (`storage.touched.Touched`) and the counts. The rows themselves are read back from the
    blocks only when needed (`calls`, `record`)."""

    call_block: bytes
    step_block: bytes
    touched: Touched
    billed: int
    unpriced: int
    unbilled: int
    rejected: int  # spans set aside when built (a cost that does not fit the ledger)
    reason: str

    @classmethod
    def of(cls, batch: RowBatch) -> Built:
        """The blocks and summary of a `RowBuilder` batch."""
        _, record = encode_record(batch.calls, batch.steps)
        return cls(
            record.call_block,
            record.step_block,
            Touched.of(batch.calls, batch.steps),
            batch.billed,
            batch.unpriced,
            batch.unbilled,
            batch.rejected,
            batch.reason,
        )

    def calls(self) -> list[CallRow]:
        """The calls, read back from their block."""
        rows: list[CallRow] = decode_block("llm_calls", self.call_block)
        return rows

    def record(self) -> RowRecord:
        """The rows, read back from the blocks."""
        steps = decode_block("context_steps", self.step_block)
        return RowRecord(self.calls(), steps, self.call_block, self.step_block)

    def wire(self) -> tuple[Any, ...]:
        """A tuple ``marshal`` can carry (worker process -> collector)."""
        return (
            self.call_block,
            self.step_block,
            self.touched.wire(),
            self.billed,
            self.unpriced,
            self.unbilled,
            self.rejected,
            self.reason,
        )

    @classmethod
    def from_wire(cls, doc: Sequence[Any]) -> Built:
        """Inverse of `wire`."""
        call_block, step_block, touched, *counts = doc
        return cls(call_block, step_block, Touched.from_wire(touched), *counts)


def spans_of(request: LoggedRequest) -> list[SpanRecord]:
    """The spans of a logged request to build: with the credential's tenant, less the dropped ones and
    repeats. Raises ValueError (a poison record)."""
    tenant = request.tenant
    dropped = request.dropped
    seen: set[tuple[bytes, str]] = set()
    out: list[SpanRecord] = []
    for r in records_of(request.records):
        ident = r.trace_id + r.span_id
        if ident in dropped:
            continue
        if tenant is not None:
            r.attrs[_TENANT] = tenant
        # The dedup key's parts (`ingest.dedup.record_key` digests them; equal parts, equal keys).
        key = (ident, _text(r.attrs.get(_TENANT)) if tenant is None else tenant)
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def _text(value: Any) -> str:
    return value if value.__class__ is str else "" if value is None else str(value)


class LoggedBuilder:
    """Decodes and builds logged requests in the calling thread (a worker process, or the writer)."""

    def __init__(self, builder: RowBuilder) -> None:
        """`builder` should have no time window (`unbounded_in_time`): the window was applied at the
        answer, and a record may be built long after (replay after an outage)."""
        self.builder = builder

    def build(self, request: LoggedRequest) -> Built:
        """Rows of `request`. Raises on a record that cannot be built (poison)."""
        return Built.of(self.builder.build(spans_of(request)))


def unbounded_in_time(bounds: SpanBounds) -> SpanBounds:
    """`bounds` without the time window (kept: the token and cost limits)."""
    return SpanBounds(bounds.max_tokens_per_call, 0.0, float("inf"))


# --- replay helpers (start-up) -----------------------------------------------------------------------


class PendingSpans(NamedTuple):
    """The spans of one undelivered log record, read at start."""

    keys: list[bytes]  # span keys (`ingest.dedup.record_key`), for the dedup memory
    calls: Sequence[CallRow]  # the calls of a row record; none for a logged request (counted when built)


def pending_spans(payload: bytes) -> PendingSpans:
    """The span keys and stored-to-be calls of a log payload (either kind), for warming the dedup
    memory and the budget counters at start; an unreadable payload holds none (the writer sets it
    aside)."""
    try:
        request = decode_logged(payload)
        if request is not None:
            return PendingSpans(
                [record_key(_text(r.attrs.get(_TENANT)), r.trace_id, r.span_id) for r in spans_of(request)],
                (),
            )
        record = decode_record(payload)
    except ValueError:
        return PendingSpans([], ())
    rows: list[CallRow | StepRow] = [*record.calls, *record.steps]
    return PendingSpans([span_key(r.tenant_id, r.trace_id, r.span_id) for r in rows], record.calls)
