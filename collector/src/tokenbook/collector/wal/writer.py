"""The batch writer: drains the write-ahead log into storage, thousands of rows per insert.

One thread (`LedgerWriter`) reads records in log order, gathers up to `max_rows` rows (and at most
`max_bytes` of records: what a batch holds in memory, its requests and their built blocks) or waits at
most `max_delay` seconds for more, and calls `Store.write(calls, steps, blocks=...)` with the logged records'
ClickHouse blocks joined (`rowcodec`): rows are encoded once, by whoever built them, and parsed by
ClickHouse. A record is either rows (built before the answer, or by an older version) or a logged request
(`requests.LoggedRequest`, acknowledged before its rows were built): the writer hands those to `builds`
as it reads them (several are built at once, in worker processes) and inserts their rows in log order.
Only after the insert succeeds is the log committed (and delivered segments deleted), so a record
acknowledged but not yet built survives ``kill -9`` and is built at replay. A failing insert is retried
with exponential backoff (0.1 s doubling to 5 s) for as long as it takes: while storage is down the log
absorbs the traffic up to ``storage.spool.max_bytes``, and `storage_up` turns False so the receivers
answer 503 instead of 429 once it is full. The aggregates and the billing decisions are brought up to
date after the inserts by an `AggregateRefresher` on a thread of its own (`wal.refresher`): the writer
never waits for a refresh, and a refresh never holds an insert back.

One record or row never stops the ledger:

* a record that cannot be read or built (a logged request the builder refuses, or that kills its
  worker twice) is set aside in ``undecodable/`` in the log's directory and counted
  (``undecodable_records``); the records after it go on;

* a batch is split by partition (the month of ``timestamp``, as ``PARTITION BY toYYYYMM(timestamp)``)
  into inserts of at most `PARTITIONS_PER_INSERT` months (ClickHouse's ``max_partitions_per_insert_block``
  default is 100); the common one-month batch is inserted as logged, without re-encoding;
* an insert refused deterministically (a ClickHouse error code of `REFUSED_CODES`: a value that does
  not parse or fit its column, too many partitions), unlike a connection error or a timeout, is bisected
  until the refused rows are isolated; those go to the ``quarantine`` table (with the table, the error
  code and message) and everything else is inserted. ``tokenbook quarantine list|replay`` shows and
  re-inserts them. A failure of the quarantine insert itself is retried like any other;
* only errors that can succeed later (every other one) are retried, with backoff, while the log holds
  the rows.

`stop(drain_timeout)` lets the writer empty the log (or give up after the timeout, leaving the rest
in the log for the next start), joins the thread, then waits for the refresher's last refresh until
the same deadline.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Final, Protocol

from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.config import RefreshConfig
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.rowcodec import RowRecord, decode_record, join_blocks
from tokenbook.collector.storage.store import (
    PARTITIONS_PER_INSERT,
    QUARANTINE_COLUMNS,
    StoreUnavailable,
    error_code,
    quarantine_entry,
)
from tokenbook.collector.storage.touched import Touched, month
from tokenbook.collector.wal.log import Position, WriteAheadLog
from tokenbook.collector.wal.refresher import AggregateRefresher
from tokenbook.collector.wal.requests import LoggedRequest, decode_logged, encode_logged

__all__ = ["PARTITIONS_PER_INSERT", "REFUSED_CODES", "LedgerStore", "LedgerWriter", "refused"]

#: The refresh of a writer made without its config: the configured intervals, the creator's priority.
_REFRESH_DEFAULTS: Final = RefreshConfig(nice=0)
_log = logging.getLogger(__name__)
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0
#: ClickHouse error codes that refuse the data itself: the same rows fail again however often retried.
REFUSED_CODES: Final = frozenset({
    6,  # CANNOT_PARSE_TEXT
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF
    33,  # CANNOT_READ_ALL_DATA
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND (e.g. "Decimal value is too big")
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    252,  # TOO_MANY_PARTITIONS
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407,  # DECIMAL_OVERFLOW
})  # fmt: skip
_REASON_CHARS: Final = 2000
_RECORD_BYTES_PER_ROW: Final = 300  # estimates a logged request's rows from its records' bytes


def refused(exc: BaseException) -> bool:
    """Whether storage refused the rows themselves (retrying them can never succeed)."""
    return not isinstance(exc, StoreUnavailable) and error_code(exc) in REFUSED_CODES


class LedgerStore(Protocol):
    """What the writer needs of `tokenbook.collector.storage.store.Store`."""

    def write(
        self, calls: Sequence[CallRow], steps: Sequence[StepRow], *, blocks: tuple[bytes, bytes] | None = None
    ) -> Any:
        """Insert ledger rows, or their pre-encoded `blocks` (`Store.write`). The writer also passes
        ``touched=`` (a `Touched`, with no rows) for built rows: a store that takes logged requests
        accepts it."""

    def refresh_aggregates(self, *, hourly: bool = True) -> Any:
        """Recompute the aggregates of the keys written since the last refresh."""

    def refresh_pending(self) -> bool:
        """Whether keys are left for a later refresh (`Store.refresh_pending`)."""

    # and, optionally, `quarantine(entries)` (`Store.quarantine`); without it refused rows are appended
    # to ``quarantine.jsonl`` in the log's directory.


class BuiltRows(Protocol):
    """The rows of a logged request as a worker built them (`ingest.deferred.Built`): their blocks and
    what they touch, without the rows themselves."""

    call_block: bytes
    step_block: bytes
    touched: Touched

    def record(self) -> RowRecord:
        """The rows, read back from the blocks (only when an insert must be split or isolated)."""


class RowBuilds(Protocol):
    """What the writer needs to turn logged requests into rows (`ingest.buildpool.BuildPool`)."""

    def submit(self, request: LoggedRequest) -> Future[Any]:
        """Build `request`'s rows: a future of `BuiltRows` (failed for a record that cannot be built)."""


class LedgerWriter:
    """Moves rows from the log to storage on its own thread."""

    def __init__(
        self,
        wal: WriteAheadLog,
        store: LedgerStore,
        metrics: IngestMetrics,
        *,
        max_rows: int,
        max_delay: float,
        max_bytes: int = 32 << 20,
        builds: RowBuilds | None = None,
        on_built: Callable[[LoggedRequest, Any], None] | None = None,
        refresh: RefreshConfig = _REFRESH_DEFAULTS,
    ) -> None:
        """`builds` turns logged requests (acknowledged before their rows were built) into rows;
        without it such a record is set aside. `on_built` is told of each one built (counters).
        `refresh`: the aggregate refresh thread's priority and intervals (`AggregateRefresher`)."""
        self.wal = wal
        self.builds = builds
        self.on_built = on_built
        self.store = store
        self.metrics = metrics
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self.storage_up = True
        self._stopping = threading.Event()
        self._deadline = float("inf")  # give up draining after this (monotonic)
        self._thread = threading.Thread(target=self._run, name="tokenbook-ledger-writer", daemon=True)
        self._behind = False  # the last batch was full: more rows wait in the log
        self.refresher = AggregateRefresher(
            store, nice=refresh.nice, interval=refresh.interval, hourly_interval=refresh.hourly_interval
        )

    def start(self) -> None:
        """Start the writer thread (it replays undelivered records, then drains new ones) and the
        aggregate refresher."""
        self.refresher.start()
        self._thread.start()

    def stop(self, drain_timeout: float) -> bool:
        """Drain the log into storage and refresh the aggregates (up to `drain_timeout` s in all);
        return whether the log is empty."""
        self._deadline = time.monotonic() + drain_timeout
        self._stopping.set()
        self._thread.join()
        self.refresher.stop(self._deadline - time.monotonic())
        return self.wal.pending_bytes == 0

    def _run(self) -> None:
        delay = _BACKOFF_MIN
        while True:
            try:
                if not self._step():
                    return
                delay = _BACKOFF_MIN
            except Exception:  # noqa: BLE001 - the writer thread must outlive any one failure
                _log.exception(
                    "ledger writer: unexpected failure; retrying (undelivered rows stay in the log)"
                )
                if self._stopping.is_set():
                    return
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    def _step(self) -> bool:
        """One batch (or one idle wait); False when the writer is done."""
        stopping = self._stopping.is_set()
        if not self.wal.wait_for_data(0 if stopping else self.max_delay):
            self._behind = False  # caught up
            self.refresher.caught_up()
            return not stopping
        records, end = self._gather()
        if end is not None and not self._insert(records):
            return False  # gave up at shutdown: the rows stay in the log for the next start
        if end is not None:
            self.wal.commit(end)
        return True

    def _decode(self, payload: bytes) -> RowRecord | LoggedRequest | None:
        """The rows of a logged record, or the logged request to build; None for a record this version
        cannot read (kept in a file)."""
        try:
            return decode_logged(payload) or decode_record(payload)
        except ValueError as exc:
            self._set_aside(payload, str(exc))
            return None

    def _set_aside(self, payload: bytes, why: str) -> None:
        """Keep a record that cannot become rows in ``undecodable/`` (counted), so it never blocks the log."""
        folder = self.wal.directory / "undecodable"
        folder.mkdir(exist_ok=True)
        path = folder / f"{time.time_ns()}.bin"
        path.write_bytes(payload)
        self.metrics.add(undecodable_records=1)
        _log.error("write-ahead log record cannot be turned into rows (%s); skipped, kept in %s", why, path)

    def _gather(self) -> tuple[list[RowRecord | BuiltRows], Position | None]:
        out: list[RowRecord | tuple[LoggedRequest, Future[Any]] | None] = []
        rows = size = 0
        end: Position | None = None
        until = time.monotonic() + self.max_delay
        while rows < self.max_rows and size < self.max_bytes:
            # one record at a time: the batch ends at the first that reaches max_rows or max_bytes
            records = self.wal.read(self._decode, max_records=1)
            for rec in records:
                end = rec.end
                obj = rec.obj
                if obj is None:
                    continue
                if isinstance(obj, LoggedRequest):
                    out.append(self._submit(obj))
                    rows += len(obj.records) // _RECORD_BYTES_PER_ROW + 1  # an estimate, until built
                    size += len(obj.records)
                    continue
                out.append(obj)
                rows += len(obj.calls) + len(obj.steps)
                size += len(obj.call_block) + len(obj.step_block)
            if records:
                continue
            left = until - time.monotonic()
            if self._stopping.is_set() or left <= 0 or not self.wal.wait_for_data(left):
                break
        self._behind = rows >= self.max_rows or size >= self.max_bytes
        return [r for r in map(self._resolve, out) if r is not None], end

    def _submit(self, request: LoggedRequest) -> tuple[LoggedRequest, Future[Any]] | None:
        if self.builds is None:
            self._set_aside(encode_logged(request), "no row builder for logged requests")
            return None
        return request, self.builds.submit(request)

    def _resolve(
        self, item: RowRecord | tuple[LoggedRequest, Future[Any]] | None
    ) -> RowRecord | BuiltRows | None:
        """The rows of a gathered record, waiting for a logged request's build (poison: set aside)."""
        if item is None or isinstance(item, RowRecord):
            return item
        request, future = item
        try:
            built: BuiltRows = future.result()
        except Exception as exc:  # noqa: BLE001 - a record that cannot be built never blocks the log
            self._set_aside(encode_logged(request), f"{type(exc).__name__}: {exc}")
            return None
        if self.on_built is not None:
            self.on_built(request, built)
        return built

    def _insert(self, parts: list[RowRecord | BuiltRows]) -> bool:
        """Store the rows of `parts`; False when shutdown gave up (the rows stay in the log).

        Built rows are inserted as blocks with their `Touched` summary, never read back, unless the
        batch spans more than `PARTITIONS_PER_INSERT` months or storage refuses it."""
        if all(isinstance(p, RowRecord) for p in parts):
            return self._insert_rows(parts)  # type: ignore[arg-type]
        touched = Touched.joined(
            Touched.of(p.calls, p.steps) if isinstance(p, RowRecord) else p.touched for p in parts
        )
        if len(touched.months) > PARTITIONS_PER_INSERT:
            return self._insert_rows([p if isinstance(p, RowRecord) else p.record() for p in parts])
        blocks = (join_blocks([p.call_block for p in parts]), join_blocks([p.step_block for p in parts]))

        def rows() -> tuple[list[CallRow], list[StepRow]]:
            records = [p if isinstance(p, RowRecord) else p.record() for p in parts]
            return [c for r in records for c in r.calls], [s for r in records for s in r.steps]

        return self._write([], [], blocks, touched, rows)

    def _insert_rows(self, records: list[RowRecord]) -> bool:
        """Store `records` (rows in memory)."""
        calls = [c for r in records for c in r.calls]
        steps = [s for r in records for s in r.steps]
        months = {month(c) for c in calls} | {month(s) for s in steps}
        if len(months) <= PARTITIONS_PER_INSERT:
            blocks = (
                join_blocks([r.call_block for r in records]),
                join_blocks([r.step_block for r in records]),
            )
            return self._write(calls, steps, blocks)
        ordered = sorted(months)
        for at in range(0, len(ordered), PARTITIONS_PER_INSERT):
            group = set(ordered[at : at + PARTITIONS_PER_INSERT])
            part_calls = [c for c in calls if month(c) in group]
            part_steps = [s for s in steps if month(s) in group]
            if not self._write(part_calls, part_steps, None):
                return False
        return True

    def _write(
        self,
        calls: list[CallRow],
        steps: list[StepRow],
        blocks: tuple[bytes, bytes] | None,
        touched: Touched | None = None,
        rows: Callable[[], tuple[list[CallRow], list[StepRow]]] | None = None,
    ) -> bool:
        """Insert, retrying what may succeed later; bisect a refused insert down to the refused rows.
        With `touched`, `calls` and `steps` are empty and `rows` reads them from `blocks` if needed."""
        delay = _BACKOFF_MIN
        extra = {} if touched is None else {"touched": touched}
        count = len(calls) + len(steps) if touched is None else touched.calls + touched.steps
        while True:
            started = time.perf_counter()
            try:
                self.store.write(calls, steps, blocks=blocks, **extra)
            except Exception as exc:  # noqa: BLE001 - any storage failure is retried or quarantined, never lost
                if refused(exc):
                    if rows is not None:
                        calls, steps = rows()
                    return self._isolate(calls, steps, exc)
                self.metrics.add(insert_failures=1)
                if self.storage_up:
                    _log.error("storage insert failed, retrying with backoff (rows stay in the log): %s", exc)
                self.storage_up = False
                if not self._backoff(delay):
                    return False
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            self.metrics.observe(insert_seconds=time.perf_counter() - started)
            self.metrics.add(inserted_rows=count)
            if not self.storage_up:
                _log.info("storage is back; draining the write-ahead log")
            self.storage_up = True
            self.refresher.written(behind=self._behind)
            return True

    def _backoff(self, delay: float) -> bool:
        """Sleep before a retry; False when shutting down and the drain deadline would pass."""
        if self._stopping.is_set() and time.monotonic() + delay > self._deadline:
            _log.warning("shutdown: storage still failing; rows stay in the log for the next start")
            return False
        time.sleep(delay)
        return True

    def _isolate(self, calls: list[CallRow], steps: list[StepRow], exc: BaseException) -> bool:
        """`exc` refused these rows: quarantine a single row, or insert each half separately."""
        if len(calls) + len(steps) == 1:
            return self._quarantine(calls, steps, exc)
        self.metrics.add(insert_failures=1)
        _log.warning(
            "storage refused an insert of %d rows (%s); isolating the refused rows",
            len(calls) + len(steps),
            str(exc)[:300],
        )
        if len(calls) > 1 or not steps:
            half = len(calls) // 2
            parts = [(calls[:half], []), (calls[half:], steps)]
        else:  # one call or none: split the steps
            half = len(steps) // 2
            parts = [(calls, steps[:half]), ([], steps[half:])]
        return all(self._write(c, s, None) for c, s in parts if c or s)

    def _put_in_quarantine(self, entry: tuple[Any, ...]) -> None:
        quarantine = getattr(self.store, "quarantine", None)
        if quarantine is not None:
            quarantine([entry])
            return
        doc = dict(zip(QUARANTINE_COLUMNS, entry, strict=True))
        line = json.dumps(doc, default=str, ensure_ascii=True) + "\n"
        with open(self.wal.directory / "quarantine.jsonl", "a", encoding="ascii") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _quarantine(self, calls: list[CallRow], steps: list[StepRow], exc: BaseException) -> bool:
        table, row = ("llm_calls", calls[0]) if calls else ("context_steps", steps[0])
        reason = str(exc)[:_REASON_CHARS]
        entry = quarantine_entry(table, row, error_code(exc) or 0, reason)
        delay = _BACKOFF_MIN
        while True:
            try:
                self._put_in_quarantine(entry)
            except Exception as qexc:  # noqa: BLE001 - retried: the row stays in the log until quarantined
                _log.error("cannot quarantine a refused row (retrying): %s", qexc)
                if not self._backoff(delay):
                    return False
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            break
        self.metrics.add(quarantined_rows=1)
        _log.error(
            "storage refused a row; it is quarantined (tokenbook quarantine list): table=%s tenant=%s "
            "trace_id=%s span_id=%s: %s",
            table,
            row.tenant_id,
            row.trace_id,
            row.span_id,
            reason[:300],
        )
        return True
