"""Fleet-wide counters: collectors that share one ClickHouse enforce the fleet's totals.

Each collector counts the calls it accepts at once (`BudgetEvaluator.observe`) and remembers them,
by span, until storage has them (`note`, `note_decisions`). Every ``budgets.fleet_sync`` seconds
`FleetSync.sync` sets each active counter to

    ledger usage (FINAL: each span once, whoever stored it), minus the spans remembered here
    + the remembered spans' usage (each once, as this collector last saw it)

so a counter holds what every collector stored plus what this one accepted since. A span that another
collector already stored and that reaches this one again (a re-send) is counted once: it is left out
of the ledger part while it is remembered here and counted from the ledger once storage holds it.
Only subjects with recent activity are queried: tenants (contexts, for budgets) with a call ingested
by any collector since the previous sync (less `_ACTIVE_MARGIN`), or remembered here; every
`_FULL_EVERY` syncs all subjects of the open windows are.

Staleness: a call accepted by another collector reaches this collector's counters at most
``storage.batch.max_delay`` + the insert + ``budgets.fleet_sync`` + the reconciliation's queries
after it was accepted (longer only while that collector cannot write to storage). A call stored
while a sync's queries run may be missing from the counter until the next sync (never counted twice).

`EventClaims` delivers each crossing once for the fleet: several collectors may see the same
crossing (same event ID); each claims it in ``budget_event_claims`` and reads the claims back after
`SETTLE_S`: the earliest claim delivers, the others drop the event.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from tokenbook.collector.budgets.counters import call_cost, call_tokens, matches, subject_of
from tokenbook.collector.budgets.evaluator import BudgetEvaluator, UsageSource
from tokenbook.collector.budgets.events import EPOCH, BudgetEvent
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.billing import UNBILLED_STATUSES

__all__ = ["SETTLE_S", "ClaimStore", "EventClaims", "FleetSync", "SyncResult", "collector_id"]

_log = logging.getLogger("tokenbook.collector.budgets")
SETTLE_S: Final = 0.5  # claims inserted within this of each other are all seen by every claimant
_ACTIVE_MARGIN: Final = 60.0  # seconds: clock skew between collectors and their writer delay
_FULL_EVERY: Final = 100  # every Nth sync reconciles every subject of the open windows
_MAX_REMEMBERED: Final = 1_000_000  # spans remembered until stored; beyond, the oldest are forgotten
_KEYS_PER_QUERY: Final = 20_000
_Key = tuple[int, tuple[str, ...], datetime]
_Span = tuple[str, str]


def collector_id() -> str:
    """A fresh ID for this collector process (claims of alert delivery)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SyncResult:
    counters: int  # counters reconciled
    changed: int  # of which moved
    remembered: int  # spans counted from memory (accepted here, not yet seen in storage)
    forgotten: int  # remembered spans storage now holds


class FleetSync:
    """Reconciles a `BudgetEvaluator`'s counters with the ledger every `interval` seconds.

    `note` / `note_decisions` run on the ingest and writer threads; `sync` on the budget ticker.
    Thread-safe.
    """

    def __init__(
        self, evaluator: BudgetEvaluator, interval: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._spans: OrderedDict[_Span, CallRow] = OrderedDict()  # accepted here, not yet stored
        self._last_start: float | None = None  # clock time the last successful sync started
        self._syncs = 0
        self.forgotten_unstored = 0  # remembered spans dropped for _MAX_REMEMBERED
        self.failures = 0
        self.last: SyncResult | None = None

    def note(self, calls: Sequence[CallRow]) -> None:
        """Remember calls this collector accepted (or found unstored in its log at start)."""
        with self._lock:
            for call in calls:
                key = (call.trace_id, call.span_id)
                known = self._spans.get(key)
                if known is None or known.version <= call.version:
                    self._spans[key] = call
            while len(self._spans) > _MAX_REMEMBERED:
                self._spans.popitem(last=False)
                self.forgotten_unstored += 1

    def note_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """Remember the new billing state of calls this collector re-decided (until stored)."""
        self.note([after for _, after in changes])

    def due(self) -> bool:
        """Whether a sync is due."""
        return self._last_start is None or self._clock() - self._last_start >= self.interval

    def sync(self, source: UsageSource) -> SyncResult:
        """One reconciliation; raises what `source.query` raises (the counters are then unchanged)."""
        started = self._clock()
        with self._lock:
            own = dict(self._spans)
        full = self._syncs % _FULL_EVERY == 0
        active_since = EPOCH if full or self._last_start is None else _dt(self._last_start - _ACTIVE_MARGIN)
        keys = sorted(own)
        usage: dict[_Key, tuple[int, Decimal, int]] = {}
        for idx, rule in enumerate(self.evaluator.rules):
            match = {"match_keys": [k for k, _ in rule.match], "match_values": [v for _, v in rule.match]}
            params: dict[str, Any] = {
                **match, "currency": rule.limits.currency, "own": keys, "active_since": active_since
            }  # fmt: skip
            if rule.window is not None:
                at = _dt(started)
                start, end = rule.window.bounds(at)
                prev_start = rule.window.previous(start)[0]
                params |= {
                    "per": list(rule.per),
                    "current_start": start,
                    "since": prev_start,
                    "until": end,
                    "own_tenants": sorted({c.tenant_id for c in own.values()}),
                }
                _, _, rows = source.query(
                    render_query("budgets/fleet_quota_usage.sql", source.database), params
                )
                for subject, current, tokens, cost, unpriced in rows:
                    key = (idx, tuple(subject), start if current else prev_start)
                    usage[key] = (int(tokens), Decimal(cost or 0), int(unpriced))
            else:
                params["own_contexts"] = sorted({(c.tenant_id, c.context_id) for c in own.values()})
                sql = render_query("budgets/fleet_context_usage.sql", source.database)
                _, _, rows = source.query(sql, params)
                for tenant, context, tokens, cost, unpriced in rows:
                    usage[(idx, (tenant, context), EPOCH)] = (int(tokens), Decimal(cost or 0), int(unpriced))
        with self._lock:
            later = {k: c for k, c in self._spans.items() if k not in own}  # accepted during the queries
        stored = self._stored(source, keys + sorted(later))
        for call in [*own.values(), *(c for k, c in later.items() if k not in stored)]:
            self._add(usage, call)
        changed = self.evaluator.reconcile(usage)
        forgotten = 0
        with self._lock:
            for span, version in stored.items():
                known = self._spans.get(span)
                if known is not None and known.version <= version:
                    del self._spans[span]
                    forgotten += 1
            remembered = len(self._spans)
        self._last_start = started
        self._syncs += 1
        self.last = SyncResult(len(usage), changed, remembered, forgotten)
        return self.last

    def _stored(self, source: UsageSource, keys: list[_Span]) -> dict[_Span, int]:
        out: dict[_Span, int] = {}
        sql = render_query("budgets/stored_versions.sql", source.database)
        for i in range(0, len(keys), _KEYS_PER_QUERY):
            _, _, rows = source.query(sql, {"keys": keys[i : i + _KEYS_PER_QUERY]})
            out.update(((t, s), int(v)) for t, s, v in rows)
        return out

    def _add(self, usage: dict[_Key, tuple[int, Decimal, int]], call: CallRow) -> None:
        """Add one remembered call to the usage of every counter it counts toward."""
        if call.price_status in UNBILLED_STATUSES:
            return
        tokens = call_tokens(call)
        for idx, rule in enumerate(self.evaluator.rules):
            if not matches(rule, call):
                continue
            window = self.evaluator.window_of(idx, call.timestamp)
            if window is None:
                continue
            key = (idx, subject_of(rule, call), window[0])
            used, cost, unpriced = usage.get(key, (0, Decimal(0), 0))
            price = call_cost(call, rule.limits.currency)
            usage[key] = (used + tokens, cost + (price or 0), unpriced + (price is None))


class ClaimStore(Protocol):
    """What `EventClaims` needs of `tokenbook.collector.storage.store.Store`."""

    database: str

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run one statement with bound `parameters` (`Store.command`)."""

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Run one SELECT with bound `parameters` (`Store.query`)."""


class EventClaims:
    """Decides which collector of a fleet delivers an event: insert a claim, wait, read the claims back.

    An event already recorded in ``budget_events`` or claimed earlier by another collector is not
    delivered; a storage failure delivers (an alert twice rather than never).
    """

    def __init__(
        self, store: ClaimStore, collector: str, *, settle: float = SETTLE_S, sleep: Callable[[float], None]
        = time.sleep
    ) -> None:  # fmt: skip
        self.store = store
        self.collector = collector
        self.settle = settle
        self._sleep = sleep
        self._claim_sql = render_query("budgets/claim_event.sql", store.database)
        self._read_sql = render_query("budgets/event_claims.sql", store.database)
        self.lost = 0  # events another collector delivers

    def claim(self, events: Sequence[BudgetEvent]) -> list[BudgetEvent]:
        """The events of `events` this collector delivers."""
        try:
            wanted = [e for e in events if self._open(e.event_id)]
            for event in wanted:
                self.store.command(
                    self._claim_sql, {"event_id": event.event_id, "collector_id": self.collector}
                )
            if wanted:
                self._sleep(self.settle)
            mine = [e for e in wanted if self._winner(e.event_id) == self.collector]
        except Exception as exc:  # noqa: BLE001 - storage errors of any kind: deliver anyway
            _log.warning("budget alert claims failed; delivering without them: %s", exc)
            return list(events)
        self.lost += len(events) - len(mine)
        return mine

    def _read(self, event_id: str) -> tuple[int, str, int]:
        _, _, rows = self.store.query(self._read_sql, {"event_id": event_id})
        claims, winner, recorded = rows[0] if rows else (0, "", 0)
        return int(claims), str(winner), int(recorded)

    def _open(self, event_id: str) -> bool:
        claims, winner, recorded = self._read(event_id)
        return not recorded and (claims == 0 or winner == self.collector)

    def _winner(self, event_id: str) -> str:
        return self._read(event_id)[1]


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(max(seconds, 0.0), tz=UTC)
