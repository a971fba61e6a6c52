"""One export request, from body to durable rows: the part both OTLP receivers share.

`Ingestor.export_*` decodes, admits (bounded in-flight spans), drops recently seen spans, builds rows
(`RowBuilder`: normalize, classify, price), appends them to the write-ahead log and returns only
once they are fsynced. Outcomes, mapped by the receivers to OTLP statuses:

* `ExportResult` (success; ``rejected > 0`` -> ``partial_success`` with the first reason);
* `MalformedRequest` -> 400 / INVALID_ARGUMENT;
* `Backpressure` -> 429 / RESOURCE_EXHAUSTED with a retry delay: too many spans in flight, the
  spool is full while storage is up (the writer is behind), or a tenant is over
  ``limits.tenant_rate`` (`_admit`, which also applies a credential's tenant and the attribute
  value-length limit before anything else);
* `StorageUnavailable` -> 503 / UNAVAILABLE: the spool is full and storage is down, or the log
  cannot be written (`WalWriteError`: disk full, quota, I/O error; the request was not logged and
  is not acknowledged, and the next request tries the disk again).

Nothing is remembered as delivered (dedup) unless it is durable, so a refused request can be retried.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tokenbook.collector.decode.pool import FORMAT_JSON, FORMAT_PROTOBUF, DecoderPool
from tokenbook.collector.decode.spans import Decoded, MalformedRequest
from tokenbook.collector.ingest.dedup import RecentSpanKeys, record_key, span_key
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.collector.limits import TenantRateLimiter
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.rowcodec import encode_record
from tokenbook.collector.wal.log import SpoolFull, WriteAheadLog
from tokenbook.genai.semconv import ATTRIBUTION_KEYS

__all__ = ["Backpressure", "ExportResult", "Ingestor", "StorageUnavailable"]

_log = logging.getLogger(__name__)
_TENANT = ATTRIBUTION_KEYS["tenant"]


def _text(value: Any) -> str:
    """A tenant attribute as the row builder stores it (`rows._text`)."""
    return value if value.__class__ is str else "" if value is None else str(value)


class ExportResult(NamedTuple):
    """What an accepted export request gave: spans accepted and rejected, and why (first reason)."""

    accepted: int
    rejected: int
    message: str  # why spans were rejected; "" when none were

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP response: empty, or ``partial_success`` when spans were rejected."""
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = self.message
        return response


class Backpressure(RuntimeError):
    """Retry later: the collector is saturated. `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(RuntimeError):
    """Storage is down and the write-ahead log is full (or unwritable)."""

    retry_after = 5.0


class Ingestor:
    """Thread-safe; called concurrently by the gRPC and HTTP handler threads."""

    def __init__(
        self,
        builder: RowBuilder,
        decoder: DecoderPool,
        dedup: RecentSpanKeys,
        wal: WriteAheadLog,
        metrics: IngestMetrics,
        *,
        max_inflight_spans: int,
        storage_up: Callable[[], bool],
        on_calls: Callable[[Sequence[CallRow]], None] | None = None,
        rate_limiter: TenantRateLimiter | None = None,
        on_unsure_calls: Callable[[Sequence[CallRow]], None] | None = None,
    ) -> None:
        """`decoder` turns bodies into spans (`DecoderPool(keys, 0)` decodes in the calling thread);
        `on_calls` gets each newly accepted call once, after it is durable (the budget evaluator).
        `on_unsure_calls`, when given, gets instead the new calls that may be re-deliveries the dedup
        memory forgot (`unsure`): the evaluator checks the ledger before counting them."""
        self.on_calls = on_calls
        self.on_unsure_calls = on_unsure_calls
        self.rate_limiter = rate_limiter
        self.builder = builder
        self.decoder = decoder
        self.dedup = dedup
        self.wal = wal
        self.metrics = metrics
        self.max_inflight_spans = max_inflight_spans
        self.storage_up = storage_up
        self._inflight = 0
        self._inflight_requests = 0
        self._inflight_lock = threading.Condition()

    def export_protobuf(self, body: bytes, tenant: str | None = None) -> ExportResult:
        """A binary `ExportTraceServiceRequest`; `tenant` (from a credential) overrides the spans' own."""
        return self._ingest(self._admit(self._decode(FORMAT_PROTOBUF, body), tenant))

    def export_json(self, body: bytes, tenant: str | None = None) -> ExportResult:
        """An OTLP/JSON `ExportTraceServiceRequest`; `tenant` as for `export_protobuf`."""
        return self._ingest(self._admit(self._decode(FORMAT_JSON, body), tenant))

    def _admit(self, decoded: Decoded, tenant: str | None) -> Decoded:
        """Credential tenant, then per-tenant rate (`tokenbook.collector.limits`); the attribute limits
        were applied by the decoder (`KeyFilter.limits`)."""
        records = decoded.records
        if tenant is not None:
            for r in records:
                r.attrs[_TENANT] = tenant
        if self.rate_limiter is not None and records:
            wait = self.rate_limiter.admit(Counter(str(r.attrs.get(_TENANT) or "") for r in records))
            if wait:
                self.metrics.add(refused_requests=1)
                raise Backpressure(
                    f"tenant rate limit (limits.tenant_rate.spans_per_second={self.rate_limiter.rate:g})",
                    retry_after=wait,
                )
        return decoded

    def unsure(self, calls: Sequence[CallRow], horizon: float | None = None) -> list[CallRow]:
        """The calls among new ones that may have been logged before, before the dedup memory's
        `horizon` (as read between `unseen` and `remember`; default: now): a span starts at most
        ``limits.max_span_future`` after it is logged, so one starting at or after ``horizon +
        max_span_future`` was first logged after the horizon, i.e. is known to the memory if it was
        logged at all."""
        certain_from = (
            self.dedup.horizon if horizon is None else horizon
        ) + self.builder.bounds.max_span_future
        return [c for c in calls if c.timestamp.timestamp() < certain_from]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being ingested (at shutdown); return whether that happened."""
        with self._inflight_lock:
            return self._inflight_lock.wait_for(lambda: self._inflight_requests == 0, timeout)

    def _decode(self, fmt: int, body: bytes) -> Decoded:
        try:
            return self.decoder.decode(fmt, body)
        except MalformedRequest:
            self.metrics.add(malformed_requests=1)
            raise

    def _ingest(self, decoded: Decoded) -> ExportResult:
        records = decoded.records
        n = len(records)
        self.metrics.add(received_spans=n + decoded.rejected, rejected_spans=decoded.rejected)
        with self._inflight_lock:
            if self._inflight and self._inflight + n > self.max_inflight_spans:
                self.metrics.add(refused_requests=1)
                raise Backpressure(
                    f"{self._inflight} spans in flight (receivers.otlp.max_inflight_spans="
                    f"{self.max_inflight_spans}); retry later"
                )
            self._inflight += n
            self._inflight_requests += 1
        try:
            refused, reason = self._log_durably(records)
        finally:
            with self._inflight_lock:
                self._inflight -= n
                self._inflight_requests -= 1
                self._inflight_lock.notify_all()
        return ExportResult(n - refused, decoded.rejected + refused, decoded.reason or reason)

    def _log_durably(self, records: list[Any]) -> tuple[int, str]:
        """Build, log and remember `records`; return the spans the builder rejected, and why."""
        keys = [record_key(_text(r.attrs.get(_TENANT, "")), r.trace_id, r.span_id) for r in records]
        fresh = self.dedup.unseen(keys)
        horizon = self.dedup.horizon  # after `unseen`, before `remember` (see ingest.dedup)
        duplicates = len(records) - len(fresh)
        if duplicates:
            records = [records[i] for i in fresh]
            keys = [keys[i] for i in fresh]
        batch = self.builder.build(records)
        if batch.rejected:  # out of limits.*: not logged, not remembered (a backfill may send them again)
            out = set(batch.rejected_keys)
            keys = [k for k, r in zip(keys, records, strict=True) if r.trace_id + r.span_id not in out]
        if batch.calls or batch.steps:
            try:
                self.wal.append(*encode_record(batch.calls, batch.steps))
            except SpoolFull as exc:
                self.metrics.add(refused_requests=1)
                if self.storage_up():
                    raise Backpressure(f"{exc}; storage is catching up", retry_after=2.0) from exc
                raise StorageUnavailable(f"{exc}; storage is unavailable") from exc
            except OSError as exc:  # WalWriteError: disk full, quota, I/O error; nothing was logged
                _log.error("cannot write the write-ahead log: %s", exc)
                self.metrics.add(refused_requests=1, wal_write_failures=1)
                raise StorageUnavailable(f"cannot write the write-ahead log: {exc}") from exc
        added = self.dedup.remember(keys)
        if self.on_calls is not None and batch.calls:
            calls = batch.calls
            if len(added) != len(keys):  # a concurrent request logged some of these spans first
                new = set(added)
                calls = [c for c in calls if span_key(c.tenant_id, c.trace_id, c.span_id) in new]
            if self.on_unsure_calls is not None:
                unsure = self.unsure(calls, horizon)
                if unsure:
                    self.on_unsure_calls(unsure)
                    later = {id(c) for c in unsure}
                    calls = [c for c in calls if id(c) not in later]
            self.on_calls(calls)
        self.metrics.add(
            deduplicated_spans=duplicates,
            billed_calls=batch.billed,
            unpriced_calls=batch.unpriced,
            unbilled_calls=batch.unbilled,
            steps=len(batch.steps),
            rejected_spans=batch.rejected,
        )
        return batch.rejected, batch.reason
