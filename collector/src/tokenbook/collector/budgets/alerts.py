"""Alert delivery: each `BudgetEvent` goes, on a background thread, to every sink in order:

1. the `budget_events` table (so a restarted collector knows the crossing was alerted);
2. one structured log line (logger ``tokenbook.collector.budgets``, the webhook body as fields);
3. the alert counters exposed on the admin API's ``/metrics``;
4. the webhook, when configured (`WebhookSender`: bounded retries with backoff, HMAC signature), on
   a thread and queue of its own, so a hanging webhook never delays recording (1-3).

With ``claims`` (collectors sharing one ClickHouse, `tokenbook.collector.budgets.claims.EventClaims`),
the queued events are claimed in batches first and only the events this collector wins are delivered;
while idle, the thread looks again at the events set aside behind another collector's claim (`recheck`).

`publish` never blocks or raises (the ingest path calls it): the queue is bounded and an event that
does not fit is dropped and counted. `stop(timeout)` delivers what is queued, then joins.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from tokenbook.collector.budgets.events import EVENT_COLUMNS, BudgetEvent
from tokenbook.collector.budgets.webhook import WebhookSender
from tokenbook.collector.storage.sqltemplate import render_query

__all__ = ["AlertDispatcher", "Claims", "EventStore"]

_log = logging.getLogger("tokenbook.collector.budgets")
_QUEUE_SIZE: Final = 10_000
_CLAIM_BATCH: Final = 500
_RECHECK_S: Final = 1.0  # idle time between looks at the events set aside
_IDLE: Final = object()
_STORE_ATTEMPTS: Final = 3
_WARN_STATES: Final = frozenset({"over_budget", "tripped", "drift"})


class EventStore(Protocol):
    """What the dispatcher needs of `tokenbook.collector.storage.store.Store`."""

    database: str

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run one statement with bound `parameters` (`Store.command`)."""


class Claims(Protocol):
    """What the dispatcher needs of `tokenbook.collector.budgets.claims.EventClaims`."""

    def claim(self, events: Sequence[BudgetEvent]) -> list[BudgetEvent]:
        """The events this collector delivers."""

    def recheck(self) -> list[BudgetEvent]:
        """Events set aside that this collector now delivers."""

    def cancel(self) -> None:
        """Stop retrying storage errors (the collector stops)."""


class AlertDispatcher:
    """Delivers budget events off the ingest path: to the log, the webhook and `budget_events`.

    `publish` only queues (never blocks); one thread delivers. Thread-safe.
    """

    def __init__(
        self,
        *,
        log: bool,
        webhook: WebhookSender | None,
        store: EventStore | None,
        claims: Claims | None = None,
    ) -> None:
        self.log = log
        self.claims = claims
        self.webhook = webhook
        self.store = store
        self._queue: queue.Queue[BudgetEvent | None] = queue.Queue(_QUEUE_SIZE)
        self._lock = threading.Lock()
        self.alerts: Counter[tuple[str, str]] = Counter()  # (kind, state) -> events delivered
        self.failures: Counter[str] = Counter()  # sink -> failed deliveries, plus "dropped"
        self._thread = threading.Thread(target=self._run, name="tokenbook-budget-alerts", daemon=True)
        self._webhook_queue: queue.Queue[BudgetEvent | None] = queue.Queue(_QUEUE_SIZE)
        self._webhook_thread = threading.Thread(
            target=self._run_webhook, name="tokenbook-budget-webhook", daemon=True
        )
        self._insert_sql = "" if store is None else render_query("budgets/insert_event.sql", store.database)

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread.start()
        if self.webhook is not None:
            self._webhook_thread.start()

    def publish(self, event: BudgetEvent) -> None:
        """Queue `event` for delivery; never blocks. A full queue drops it, logged and counted."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self.failures["dropped"] += 1
            _log.error("budget alert queue full: dropped %s %s", event.rule, event.state)

    def stop(self, timeout: float) -> bool:
        """Deliver the queued events (up to `timeout` s) and stop; returns whether the queue emptied."""
        if not self._thread.is_alive():
            return self._queue.empty()
        if self.claims is not None:
            self.claims.cancel()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        if self._webhook_thread.is_alive():
            try:
                self._webhook_queue.put(None, timeout=timeout)
            except queue.Full:
                return False
            self._webhook_thread.join(timeout)
        return not self._thread.is_alive() and not self._webhook_thread.is_alive()

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """(events delivered by (kind, state), failed deliveries by sink), for the metrics."""
        with self._lock:
            return dict(self.alerts), dict(self.failures)

    def _run(self) -> None:
        if self.claims is not None:
            self._run_claimed(self.claims)
            return
        while (event := self._queue.get()) is not None:
            self.deliver(event)

    def _run_claimed(self, claims: Claims) -> None:
        """Claim the queued events in batches, deliver the ones this collector wins, and look again at
        the events set aside (after each batch, and at least every `_RECHECK_S` seconds)."""
        done = False
        while not done:
            batch: list[BudgetEvent] = []
            first: object
            try:
                first = self._queue.get(timeout=_RECHECK_S)
            except queue.Empty:
                first = _IDLE
            done = first is None
            if isinstance(first, BudgetEvent):
                batch.append(first)
                while len(batch) < _CLAIM_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        done = True
                        break
                    batch.append(more)
            for mine in [*claims.claim(batch), *claims.recheck()]:
                self.deliver(mine)

    def _run_webhook(self) -> None:
        while (event := self._webhook_queue.get()) is not None:
            self.send_webhook(event)

    def deliver(self, event: BudgetEvent) -> None:
        """Record one event (table, log, counters) on the caller's thread and queue it for the webhook
        (sent on the caller's thread when the webhook thread is not running); failures are counted."""
        if self.store is not None and not self._insert(event):
            self._count_failure("table")
        if self.log:
            level = logging.WARNING if event.state in _WARN_STATES else logging.INFO
            _log.log(level, event.message, extra={"fields": {"budget_event": event.webhook_body()}})
        with self._lock:
            self.alerts[(event.kind, event.state)] += 1
        if self.webhook is None:
            return
        if not self._webhook_thread.is_alive():
            self.send_webhook(event)
            return
        try:
            self._webhook_queue.put_nowait(event)
        except queue.Full:
            self._count_failure("webhook")
            _log.error("budget webhook queue full: dropped %s %s", event.rule, event.state)

    def send_webhook(self, event: BudgetEvent) -> None:
        """Deliver `event` to the webhook (on the webhook thread); a failure is counted, never raised."""
        assert self.webhook is not None
        if not self.webhook.send(event.event_id, event.webhook_body()):
            self._count_failure("webhook")

    def _count_failure(self, sink: str) -> None:
        with self._lock:
            self.failures[sink] += 1

    def _insert(self, event: BudgetEvent) -> bool:
        assert self.store is not None
        params = dict(zip(EVENT_COLUMNS, event.row(), strict=True))
        delay = 0.2
        for attempt in range(1, _STORE_ATTEMPTS + 1):
            try:
                self.store.command(self._insert_sql, params)
                return True
            except Exception as exc:  # noqa: BLE001 - storage errors of any kind: retried, then counted
                if attempt == _STORE_ATTEMPTS:
                    _log.error("cannot record budget event %s in budget_events: %s", event.event_id, exc)
                    return False
                time.sleep(delay)
                delay *= 2
        return False
