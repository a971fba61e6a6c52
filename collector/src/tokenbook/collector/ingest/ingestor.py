"""One export request, from body to durable log record: the part both OTLP receivers share.

Two answers, by ``receivers.otlp.ack``:

* ``logged`` (``deferred=True``): `Ingestor.export_*` has the request decoded for the log
  (`DecoderPool.decode_for_log`), checks it (`deferred.check`: the time and token bounds, span
  keys), admits it, drops recently seen spans, appends its decoded records (a
  `wal.requests.LoggedRequest`) to the write-ahead log and returns once it is fsynced. Rows are
  built behind the answer: the writer hands logged requests to its `RowBuilds` (worker processes)
  and calls `Ingestor.built` for each, which counts them and tells the budgets.
* ``built``: decodes, admits, drops recently seen spans, builds rows (`RowBuilder`: normalize,
  classify, price), appends them to the log and returns once they are fsynced.

Outcomes, mapped by the receivers to OTLP statuses:

* `ExportResult` (success; ``rejected > 0`` -> ``partial_success`` with the first reason);
* `MalformedRequest` -> 400 / INVALID_ARGUMENT;
* `Backpressure` -> 429 / RESOURCE_EXHAUSTED with a retry delay: too many request bytes in flight
  (``receivers.otlp.max_inflight_bytes``, held from a body's arrival until it is logged), or spans, the
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
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tokenbook.collector.decode.pool import FORMAT_JSON, FORMAT_PROTOBUF, DecoderPool
from tokenbook.collector.decode.spans import Decoded, MalformedRequest
from tokenbook.collector.ingest.dedup import RecentSpanKeys, record_key, span_key
from tokenbook.collector.ingest.deferred import Built, Checked, check
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.collector.limits import TenantRateLimiter
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.rowcodec import encode_record
from tokenbook.collector.wal.log import SpoolFull, WriteAheadLog
from tokenbook.collector.wal.requests import LoggedRequest, encode_logged
from tokenbook.genai.semconv import ATTRIBUTION_KEYS

__all__ = ["Backpressure", "ExportResult", "Ingestor", "StorageUnavailable"]

_log = logging.getLogger(__name__)
_TENANT = ATTRIBUTION_KEYS["tenant"]
_SETTLE_S = 30.0  # at most this long for an append to return before its built calls are counted


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
        max_inflight_bytes: int = 64 << 20,
        storage_up: Callable[[], bool],
        on_calls: Callable[[Sequence[CallRow]], None] | None = None,
        rate_limiter: TenantRateLimiter | None = None,
        on_unsure_calls: Callable[[Sequence[CallRow]], None] | None = None,
        deferred: bool = False,
        counting: Callable[[], bool] = lambda: True,
    ) -> None:
        """`decoder` turns bodies into spans (`DecoderPool(keys, 0)` decodes in the calling thread);
        `on_calls` gets each newly accepted call once, after it is durable (the budget evaluator).
        `on_unsure_calls`, when given, gets instead the new calls that may be re-deliveries the dedup
        memory forgot (`unsure`): the evaluator checks the ledger before counting them.
        `deferred`: answer once the request is checked and its records logged (`deferred.check`); rows are
        built behind the answer by the writer's `RowBuilds`, which must call `built` for each.
        `counting`: whether `on_calls` counts calls now (if not, built calls are not read back)."""
        self.deferred = deferred
        self.counting = counting
        self.on_calls = on_calls
        self.on_unsure_calls = on_unsure_calls
        self.rate_limiter = rate_limiter
        self.builder = builder
        self.decoder = decoder
        self.dedup = dedup
        self.wal = wal
        self.metrics = metrics
        self.max_inflight_spans = max_inflight_spans
        self.max_inflight_bytes = max_inflight_bytes
        self.storage_up = storage_up
        self._inflight_held = {"bytes": 0, "spans": 0}
        self._inflight_requests = 0
        self._inflight_lock = threading.Condition()

    def export_protobuf(self, body: bytes, tenant: str | None = None) -> ExportResult:
        """A binary `ExportTraceServiceRequest`; `tenant` (from a credential) overrides the spans' own."""
        return self._export(FORMAT_PROTOBUF, body, tenant)

    def export_json(self, body: bytes, tenant: str | None = None) -> ExportResult:
        """An OTLP/JSON `ExportTraceServiceRequest`; `tenant` as for `export_protobuf`."""
        return self._export(FORMAT_JSON, body, tenant)

    def _export(self, fmt: int, body: bytes, tenant: str | None) -> ExportResult:
        arrived = time.perf_counter()
        with self._holding(len(body)):
            if self.deferred:
                return self._log_request(fmt, body, tenant, arrived)
            decoded = self._admit(self._decode(fmt, body), tenant)
            return self._ingest(decoded, arrived, time.perf_counter())

    def _answered(self, arrived: float, decoded: float, logging: float) -> None:
        """Observe the answer's latency and its stages (`metrics._SUMMARIES`): `arrived`, `decoded`
        (decoded and checked) and `logging` (began logging) are `time.perf_counter` readings."""
        now = time.perf_counter()
        self.metrics.observe(
            answer_seconds=now - arrived,
            answer_decode_seconds=decoded - arrived,
            answer_log_seconds=now - logging,
        )

    # --- acknowledged once logged (deferred) -------------------------------------------------------

    def _log_request(self, fmt: int, body: bytes, tenant: str | None, arrived: float) -> ExportResult:
        """Decode, check, admit, log the records; the rows are built behind the answer (`built`).
        `arrived`: when the body arrived (`time.perf_counter`)."""
        try:
            decoded = self.decoder.decode_for_log(fmt, body)
        except MalformedRequest:
            self.metrics.add(malformed_requests=1)
            raise
        checked = check(decoded, tenant, self.builder.bounds)
        n = len(checked.keys)
        if n:
            self._admit_rate(checked.tenants())
        decoded_at = time.perf_counter()
        self.metrics.add(received_spans=n + checked.rejected, rejected_spans=checked.rejected)
        with self._in_flight(n):
            logging_at = time.perf_counter()
            self._append_request(tenant, checked)
        self._answered(arrived, decoded_at, logging_at)
        return ExportResult(n, checked.rejected, checked.reason)

    def _admit_rate(self, tenants: Counter[str]) -> None:
        """The per-tenant rate (`tokenbook.collector.limits`) for these spans per tenant; raises
        `Backpressure` with the wait beyond it."""
        if self.rate_limiter is None:
            return
        wait = self.rate_limiter.admit(tenants)
        if wait:
            self.metrics.add(refused_requests=1)
            raise Backpressure(
                f"tenant rate limit (limits.tenant_rate.spans_per_second={self.rate_limiter.rate:g})",
                retry_after=wait,
            )

    def _holding(self, size: int) -> AbstractContextManager[None]:
        """Hold a request body of `size` bytes from its arrival until it is logged
        (``receivers.otlp.max_inflight_bytes``); raises `Backpressure` beyond it. `wait_idle` waits for
        every holder to leave."""
        return self._held("bytes", size)

    def _in_flight(self, n: int) -> AbstractContextManager[None]:
        """Hold `n` decoded spans in flight (``receivers.otlp.max_inflight_spans``); raises
        `Backpressure` beyond it."""
        return self._held("spans", n)

    @contextmanager
    def _held(self, unit: Literal["bytes", "spans"], amount: int) -> Iterator[None]:
        """Hold `amount` of `unit` in flight under ``receivers.otlp.max_inflight_<unit>`` (one holder is
        always let in, however large); raises `Backpressure` beyond it. A holder of bytes is a request."""
        limit: int = self.max_inflight_bytes if unit == "bytes" else self.max_inflight_spans
        held = self._inflight_held
        with self._inflight_lock:
            if held[unit] and held[unit] + amount > limit:
                self.metrics.add(refused_requests=1)
                noun = "request bytes" if unit == "bytes" else "spans"
                raise Backpressure(
                    f"{held[unit]} {noun} in flight (receivers.otlp.max_inflight_{unit}={limit}); retry later"
                )
            held[unit] += amount
            self._inflight_requests += unit == "bytes"
        try:
            yield
        finally:
            with self._inflight_lock:
                held[unit] -= amount
                self._inflight_requests -= unit == "bytes"
                self._inflight_lock.notify_all()

    def _append_request(self, tenant: str | None, checked: Checked) -> None:
        keys = checked.keys
        frozen = self.dedup.frozen_version  # before `unseen` (see ingest.dedup)
        fresh = self.dedup.unseen(keys)
        horizon = self.dedup.horizon  # after `unseen`, before `remember` (see ingest.dedup)
        duplicates = len(keys) - len(fresh)
        dropped = checked.dropped
        if duplicates:
            kept = set(fresh)
            dropped |= {checked.ids[i] for i in range(len(keys)) if i not in kept}
            keys = [keys[i] for i in fresh]
            self.metrics.add(deduplicated_spans=duplicates)
        if not keys:
            return
        settled = threading.Event()
        request = LoggedRequest(tenant, frozenset(dropped), checked.records, settled=settled, horizon=horizon)
        try:
            self._append(encode_logged(request), request)
        except BaseException:
            request.counted = frozenset()  # not acknowledged: the client's retry is the one counted
            raise
        else:
            added = self.dedup.remember(keys, unseen_at=frozen)
            if len(added) != len(keys):  # a concurrent request logged some of these spans first
                request.counted = frozenset(added)
        finally:
            settled.set()

    def _append(self, payload: bytes, obj: Any) -> None:
        try:
            self.wal.append(payload, obj)
        except SpoolFull as exc:
            self.metrics.add(refused_requests=1)
            if self.storage_up():
                raise Backpressure(f"{exc}; storage is catching up", retry_after=2.0) from exc
            raise StorageUnavailable(f"{exc}; storage is unavailable") from exc
        except OSError as exc:  # WalWriteError: disk full, quota, I/O error; nothing was logged
            _log.error("cannot write the write-ahead log: %s", exc)
            self.metrics.add(refused_requests=1, wal_write_failures=1)
            raise StorageUnavailable(f"cannot write the write-ahead log: {exc}") from exc

    def built(self, request: LoggedRequest, built: Built) -> None:
        """A logged request's rows were built (by the writer's `RowBuilds`): count them, tell the
        budgets of the calls this collector remembered first (read back from the built block only
        while the budgets count calls: `counting`)."""
        if request.settled is not None:  # built before its append returned (rare): wait for it
            request.settled.wait(_SETTLE_S)
        if self.on_calls is not None and built.touched.calls and self.counting():
            calls = built.calls()
            if request.counted is not None:
                new = request.counted
                calls = [c for c in calls if span_key(c.tenant_id, c.trace_id, c.span_id) in new]
            self._count(calls, request.horizon)
        if built.rejected:
            _log.error("spans set aside when their rows were built (after the answer): %s", built.reason)
        self.metrics.add(
            billed_calls=built.billed,
            unpriced_calls=built.unpriced,
            unbilled_calls=built.unbilled,
            steps=built.touched.steps,
            rejected_after_ack_spans=built.rejected,
        )

    def _count(self, calls: Sequence[CallRow], horizon: float | None = None) -> None:
        """Tell the budgets of newly accepted calls: the unsure ones (`unsure`, against the dedup
        `horizon` read when they were logged) to `on_unsure_calls`, the rest to `on_calls`."""
        assert self.on_calls is not None
        if self.on_unsure_calls is not None:
            unsure = self.unsure(calls, horizon)
            if unsure:
                self.on_unsure_calls(unsure)
                later = {id(c) for c in unsure}
                calls = [c for c in calls if id(c) not in later]
        self.on_calls(calls)

    # --- acknowledged once built -------------------------------------------------------------------

    def _admit(self, decoded: Decoded, tenant: str | None) -> Decoded:
        """Credential tenant, then per-tenant rate (`tokenbook.collector.limits`); the attribute limits
        were applied by the decoder (`KeyFilter.limits`)."""
        records = decoded.records
        if tenant is not None:
            for r in records:
                r.attrs[_TENANT] = tenant
        if self.rate_limiter is not None and records:
            self._admit_rate(Counter(str(r.attrs.get(_TENANT) or "") for r in records))
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

    def _ingest(self, decoded: Decoded, arrived: float, decoded_at: float) -> ExportResult:
        """Build, log and remember the spans of `decoded`; `arrived` and `decoded_at` are
        `time.perf_counter` readings of the body's arrival and the end of its decode."""
        records = decoded.records
        n = len(records)
        self.metrics.add(received_spans=n + decoded.rejected, rejected_spans=decoded.rejected)
        with self._in_flight(n):
            logging_at = time.perf_counter()
            refused, reason = self._log_durably(records)
        self._answered(arrived, decoded_at, logging_at)
        return ExportResult(n - refused, decoded.rejected + refused, decoded.reason or reason)

    def _log_durably(self, records: list[Any]) -> tuple[int, str]:
        """Build, log and remember `records`; return the spans the builder rejected, and why."""
        keys = [record_key(_text(r.attrs.get(_TENANT, "")), r.trace_id, r.span_id) for r in records]
        frozen = self.dedup.frozen_version  # before `unseen` (see ingest.dedup)
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
            self._append(*encode_record(batch.calls, batch.steps))
        added = self.dedup.remember(keys, unseen_at=frozen)
        if self.on_calls is not None and batch.calls:
            calls = batch.calls
            if len(added) != len(keys):  # a concurrent request logged some of these spans first
                new = set(added)
                calls = [c for c in calls if span_key(c.tenant_id, c.trace_id, c.span_id) in new]
            self._count(calls, horizon)
        self.metrics.add(
            deduplicated_spans=duplicates,
            billed_calls=batch.billed,
            unpriced_calls=batch.unpriced,
            unbilled_calls=batch.unbilled,
            steps=len(batch.steps),
            rejected_spans=batch.rejected,
        )
        return batch.rejected, batch.reason
